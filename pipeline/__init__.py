"""Quantum transfer learning on cached features.

Commands (``python -m pipeline.<command>``, each a thin ``main(argv=None)``) sit on top; the
machinery lives in sub-packages, from the bottom up: :mod:`pipeline.common`,
:mod:`pipeline.store` (the HDF5 feature store, the only interface between the stages),
:mod:`pipeline.simulators`, :mod:`pipeline.sources`, :mod:`pipeline.backbones`,
:mod:`pipeline.extraction` (stage one), :mod:`pipeline.heads`, :mod:`pipeline.training` (stage
two) and :mod:`pipeline.reports`.
"""

__version__ = "0.1.0"
