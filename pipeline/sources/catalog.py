"""Which image source a params file's ``data`` block means, and fetching its data."""

from __future__ import annotations

from pathlib import Path

from pipeline.common.config import DataConfig
from pipeline.sources import cifar10, download
from pipeline.sources.base import Source
from pipeline.sources.folder import FolderSource


def image_source(data: DataConfig) -> Source:
    """The source of ``data.source`` over ``data.dir`` and ``data.splits``."""
    if data.source == "cifar10":
        return cifar10.Cifar10Source(data.dir, data.splits, data.classes)
    return FolderSource(data.dir, data.splits)


def fetch(data: DataConfig) -> Path:
    """Make sure ``data.dir`` holds the data set, downloading it if not; return ``data.dir``."""
    if data.source == "cifar10":
        return cifar10.fetch(data.dir)
    return download.fetch(data)
