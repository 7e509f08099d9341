"""The HDF5 feature store: the only interface between stage one and everything after it.

Layout (``FORMAT_VERSION`` 1)::

    /                      attributes: see ``REQUIRED_ATTRS``; ``complete = True`` is written last
    /<split>/features      float32 (N, feature_dim)
    /<split>/labels        int64   (N,)     index into ``class_names``
    /<split>/paths         utf-8   (N,)     image path relative to the data folder (or a row id)

Features of another dtype (:data:`FEATURE_DTYPES`: complex128, the QQ data set's kets, held
exactly) are written as ``FORMAT_VERSION`` 2: the same layout plus a root attribute
``feature_dtype`` naming the dtype of every ``/<split>/features``. A float32 store is still
written as version 1 without that attribute, so its bytes do not change; readers take a
version-1 store as float32.

Files are written to a temporary file beside the target and ``os.replace``d, without
timestamps, so the same inputs give byte-identical files. Everything that reads a store goes
through :func:`load` (or :func:`load_splits`, :func:`read_meta`), which refuses incomplete,
unknown-version or inconsistent files.

The metadata also answers "were these features made by a random-init backbone?"
(:attr:`StoreMeta.random_init`, :func:`is_random_init` for a checkpoint's copy of it), with
one warning text, :data:`RANDOM_INIT_WARNING`, and "is this a shard?"
(:attr:`StoreMeta.shard`; see :mod:`pipeline.store.shards`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.errors import FeatureStoreError
from pipeline.common.files import atomic_path

FORMAT_VERSION = 1  # float32 features
SUPPORTED_VERSIONS = (1, 2)
#: The format version of stores whose features are not float32 (they carry ``feature_dtype``).
TYPED_FORMAT_VERSION = 2
#: Feature dtypes a store may hold: float32 (version 1) and complex128 (version 2).
FEATURE_DTYPES = ("float32", "complex128")

#: Root attributes every complete store carries (``complete`` is written last).
REQUIRED_ATTRS = (
    "format_version",
    "class_names",
    "source",
    "backbone",
    "weights",
    "weights_sha256",
    "transform",
    "feature_dim",
    "splits",
    "dataset_fingerprint",
    "skipped",
    "versions",
)
_JSON_ATTRS = ("class_names", "splits", "skipped", "versions", "extra")

#: The ``extra`` key of a shard's metadata (see :mod:`pipeline.store.shards`).
SHARD_KEY = "shard"

#: The one warning for features of a random-init backbone (``extract.weights: none``); it is
#: also stored in such a file's ``extra["warning"]``.
RANDOM_INIT_WARNING = (
    "RANDOM-INIT BACKBONE (extract.weights = none): the features carry no ImageNet knowledge; "
    "use them for tests and timing only, never for accuracy figures"
)


def is_random_init(provenance: Mapping[str, Any]) -> bool:
    """Whether a store's provenance (:meth:`StoreMeta.provenance`, as a checkpoint keeps it)
    says the features come from a random-init backbone."""
    return (provenance.get("extra") or {}).get("weights_kind") == "none"


@dataclass(frozen=True)
class StoreMeta:
    """The root attributes of a feature store."""

    path: str
    format_version: int
    class_names: tuple[str, ...]
    source: str
    backbone: str
    weights: str
    weights_sha256: str
    transform: str
    feature_dim: int
    splits: tuple[str, ...]
    dataset_fingerprint: str
    skipped: tuple[dict[str, str], ...]
    versions: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)
    feature_dtype: str = "float32"  # one of FEATURE_DTYPES

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def random_init(self) -> bool:
        """Made by a random-init backbone: accuracies on these features mean nothing."""
        return is_random_init({"extra": self.extra})

    @property
    def shard(self) -> dict[str, int] | None:
        """The shard record (index, count, start, stop, total), None for a whole store."""
        return self.extra.get(SHARD_KEY)

    def require_whole(self) -> None:
        """Raise unless this is a whole store (stage two refuses shards).

        Raises:
            FeatureStoreError: it is one shard of an extraction.
        """
        if self.shard:
            raise FeatureStoreError(
                f"feature store {self.path!r} is shard {self.shard['index']}/"
                f"{self.shard['count']} of an extraction; merge the shards first "
                "(python -m pipeline.features merge OUT SHARD...)"
            )

    def provenance(self) -> dict[str, Any]:
        """What identifies the features (not the file): stored with every trained head."""
        return {
            "source": self.source,
            "backbone": self.backbone,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "transform": self.transform,
            "feature_dim": self.feature_dim,
            "class_names": list(self.class_names),
            "dataset_fingerprint": self.dataset_fingerprint,
            "extra": self.extra,
        }


@dataclass(frozen=True)
class FeatureSplit:
    """One split of a store, as :func:`load` returns it."""

    features: np.ndarray  # (N, feature_dim) meta.feature_dtype: float32 or complex128
    labels: np.ndarray  # (N,) int64
    paths: list[str]
    meta: StoreMeta

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class SplitArrays:
    """One split to write."""

    features: np.ndarray
    labels: np.ndarray
    paths: Sequence[str]


def _h5py():
    import h5py

    return h5py


def _attr_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------- writing


def _feature_dtype(path: str | Path, splits: Mapping[str, SplitArrays]) -> str:
    """complex128 when the splits' features are complex, else float32 (what is written)."""
    kinds = {name: np.iscomplexobj(s.features) for name, s in splits.items()}
    if len(set(kinds.values())) > 1:
        raise FeatureStoreError(
            f"{path}: expected the features of every split to be all real or all complex; got "
            + ", ".join(f"{n} {'complex' if c else 'real'}" for n, c in kinds.items())
        )
    return "complex128" if any(kinds.values()) else "float32"


