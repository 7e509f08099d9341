"""The HDF5 feature store: the only interface between stage one and everything after it.

Layout (``FORMAT_VERSION`` 1)::

    /                      attributes: see ``REQUIRED_ATTRS``; ``complete = True`` is written last
    /<split>/features      float32 (N, feature_dim)
    /<split>/labels        int64   (N,)     index into ``class_names``
    /<split>/paths         utf-8   (N,)     image path relative to the data folder

Files are written to a temporary file beside the target and ``os.replace``d, without
timestamps, so the same inputs give byte-identical files. Everything that reads a store goes
through :func:`load` (or :func:`read_meta`), which refuses incomplete, unknown-version or
inconsistent files.

A *shard* (``python -m pipeline.extract --shard K/N``) is a store of the same layout that
holds the K-th of N contiguous, near-equal ranges of the images in listing order (all splits
one after the other); ``extra["shard"]`` records ``index``, ``count``, ``start``, ``stop`` and
``total``. :func:`merge` joins the N shards of one extraction into the file a single process
would have written.

Command line::

    python -m pipeline.features info FILE     # counts per split and class, and the metadata
    python -m pipeline.features verify FILE   # exit non-zero unless the file is complete and sound
    python -m pipeline.features merge OUT SHARD...   # join the shards of one extraction
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, FeatureStoreError
from pipeline.files import atomic_path

FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)

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

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

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

    features: np.ndarray  # (N, feature_dim) float32
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
        class_names: label index -> class name.
        source, backbone, weights, weights_sha256, transform, dataset_fingerprint: provenance.
        skipped: ``{"path": ..., "error": ...}`` for each image left out.
        versions: library versions; defaults to :func:`library_versions`.
        extra: further JSON-serialisable metadata (e.g. a dataset generator's parameters).

    Returns:
        The :class:`StoreMeta` of the written file.
    """
    h5py = _h5py()
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
    }
    str_dtype = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", libver="earliest", track_order=False) as f:
            for name, s in splits.items():
                group = f.create_group(name)
                group.create_dataset(
                    "features",
                    data=np.ascontiguousarray(s.features, dtype=np.float32),
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
    )


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
    if features.dtype != np.float32 or features.shape != (n, meta.feature_dim):
        raise FeatureStoreError(
            f"feature store {path!r}: {split}/features: expected float32 of shape "
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
        A :class:`FeatureSplit` with features (N, D) float32, labels (N,) int64, paths, meta.

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
    lines = [f"{path}", f"  format_version {meta.format_version}, feature_dim {meta.feature_dim}"]
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


# --------------------------------------------------------------------------- shards

#: The ``extra`` key of a shard's metadata.
SHARD_KEY = "shard"


@dataclass(frozen=True)
class Shard:
    """The ``index``-th (1-based) of ``count`` contiguous parts of an extraction's images.

    Example:
        >>> Shard.parse("2/3").bounds(10)
        (3, 6)
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and isinstance(self.index, int)):
            raise ConfigError(f"shard: expected integers K/N; got {self.index!r}/{self.count!r}")
        if not 1 <= self.index <= self.count:
            raise ConfigError(
                f"--shard: expected K/N with 1 <= K <= N (e.g. 1/4); got {self.index}/{self.count}"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` -> ``Shard(K, N)``; the error shows the expected spelling."""
        k, sep, n = text.partition("/")
        try:
            if not sep:
                raise ValueError(text)
            return cls(int(k), int(n))
        except ValueError:
            raise ConfigError(
                f"--shard: expected K/N with 1 <= K <= N (e.g. 1/4); got {text!r}"
            ) from None

    def bounds(self, total: int) -> tuple[int, int]:
        """``(start, stop)``: this shard's range of the ``total`` images in listing order."""
        return (self.index - 1) * total // self.count, self.index * total // self.count

    def path(self, out: str | Path) -> Path:
        """Where this shard of the store ``out`` goes: ``x.h5`` -> ``x.shard-K-of-N.h5``."""
        out = Path(out)
        return out.with_name(f"{out.stem}.shard-{self.index}-of-{self.count}{out.suffix}")

    def meta(self, total: int) -> dict[str, int]:
        """The ``extra["shard"]`` record of this shard of ``total`` images."""
        start, stop = self.bounds(total)
        return {
            "index": self.index,
            "count": self.count,
            "start": start,
            "stop": stop,
            "total": total,
        }


_SHARD_FIELDS = ("index", "count", "start", "stop", "total")

#: What must be equal in the shards of one extraction (all but the shard record itself).
_SHARD_SAME = (
    "source",
    "backbone",
    "weights",
    "weights_sha256",
    "transform",
    "class_names",
    "splits",
    "feature_dim",
    "dataset_fingerprint",
    "versions",
)


def merge(out: str | Path, shards: Sequence[str | Path]) -> StoreMeta:
    """Join the shards of one extraction into the store a single process would have written.

    Checks that every file is a complete shard, that all come from the same extraction (same
    backbone, weights and their sha256, transform, classes, splits, dataset fingerprint,
    library versions and extra metadata), and that their ranges are disjoint and cover every
    image exactly once (rows plus skipped images). Then writes ``out`` atomically with the
    rows in listing order: the same features, labels, paths and attributes as a single-process
    extraction (byte-identical on CPU).

    Args:
        out: the merged store to write (the inputs are left as they are).
        shards: the shard files, in any order.

    Returns:
        The :class:`StoreMeta` of ``out``.

    Raises:
        FeatureStoreError: a file is not a complete shard, the shards are incompatible,
            overlap, or miss part of the images (the message names the files).
    """
    if not shards:
        raise FeatureStoreError("merge: expected at least one shard file")
    metas = [read_meta(p) for p in shards]
    records = []
    for path, meta in zip(shards, metas, strict=True):
        record = meta.extra.get(SHARD_KEY)
        if not isinstance(record, dict) or sorted(record) != sorted(_SHARD_FIELDS):
            raise FeatureStoreError(
                f"{str(path)!r} is not a shard (no extra.{SHARD_KEY} metadata); expected files "
                "written by `python -m pipeline.extract --shard K/N`"
            )
        records.append(record)
    first = records[0]
    by_index: dict[int, int] = {}
    for i, (path, record) in enumerate(zip(shards, records, strict=True)):
        if (record["count"], record["total"]) != (first["count"], first["total"]):
            raise FeatureStoreError(
                f"{str(path)!r} is shard {record['index']}/{record['count']} of "
                f"{record['total']} images but {str(shards[0])!r} is shard "
                f"{first['index']}/{first['count']} of {first['total']}; expected the shards "
                "of one extraction"
            )
        if record["index"] in by_index:
            raise FeatureStoreError(
                f"shard {record['index']}/{record['count']} given twice: "
                f"{str(shards[by_index[record['index']]])!r} and {str(path)!r}"
            )
        by_index[record["index"]] = i
        expected = Shard(record["index"], record["count"]).meta(record["total"])
        if record != expected:
            raise FeatureStoreError(
                f"{str(path)!r}: shard record {record} does not match the deterministic split "
                f"{expected}"
            )
    missing = sorted(set(range(1, first["count"] + 1)) - set(by_index))
    if missing:
        base = Path(re.sub(r"\.shard-\d+-of-\d+", "", Path(shards[0]).name))
        names = ", ".join(
            f"{k}/{first['count']} ({Shard(k, first['count']).path(base).name}?)" for k in missing
        )
        raise FeatureStoreError(
            f"merge: missing shard {names}; got {len(by_index)} of {first['count']}"
        )
    order = [by_index[k] for k in range(1, first["count"] + 1)]
    ref_path, ref = shards[order[0]], metas[order[0]]
    ref_extra = {k: v for k, v in ref.extra.items() if k != SHARD_KEY}
    for i in order[1:]:
        meta = metas[i]
        for name in _SHARD_SAME:
            if getattr(meta, name) != getattr(ref, name):
                raise FeatureStoreError(
                    f"{str(shards[i])!r}: {name} {getattr(meta, name)!r} differs from "
                    f"{str(ref_path)!r}'s {getattr(ref, name)!r}; expected shards of one "
                    "extraction (same images, backbone, weights, transform and versions)"
                )
        extra = {k: v for k, v in meta.extra.items() if k != SHARD_KEY}
        if extra != ref_extra:
            raise FeatureStoreError(
                f"{str(shards[i])!r}: extra metadata {extra} differs from {str(ref_path)!r}'s "
                f"{ref_extra}"
            )
    parts: dict[str, list[FeatureSplit]] = {split: [] for split in ref.splits}
    skipped: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    for i in order:
        path, record = shards[i], records[i]
        loaded = load_splits(path, ref.splits)
        rows = sum(len(part) for part in loaded.values())
        span = record["stop"] - record["start"]
        if rows + len(metas[i].skipped) != span:
            raise FeatureStoreError(
                f"{str(path)!r}: {rows} rows and {len(metas[i].skipped)} skipped images, but "
                f"shard {record['index']}/{record['count']} covers {span} images "
                f"({record['start']}..{record['stop'] - 1})"
            )
        names = [p for part in loaded.values() for p in part.paths]
        names += [s["path"] for s in metas[i].skipped]
        for name in names:
            if name in seen:
                raise FeatureStoreError(
                    f"image {name!r} is in both {seen[name]!r} and {str(path)!r}; expected "
                    "disjoint shards"
                )
            seen[name] = str(path)
        for split, part in loaded.items():
            parts[split].append(part)
        skipped += [dict(s) for s in metas[i].skipped]
    splits = {
        split: SplitArrays(
            features=np.concatenate([p.features for p in chunks]),
            labels=np.concatenate([p.labels for p in chunks]),
            paths=[path for p in chunks for path in p.paths],
        )
        for split, chunks in parts.items()
    }
    return write(
        out,
        splits,
        class_names=ref.class_names,
        source=ref.source,
        backbone=ref.backbone,
        weights=ref.weights,
        weights_sha256=ref.weights_sha256,
        transform=ref.transform,
        dataset_fingerprint=ref.dataset_fingerprint,
        skipped=skipped,
        versions=ref.versions,
        extra=ref_extra,
    )


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline import cli

    parser = argparse.ArgumentParser(
        prog="python -m pipeline.features", description="Inspect and check feature stores."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="counts per split and class, and the metadata").add_argument("file")
    sub.add_parser(
        "verify", help="exit non-zero unless the file is complete and sound"
    ).add_argument("file")
    merge_parser = sub.add_parser(
        "merge", help="join the shards of one extraction (`pipeline.extract --shard K/N`)"
    )
    merge_parser.add_argument("out", help="the merged store to write")
    merge_parser.add_argument("shards", nargs="+", metavar="shard", help="shard files")
    args = parser.parse_args(argv)
    cli.setup_logging()

    def task() -> None:
        if args.command == "info":
            print(describe(args.file))
        elif args.command == "merge":
            meta = merge(args.out, args.shards)
            print(f"{args.out}: merged {len(args.shards)} shards ({', '.join(meta.splits)})")
        else:
            meta = verify(args.file)
            counts = ", ".join(f"{s}" for s in meta.splits)
            print(f"{args.file}: OK (format {meta.format_version}; splits {counts})")

    return cli.run(task)


if __name__ == "__main__":
    sys.exit(main())
