"""Shards of a feature store (``--shard K/N``: K-th of N contiguous row ranges) and their merge."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.common.errors import ConfigError, FeatureStoreError
from pipeline.store.hdf5 import (
    SHARD_KEY,
    FeatureSplit,
    SplitArrays,
    StoreMeta,
    load_splits,
    read_meta,
    write_like,
)


@dataclass(frozen=True)
class Shard:
    """The ``index``-th (1-based) of ``count`` contiguous parts of an extraction's images."""

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

#: What the shards of one extraction share.
_SHARD_SAME = (
    "source",
    "backbone",
    "weights",
    "weights_sha256",
    "transform",
    "class_names",
    "splits",
    "feature_dim",
    "feature_dtype",
    "dataset_fingerprint",
    "versions",
)


def merge(out: str | Path, shards: Sequence[str | Path]) -> StoreMeta:
    """Join the shards of one extraction into the store a single process would have written.

    Raises:
        FeatureStoreError: not shards of one extraction, overlapping, or missing images.
    """
    if not shards:
        raise FeatureStoreError("merge: expected at least one shard file")
    metas = [read_meta(p) for p in shards]
    records = [_shard_record(path, meta) for path, meta in zip(shards, metas, strict=True)]
    order = _shard_order(shards, records)
    ref_path, ref = shards[order[0]], metas[order[0]]
    ref_extra = {k: v for k, v in ref.extra.items() if k != SHARD_KEY}
    for i in order[1:]:
        _check_same_extraction(shards[i], metas[i], ref_path, ref, ref_extra)
    parts: dict[str, list[FeatureSplit]] = {split: [] for split in ref.splits}
    skipped: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    for i in order:
        loaded = _load_shard(shards[i], metas[i], records[i], seen)
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
    return write_like(out, splits, ref, skipped=skipped, extra=ref_extra)


def _shard_record(path: str | Path, meta: StoreMeta) -> dict[str, int]:
    record = meta.shard
    if not isinstance(record, dict) or sorted(record) != sorted(_SHARD_FIELDS):
        raise FeatureStoreError(
            f"{str(path)!r} is not a shard (no extra.{SHARD_KEY} metadata); expected files "
            "written by `python -m pipeline.extract --shard K/N`"
        )
    return record


def _shard_order(shards: Sequence[str | Path], records: Sequence[dict[str, int]]) -> list[int]:
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
    return [by_index[k] for k in range(1, first["count"] + 1)]


def _check_same_extraction(
    path: str | Path, meta: StoreMeta, ref_path: str | Path, ref: StoreMeta, ref_extra: dict
) -> None:
    for name in _SHARD_SAME:
        if getattr(meta, name) != getattr(ref, name):
            raise FeatureStoreError(
                f"{str(path)!r}: {name} {getattr(meta, name)!r} differs from "
                f"{str(ref_path)!r}'s {getattr(ref, name)!r}; expected shards of one "
                "extraction (same images, backbone, weights, transform and versions)"
            )
    extra = {k: v for k, v in meta.extra.items() if k != SHARD_KEY}
    if extra != ref_extra:
        raise FeatureStoreError(
            f"{str(path)!r}: extra metadata {extra} differs from {str(ref_path)!r}'s {ref_extra}"
        )


def _load_shard(
    path: str | Path, meta: StoreMeta, record: dict[str, int], seen: dict[str, str]
) -> dict[str, FeatureSplit]:
    loaded = load_splits(path, meta.splits)
    rows = sum(len(part) for part in loaded.values())
    span = record["stop"] - record["start"]
    if rows + len(meta.skipped) != span:
        raise FeatureStoreError(
            f"{str(path)!r}: {rows} rows and {len(meta.skipped)} skipped images, but "
            f"shard {record['index']}/{record['count']} covers {span} images "
            f"({record['start']}..{record['stop'] - 1})"
        )
    names = [p for part in loaded.values() for p in part.paths]
    names += [s["path"] for s in meta.skipped]
    for name in names:
        if name in seen:
            raise FeatureStoreError(
                f"image {name!r} is in both {seen[name]!r} and {str(path)!r}; expected "
                "disjoint shards"
            )
        seen[name] = str(path)
    return loaded