def _feature_dim(path: str | Path, splits: Mapping[str, SplitArrays]) -> int:
    """The common width of the splits' features, checked with their row counts."""
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
    """Write a complete feature store atomically (temporary file, then ``os.replace``).

    Args:
        path: the target file; its folder is created.
        splits: split name -> :class:`SplitArrays` (features (N, D), labels (N,), paths (N,)).
            Real features are stored as float32 (format version 1), complex ones exactly as
            complex128 (format version 2, ``feature_dtype``); all splits must agree.
        class_names: label index -> class name.
        source, backbone, weights, weights_sha256, transform, dataset_fingerprint: provenance.
        skipped: ``{"path": ..., "error": ...}`` for each image left out.
        versions: library versions; defaults to :func:`library_versions`.
        extra: further JSON-serialisable metadata (e.g. a dataset generator's parameters).

    Returns:
        The :class:`StoreMeta` of the written file.
    """
    h5py = _h5py()
    feature_dim = _feature_dim(path, splits)
    feature_dtype = _feature_dtype(path, splits)
    typed = feature_dtype != "float32"
    attrs: dict[str, Any] = {
        "format_version": TYPED_FORMAT_VERSION if typed else FORMAT_VERSION,
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
    }
    if typed:  # only then: a float32 store keeps the bytes of format version 1
        attrs["feature_dtype"] = feature_dtype
    str_dtype = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", libver="earliest", track_order=False) as f:
            for name, s in splits.items():
                group = f.create_group(name)
                group.create_dataset(
                    "features",
                    data=np.ascontiguousarray(s.features, dtype=feature_dtype),
                    track_times=False,
                )
                group.create_dataset(
                    "labels", data=np.asarray(s.labels, dtype=np.int64), track_times=False
                )
                group.create_dataset(
                    "paths",
                    data=np.array(list(s.paths), dtype=object),
                    dtype=str_dtype,
                    track_times=False,
                )
            for key, value in attrs.items():
                f.attrs[key] = json.dumps(value, sort_keys=True) if key in _JSON_ATTRS else value
            f.attrs["complete"] = True  # last: a file without it was interrupted
    return read_meta(path)


