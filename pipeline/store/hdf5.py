"""The HDF5 feature store: the only interface between stage one and everything after it.

Files are written atomically without timestamps (same inputs, same bytes), every dataset with
Fletcher-32 checksums; every reader goes through :func:`load`, which checks the file first.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.errors import FeatureStoreError
from pipeline.common.files import atomic_path
from pipeline.store.meta import (  # noqa: F401  (re-exported: the store's one public face)
    CHECKSUM_VERSION,
    FEATURE_DTYPES,
    FORMAT_VERSION,
    JSON_ATTRS,
    RANDOM_INIT_WARNING,
    REQUIRED_ATTRS,
    SHARD_KEY,
    SUPPORTED_VERSIONS,
    StoreMeta,
    is_random_init,
    meta_from_attrs,
    strict_json,
    unchecked_note,
)
from pipeline.store.split import DATASETS, FeatureSplit, read_split

#: Rows per chunk aim at this many bytes (whole rows; at least one row per chunk).
CHUNK_BYTES = 1 << 18


@dataclass(frozen=True)
class SplitArrays:
    """One split to write."""

    features: np.ndarray
    labels: np.ndarray
    paths: Sequence[str]


def _h5py():
    import h5py

    return h5py


def _feature_dtype(path: str | Path, splits: Mapping[str, SplitArrays]) -> str:
    kinds = {name: np.iscomplexobj(s.features) for name, s in splits.items()}
    if len(set(kinds.values())) > 1:
        raise FeatureStoreError(
            f"{path}: expected the features of every split to be all real or all complex; got "
            + ", ".join(f"{n} {'complex' if c else 'real'}" for n, c in kinds.items())
        )
    return "complex128" if any(kinds.values()) else "float32"


def _feature_dim(path: str | Path, splits: Mapping[str, SplitArrays]) -> int:
    if not splits:
        raise FeatureStoreError(f"{path}: nothing to write (no splits)")
    first = np.asarray(next(iter(splits.values())).features)
    feature_dim = first.shape[1] if first.ndim == 2 else -1
    for name, s in splits.items():
        feats = np.asarray(s.features)
        if feats.ndim != 2 or feats.shape[1] != feature_dim:
            raise FeatureStoreError(
                f"{path}: split {name!r}: expected features of shape (N, {feature_dim}); "
                f"got {feats.shape}"
            )
        if len(s.labels) != len(feats) or len(s.paths) != len(feats):
            raise FeatureStoreError(
                f"{path}: split {name!r}: {len(feats)} feature rows, {len(s.labels)} labels and "
                f"{len(s.paths)} paths; expected equal counts"
            )
    return feature_dim


def write(
    path: str | Path,
    splits: Mapping[str, SplitArrays],
    *,
    class_names: Sequence[str],
    source: str,
    backbone: str,
    weights: str,
    weights_sha256: str,
    transform: str,
    dataset_fingerprint: str,
    skipped: Sequence[Mapping[str, str]] = (),
    versions: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> StoreMeta:
    """Write a complete feature store atomically; return its :class:`StoreMeta`.

    Real features are stored as float32, complex ones as complex128; ``skipped`` lists
    ``{"path", "error"}`` of each image left out, ``extra`` further JSON metadata.
    """
    h5py = _h5py()
    feature_dim = _feature_dim(path, splits)
    attrs: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "class_names": list(class_names),
        "source": source,
        "backbone": backbone,
        "weights": weights,
        "weights_sha256": weights_sha256,
        "transform": transform,
        "feature_dim": int(feature_dim),
        "splits": list(splits),
        "dataset_fingerprint": dataset_fingerprint,
        "skipped": [dict(s) for s in skipped],
        "versions": dict(versions if versions is not None else library_versions()),
        "extra": dict(extra or {}),
        "feature_dtype": _feature_dtype(path, splits),
    }
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", libver="earliest", track_order=False) as f:
            for name, s in splits.items():
                group = f.create_group(name)
                features = np.ascontiguousarray(s.features, dtype=attrs["feature_dtype"])
                _add_dataset(group, "features", features)
                _add_dataset(group, "labels", np.asarray(s.labels, dtype=np.int64))
                _add_dataset(group, "paths", _fixed_strings(h5py, s.paths))
            for key, value in attrs.items():
                f.attrs[key] = strict_json(value) if key in JSON_ATTRS else value
            f.attrs["complete"] = True  # last: a file without it was interrupted
    return read_meta(path)


def chunk_shape(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Whole rows per chunk near :data:`CHUNK_BYTES`, in near-equal chunks."""
    row_bytes = max(1, itemsize * int(np.prod(shape[1:], dtype=np.int64)))
    most = max(1, CHUNK_BYTES // row_bytes)
    count = max(1, -(-shape[0] // most))
    return (max(1, -(-shape[0] // count)), *shape[1:])


def _add_dataset(group, name: str, data: np.ndarray) -> None:
    group.create_dataset(
        name,
        data=data,
        chunks=chunk_shape(data.shape, data.itemsize),
        maxshape=(None, *data.shape[1:]),  # lets an empty split have a chunk shape
        fletcher32=True,
        track_times=False,
    )


def _fixed_strings(h5py, texts: Sequence[str]) -> np.ndarray:
    """Fixed-length UTF-8, so the checksums cover the strings' bytes."""
    encoded = [t.encode("utf-8") for t in texts]
    width = max((len(e) for e in encoded), default=1) or 1
    return np.array(encoded, dtype=h5py.string_dtype("utf-8", width)).reshape(len(encoded))


def write_like(
    path: str | Path,
    splits: Mapping[str, SplitArrays],
    like: StoreMeta,
    *,
    skipped: Sequence[Mapping[str, str]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> StoreMeta:
    """:func:`write` with the provenance of ``like``; ``skipped`` and ``extra`` default to its."""
    return write(
        path,
        splits,
        class_names=like.class_names,
        source=like.source,
        backbone=like.backbone,
        weights=like.weights,
        weights_sha256=like.weights_sha256,
        transform=like.transform,
        dataset_fingerprint=like.dataset_fingerprint,
        skipped=like.skipped if skipped is None else skipped,
        versions=like.versions,
        extra=like.extra if extra is None else extra,
    )


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the features (read without importing them)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": ".".join(map(str, sys.version_info[:3]))}
    for dist in ("torch", "torchvision", "numpy", "h5py", "pillow", "qtl-pipeline"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _open(path: str | Path):
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise FeatureStoreError(
            f"feature store {str(path)!r} does not exist; run `python -m pipeline.extract` "
            "(or `dvc repro extract`) first"
        )
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise FeatureStoreError(f"{str(path)!r} is not a readable HDF5 file: {exc}") from exc


def _meta_from(f, path: str | Path) -> StoreMeta:
    try:
        return meta_from_attrs(f.attrs, str(path))
    except (OSError, TypeError, ValueError, KeyError) as exc:  # an attribute h5py cannot read
        raise FeatureStoreError(
            f"feature store {str(path)!r}: its attributes cannot be read ({exc}); the file is "
            "malformed: extract it again"
        ) from None


def read_meta(path: str | Path) -> StoreMeta:
    """The metadata of a complete store (no arrays are read)."""
    with _open(path) as f:
        return _meta_from(f, path)


def load(path: str | Path, split: str) -> FeatureSplit:
    """Read one split of a feature store, checking the file first."""
    with _open(path) as f:
        meta = _meta_from(f, path)
        meta.note_unchecked()
        return read_split(f, meta, split)


def load_splits(path: str | Path, splits: Sequence[str]) -> dict[str, FeatureSplit]:
    """:func:`load` several splits from one open file."""
    with _open(path) as f:
        meta = _meta_from(f, path)
        meta.note_unchecked()
        return {s: read_split(f, meta, s) for s in splits}


def verify(path: str | Path) -> StoreMeta:
    """Check the attributes, the layout and every chunk's checksum; return the metadata."""
    with _open(path) as f:
        meta = _meta_from(f, path)
        extra_groups = sorted(set(f.keys()) - set(meta.splits))
        if extra_groups:
            raise FeatureStoreError(
                f"feature store {str(path)!r} has groups {extra_groups} not listed in 'splits'"
            )
        seen: set[str] = set()
        for split in meta.splits:
            part = read_split(f, meta, split)
            group = f[split]
            extra = sorted(set(group.keys()) - set(DATASETS))
            if extra:
                raise FeatureStoreError(
                    f"feature store {str(path)!r}: split {split!r} holds {extra} beside "
                    f"{', '.join(DATASETS)}"
                )
            for rel in part.paths:
                if rel in seen:
                    raise FeatureStoreError(
                        f"feature store {str(path)!r}: path {rel!r} appears more than once"
                    )
                seen.add(rel)
        return meta


def describe(path: str | Path) -> str:
    """A human-readable summary: counts per split and class, then the metadata."""
    parts = load_splits(path, read_meta(path).splits)
    meta = next(iter(parts.values())).meta
    width = max(len(c) for c in meta.class_names)
    lines = [
        f"{path}",
        f"  format_version {meta.format_version}, feature_dim {meta.feature_dim}, "
        f"feature_dtype {meta.feature_dtype}",
    ]
    for split, part in parts.items():
        counts = np.bincount(part.labels, minlength=meta.n_classes)
        lines.append(f"  {split}: {len(part)} rows")
        for name, count in zip(meta.class_names, counts, strict=True):
            lines.append(f"    {name:<{width}}  {count}")
    lines += [
        f"  source              {meta.source}",
        f"  backbone            {meta.backbone}",
        f"  weights             {meta.weights}",
        f"  weights_sha256      {meta.weights_sha256}",
        f"  dataset_fingerprint {meta.dataset_fingerprint}",
        f"  skipped             {len(meta.skipped)}"
        + "".join(f"\n    {s['path']}: {s['error']}" for s in meta.skipped),
        "  transform           " + meta.transform.replace("\n", "\n    "),
        "  versions            " + ", ".join(f"{k} {v}" for k, v in meta.versions.items()),
    ]
    if meta.extra:
        lines.append("  extra               " + json.dumps(meta.extra, sort_keys=True))
    return "\n".join(lines)
