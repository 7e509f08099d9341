"""Quantum transfer learning on cached features.

The top of the package holds the commands, each a thin ``main(argv=None)`` run as
``python -m pipeline.<command>``: ``fetch_data``, ``extract``, ``train_head``, ``report``,
``predict``, ``evaluate``, ``sweep``, ``compare``, ``features``, ``datasets`` and
``spiral_plot``. The machinery lives in sub-packages, each named for its part, from the
bottom up:

* :mod:`pipeline.common`: config, command-line helpers, errors, atomic files, progress,
  devices, the Dask connection;
* :mod:`pipeline.store`: the HDF5 feature store, the only interface between the stages, and
  its shards;
* :mod:`pipeline.simulators`: the quantum circuits' simulators (qubit, noisy, photonic);
* :mod:`pipeline.sources`: what a store is made from (image folders, CIFAR-10, generated data
  sets), behind one interface;
* :mod:`pipeline.backbones`: frozen torchvision backbones and batched inference;
* :mod:`pipeline.extraction`: stage one, the one loop from a source to a store;
* :mod:`pipeline.heads`: the heads trained on features, and their checkpoints;
* :mod:`pipeline.training`: stage two, the training loop, optimisers, sweeps and summaries;
* :mod:`pipeline.reports`: plots of a run, predictions on new images, the spiral figure, a
  head's robustness to shots and noise.
"""

__version__ = "0.1.0"