def write_like(
    path: str | Path,
    splits: Mapping[str, SplitArrays],
    like: StoreMeta,
    *,
    skipped: Sequence[Mapping[str, str]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> StoreMeta:
    """:func:`write` ``splits`` with the provenance of an existing store's ``like``.

    Used to rewrite a store (another ``extra``) and to merge shards, so that the provenance
    is copied in one place. ``skipped`` and ``extra`` default to ``like``'s.
    """
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


# --------------------------------------------------------------------------- reading


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
    attrs = f.attrs
    if not bool(attrs.get("complete", False)):
        raise FeatureStoreError(
            f"feature store {str(path)!r} is incomplete (no 'complete' attribute): it was "
            "interrupted while being written; extract it again"
        )
    version = int(attrs.get("format_version", -1))
    if version not in SUPPORTED_VERSIONS:
        raise FeatureStoreError(
            f"feature store {str(path)!r} has format_version {version}; this pipeline reads "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}"
        )
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise FeatureStoreError(f"feature store {str(path)!r} lacks attributes {missing}")
    feature_dtype = _declared_dtype(attrs, version, path)
    values = {
        k: (json.loads(_attr_str(attrs[k])) if k in _JSON_ATTRS else attrs[k])
        for k in (*REQUIRED_ATTRS, "extra")
        if k in attrs
    }
    return StoreMeta(
        path=str(path),
        format_version=version,
        class_names=tuple(values["class_names"]),
        source=_attr_str(values["source"]),
        backbone=_attr_str(values["backbone"]),
        weights=_attr_str(values["weights"]),
        weights_sha256=_attr_str(values["weights_sha256"]),
        transform=_attr_str(values["transform"]),
        feature_dim=int(values["feature_dim"]),
        splits=tuple(values["splits"]),
        dataset_fingerprint=_attr_str(values["dataset_fingerprint"]),
        skipped=tuple(values["skipped"]),
        versions=dict(values["versions"]),
        extra=dict(values.get("extra", {})),
        feature_dtype=feature_dtype,
    )


def _declared_dtype(attrs, version: int, path: str | Path) -> str:
    """The features' dtype: float32 for version 1, the ``feature_dtype`` attribute for 2."""
    if version == 1:
        if "feature_dtype" in attrs:
            raise FeatureStoreError(
                f"feature store {str(path)!r}: format_version 1 stores are float32 and carry no "
                f"feature_dtype; got feature_dtype {_attr_str(attrs['feature_dtype'])!r}"
            )
        return "float32"
    declared = _attr_str(attrs.get("feature_dtype", ""))
    if declared not in FEATURE_DTYPES:
        raise FeatureStoreError(
            f"feature store {str(path)!r}: format_version {version} needs a feature_dtype "
            f"attribute, one of {', '.join(FEATURE_DTYPES)}; got {declared or 'none'!r}"
        )
    return declared


def read_meta(path: str | Path) -> StoreMeta:
    """The metadata of a complete store of a known format version (no arrays are read).

    Raises:
        FeatureStoreError: missing, not HDF5, incomplete, or of an unknown format version.
    """
    with _open(path) as f:
        return _meta_from(f, path)


def _read_split(f, meta: StoreMeta, split: str) -> FeatureSplit:
    path = meta.path
    if split not in meta.splits or split not in f:
        raise FeatureStoreError(
            f"feature store {path!r} has no split {split!r}; it has {list(meta.splits)}"
        )
    group = f[split]
    for name in ("features", "labels", "paths"):
        if name not in group:
            raise FeatureStoreError(f"feature store {path!r}: split {split!r} lacks {name!r}")
    features = group["features"][()]
    labels = group["labels"][()]
    paths = [_attr_str(p) for p in group["paths"][()]]
    n = len(labels)
    if features.dtype != np.dtype(meta.feature_dtype) or features.shape != (n, meta.feature_dim):
        raise FeatureStoreError(
            f"feature store {path!r}: {split}/features: expected {meta.feature_dtype} of shape "
            f"({n}, {meta.feature_dim}); got {features.dtype} {features.shape}"
        )
    if labels.dtype != np.int64 or labels.ndim != 1 or len(paths) != n:
        raise FeatureStoreError(
            f"feature store {path!r}: {split}: expected {n} int64 labels and {n} paths; got "
            f"{labels.dtype} {labels.shape} labels and {len(paths)} paths"
        )
    if n and (labels.min() < 0 or labels.max() >= meta.n_classes):
        raise FeatureStoreError(
            f"feature store {path!r}: {split}/labels: expected values in "
            f"[0, {meta.n_classes - 1}] ({meta.n_classes} classes); got "
            f"{int(labels.min())}..{int(labels.max())}"
        )
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise FeatureStoreError(
            f"feature store {path!r}: {split}/features has NaN or inf in {len(rows)} rows "
            f"(first: row {rows[0]}, {paths[rows[0]]!r})"
        )
    return FeatureSplit(features, labels, paths, meta)


def load(path: str | Path, split: str) -> FeatureSplit:
    """Read one split of a feature store, checking the file first.

    Args:
        path: an HDF5 file written by :func:`write`.
        split: e.g. ``"train"`` or ``"val"``.

    Returns:
        A :class:`FeatureSplit` with features (N, D) of the store's dtype (float32, or
        complex128 for a format-version-2 store that declares it), labels (N,) int64, paths,
        meta.

    Raises:
        FeatureStoreError: the file is missing, incomplete, of an unknown format version,
            lacks the split, or is inconsistent (shapes, label range, NaN or inf).

    Example:
        >>> train = load("features/hymenoptera-resnet18.h5", "train")
        >>> train.features.shape
        (244, 512)
    """
    with _open(path) as f:
        meta = _meta_from(f, path)
        return _read_split(f, meta, split)


def load_splits(path: str | Path, splits: Sequence[str]) -> dict[str, FeatureSplit]:
    """:func:`load` several splits from one open file."""
    with _open(path) as f:
        meta = _meta_from(f, path)
        return {s: _read_split(f, meta, s) for s in splits}


def verify(path: str | Path) -> StoreMeta:
    """Check the whole store (every split); return its metadata or raise FeatureStoreError."""
    with _open(path) as f:
        meta = _meta_from(f, path)
        extra_groups = sorted(set(f.keys()) - set(meta.splits))
        if extra_groups:
            raise FeatureStoreError(
                f"feature store {str(path)!r} has groups {extra_groups} not listed in 'splits'"
            )
        seen: set[str] = set()
        for split in meta.splits:
            for rel in _read_split(f, meta, split).paths:
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
