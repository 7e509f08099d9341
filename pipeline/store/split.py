"""Reading one split of an open store: declared shapes, dtypes and sizes checked before reading."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.common.errors import FeatureStoreError
from pipeline.store.meta import StoreMeta

#: The datasets of a split, in the order they are checked and read.
DATASETS = ("features", "labels", "paths")

_FIX = "extract it again, or restore it (`dvc checkout`)"


@dataclass(frozen=True)
class FeatureSplit:
    """One split of a store, as :func:`pipeline.store.hdf5.load` returns it."""

    features: np.ndarray  # (N, feature_dim) meta.feature_dtype: float32 or complex128
    labels: np.ndarray  # (N,) int64
    paths: list[str]
    meta: StoreMeta

    def __len__(self) -> int:
        return len(self.labels)


def _error(meta: StoreMeta, what: str, text: str) -> FeatureStoreError:
    return FeatureStoreError(f"feature store {meta.path!r}: {what}: {text}; {_FIX}")


def _dataset(group, meta: StoreMeta, split: str, name: str):
    import h5py

    if name not in group:
        raise FeatureStoreError(f"feature store {meta.path!r}: split {split!r} lacks {name!r}")
    ds = group.get(name)
    if not isinstance(ds, h5py.Dataset):
        raise _error(meta, f"{split}/{name}", f"expected a dataset; got {type(ds).__name__}")
    if ds.shape is None:
        raise _error(meta, f"{split}/{name}", "expected an array; got an empty dataspace")
    return ds


def _check_paths_dtype(ds, meta: StoreMeta, split: str) -> None:
    import h5py

    info = h5py.check_string_dtype(ds.dtype)
    fixed = info is not None and info.length is not None
    if info is None or (meta.checksummed and (not fixed or info.encoding != "utf-8")):
        kind = "fixed-length UTF-8 strings" if meta.checksummed else "strings"
        raise _error(meta, f"{split}/paths", f"expected {kind}; got dtype {ds.dtype}")


def _check_declared(datasets: dict, meta: StoreMeta, split: str, file_size: int) -> int:
    features, labels, paths = (datasets[k] for k in DATASETS)
    if labels.dtype != np.int64 or labels.ndim != 1:
        raise _error(
            meta,
            f"{split}/labels",
            f"expected int64 of shape (N,); got {labels.dtype} {labels.shape}",
        )
    n = labels.shape[0]
    if features.dtype != np.dtype(meta.feature_dtype) or features.shape != (n, meta.feature_dim):
        raise _error(
            meta,
            f"{split}/features",
            f"expected {meta.feature_dtype} of shape ({n}, {meta.feature_dim}); got "
            f"{features.dtype} {features.shape}",
        )
    if paths.shape != (n,):
        raise _error(meta, f"{split}/paths", f"expected shape ({n},); got {paths.shape}")
    _check_paths_dtype(paths, meta, split)
    for name, ds in datasets.items():
        nbytes = int(ds.size) * ds.dtype.itemsize
        if nbytes > file_size:
            raise _error(
                meta,
                f"{split}/{name}",
                f"declares {ds.shape} ({nbytes} bytes), more than the whole file ({file_size} "
                "bytes)",
            )
        if meta.checksummed and not ds.fletcher32:
            raise _error(
                meta,
                f"{split}/{name}",
                f"format_version {meta.format_version} stores carry "
                "Fletcher-32 checksums; this dataset has none",
            )
        if ds.dtype.kind != "O" and ds.id.get_storage_size() < nbytes:
            raise _error(
                meta,
                f"{split}/{name}",
                f"holds {ds.id.get_storage_size()} bytes of its {nbytes}: part of it is missing",
            )
    return n


def _read(ds, meta: StoreMeta, split: str, name: str) -> np.ndarray:
    try:
        return ds[()]
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        checked = "a checksum does not match" if meta.checksummed else "no checksums"
        raise _error(
            meta, f"{split}/{name}", f"cannot be read ({checked}: {exc}); the file is corrupt"
        ) from None


def _decode(raw: np.ndarray, meta: StoreMeta, split: str) -> list[str]:
    try:
        return [p.decode("utf-8") if isinstance(p, bytes) else str(p) for p in raw]
    except UnicodeDecodeError as exc:
        raise _error(meta, f"{split}/paths", f"expected UTF-8 text ({exc})") from None


def read_split(f, meta: StoreMeta, split: str) -> FeatureSplit:
    """Read one split of the open file ``f``; declared shapes and sizes are checked first."""
    import h5py

    path = meta.path
    if split not in meta.splits or split not in f:
        raise FeatureStoreError(
            f"feature store {path!r} has no split {split!r}; it has {list(meta.splits)}"
        )
    group = f.get(split)
    if not isinstance(group, h5py.Group):
        raise _error(meta, split, f"expected a group; got {type(group).__name__}")
    datasets = {name: _dataset(group, meta, split, name) for name in DATASETS}
    n = _check_declared(datasets, meta, split, f.id.get_filesize())
    features = _read(datasets["features"], meta, split, "features")
    labels = _read(datasets["labels"], meta, split, "labels")
    paths = _decode(_read(datasets["paths"], meta, split, "paths"), meta, split)
    if n and (labels.min() < 0 or labels.max() >= meta.n_classes):
        raise _error(
            meta,
            f"{split}/labels",
            f"expected values in [0, {meta.n_classes - 1}] ({meta.n_classes} classes); got "
            f"{int(labels.min())}..{int(labels.max())}",
        )
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise FeatureStoreError(
            f"feature store {path!r}: {split}/features has NaN or inf in {len(rows)} rows "
            f"(first: row {rows[0]}, {paths[rows[0]]!r})"
        )
    return FeatureSplit(features, labels, paths, meta)
