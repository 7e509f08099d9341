"""Which source a params file means: the image source of ``data``, or a generated data set.

* :func:`image_source`: ``data.source`` ``folder`` (:mod:`pipeline.sources.folder`) or
  ``cifar10`` (:mod:`pipeline.sources.cifar10`), read by a backbone into ``extract.out``;
* :func:`generated_source`: the source whose store is the given path when that path is a
  generated data set's output (``spiral.out``, ``qc.out``, ``qq.out``): stage two writes such
  a store itself when it is missing (:func:`pipeline.extraction.loop.feature_store`);
* :func:`fetch`: put the images of ``data`` on disk.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.common.config import DataConfig, Params
from pipeline.sources import cifar10, download
from pipeline.sources.base import Source
from pipeline.sources.folder import FolderSource
from pipeline.sources.spiral import SpiralSource


def image_source(data: DataConfig) -> Source:
    """The source of ``data.source`` over ``data.dir`` and ``data.splits``.

    Raises:
        DataError: missing files (CIFAR-10's are checked here; a folder's when listed).
        ConfigError: an unknown CIFAR-10 class name.
    """
    if data.source == "cifar10":
        return cifar10.Cifar10Source(data.dir, data.splits, data.classes)
    return FolderSource(data.dir, data.splits)


def generated_source(params: Params, path: str | Path) -> Source | None:
    """The generated data set whose store is ``path`` (``spiral.out``, ``qc.out``,
    ``qq.out``, placeholders filled in), or None.

    Example:
        >>> generated_source(load_params("params-spiral.yaml"), "features/spiral-1.52.h5").kind
        'spiral'
        >>> generated_source(load_params("params-qq.yaml"), "features/qq.h5").kind
        'qq'
    """
    path = Path(path)
    if path == Path(params.spiral_out):
        return SpiralSource(params.spiral)
    if path not in (Path(params.qc_out), Path(params.qq_out)):
        return None
    # torch and the photonic simulator: imported only for these stores, so that stage one's
    # up-to-date check of an image store stays free of torch
    from pipeline.sources import photonic_sources

    if path == Path(params.qc_out):
        return photonic_sources.QCSource(params.qc)
    return photonic_sources.QQSource(params.qq)


def fetch(data: DataConfig) -> Path:
    """Make sure ``data.dir`` holds the data set (download it if not); return ``data.dir``.

    Raises:
        DataError: the download, its checks or the layout failed (``data.dir`` untouched).
    """
    if data.source == "cifar10":
        return cifar10.fetch(data.dir)
    return download.fetch(data)
