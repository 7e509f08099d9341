"""Quantum transfer learning on cached features.

Stage one (:mod:`pipeline.extract`) runs a frozen ImageNet backbone once over an image folder and
writes the features to an HDF5 store (:mod:`pipeline.features`); stage two
(:mod:`pipeline.train_head`) trains a dressed quantum circuit (:mod:`pipeline.quantum`) on them.
"""

__version__ = "0.1.0"
