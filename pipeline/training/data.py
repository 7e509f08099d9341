"""The features a head trains on: both splits of a store, checked, loaded once, shared by runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.common.errors import FeatureStoreError
from pipeline.common.files import file_sha256
from pipeline.store.hdf5 import FeatureSplit, StoreMeta, load_splits


@dataclass(frozen=True)
class HeadData:
    """Both splits of a feature store, checked, loaded once and shared by any number of runs."""

    path: str
    sha256: str  # of the file's bytes
    meta: StoreMeta
    train: FeatureSplit
    val: FeatureSplit

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.meta.class_names


def load_data(path: str | Path) -> HeadData:
    """Read and check the ``train`` and ``val`` splits of a feature store.

    Raises:
        FeatureStoreError: missing, incomplete, inconsistent (see
            :func:`pipeline.store.hdf5.load`), a shard, an empty split, fewer than 2
            classes, or a class without training rows.

    Example:
        >>> load_data("features/hymenoptera-resnet18.h5").train.features.shape
        (244, 512)
    """
    splits = load_splits(path, ["train", "val"])
    train, val = splits["train"], splits["val"]
    meta = train.meta
    meta.require_whole()
    empty = [name for name, part in splits.items() if len(part) == 0]
    if empty:
        raise FeatureStoreError(
            f"feature store {str(path)!r}: split {', '.join(map(repr, empty))} has no rows; "
            "expected rows in train and val (an empty val split gives no accuracy): extract "
            "it again from a data folder with images in every split"
        )
    if meta.n_classes < 2:
        raise FeatureStoreError(
            f"feature store {str(path)!r} has {meta.n_classes} class {list(meta.class_names)}; "
            "expected at least 2"
        )
    counts = np.bincount(train.labels, minlength=meta.n_classes)
    if (counts == 0).any():
        missing = [c for c, k in zip(meta.class_names, counts, strict=True) if k == 0]
        raise FeatureStoreError(
            f"feature store {str(path)!r}: expected training rows for all {meta.n_classes} "
            f"classes; got none for {missing}"
        )
    return HeadData(str(path), file_sha256(path), meta, train, val)
