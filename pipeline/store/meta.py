"""A feature store's root attributes (:class:`StoreMeta`) and their checks.

Format versions: 1 float32; 2 adds ``feature_dtype``; 3 adds Fletcher-32 checksums.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.common.errors import FeatureStoreError

log = logging.getLogger("pipeline")

FORMAT_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)
#: The first format version whose datasets carry Fletcher-32 checksums.
CHECKSUM_VERSION = 3
#: Feature dtypes a store may hold: float32 and complex128 (the QQ data set's kets).
FEATURE_DTYPES = ("float32", "complex128")
#: The largest ``feature_dim`` a store may declare.
MAX_FEATURE_DIM = 1 << 20

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
JSON_ATTRS = ("class_names", "splits", "skipped", "versions", "extra")
_TEXT_ATTRS = ("source", "backbone", "weights", "weights_sha256", "transform")

#: The ``extra`` key of a shard's metadata (see :mod:`pipeline.store.shards`).
SHARD_KEY = "shard"
_SHARD_FIELDS = ("index", "count", "start", "stop", "total")

#: The warning for features of a random-init backbone (``extract.weights: none``).
RANDOM_INIT_WARNING = (
    "RANDOM-INIT BACKBONE (extract.weights = none): the features carry no ImageNet knowledge; "
    "use them for tests and timing only, never for accuracy figures"
)


def is_random_init(provenance: Mapping[str, Any]) -> bool:
    """Whether a store's provenance says its features come from a random-init backbone."""
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
    def checksummed(self) -> bool:
        """Every dataset carries Fletcher-32 checksums (format version 3 on)."""
        return self.format_version >= CHECKSUM_VERSION

    @property
    def random_init(self) -> bool:
        """Made by a random-init backbone: accuracies on these features mean nothing."""
        return is_random_init({"extra": self.extra})

    @property
    def shard(self) -> dict[str, int] | None:
        """The shard record (index, count, start, stop, total), None for a whole store."""
        return self.extra.get(SHARD_KEY)

    def require_whole(self) -> None:
        """Raise :class:`FeatureStoreError` for a shard (stage two refuses them)."""
        if self.shard:
            raise FeatureStoreError(
                f"feature store {self.path!r} is shard {self.shard['index']}/"
                f"{self.shard['count']} of an extraction; merge the shards first "
                "(python -m pipeline.features merge OUT SHARD...)"
            )

    def provenance(self) -> dict[str, Any]:
        """What identifies the features (not the file); kept with every trained head."""
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

    def note_unchecked(self) -> None:
        """Log that a store of an older format carries no checksums."""
        if not self.checksummed:
            log.warning("%s", unchecked_note(self))


def unchecked_note(meta: StoreMeta) -> str:
    """The note for a store without checksums."""
    return (
        f"feature store {meta.path!r} (format_version {meta.format_version}) carries no "
        "checksums: corruption of its arrays cannot be detected; extract it again to add them"
    )


def _bad(path: str, key: str, expected: str, got: Any) -> FeatureStoreError:
    shown = repr(got)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return FeatureStoreError(
        f"feature store {path!r}: attribute {key!r}: expected {expected}; got {shown}; the "
        "file is malformed: extract it again"
    )


def _text(attrs, key: str, path: str) -> str:
    value = attrs[key]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(path, key, "a UTF-8 string", value) from None
    if not isinstance(value, str):
        raise _bad(path, key, "a string", value)
    return str(value)


def _integer(attrs, key: str, path: str, low: int, high: int) -> int:
    value = attrs[key]
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise _bad(path, key, f"an integer in [{low}, {high}]", value)
    if not low <= int(value) <= high:
        raise _bad(path, key, f"an integer in [{low}, {high}]", int(value))
    return int(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json(attrs, key: str, path: str) -> Any:
    text = _text(attrs, key, path)
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise _bad(path, key, f"JSON ({exc})", text) from None


def _strings(value: Any, path: str, key: str, *, empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(path, key, "a JSON list of strings", value)
    if len(set(value)) != len(value) or (not value and not empty):
        raise _bad(path, key, "a non-empty list of distinct strings", value)
    return tuple(value)


def _split_names(value: Any, path: str) -> tuple[str, ...]:
    names = _strings(value, path, "splits")
    if not all(n and "/" not in n and n.strip(".") for n in names):
        raise _bad(path, "splits", "split names (no '/', not empty)", value)
    return names


def _skipped(value: Any, path: str) -> tuple[dict[str, str], ...]:
    ok = isinstance(value, list) and all(
        isinstance(s, dict)
        and {"path", "error"} <= set(s)
        and all(isinstance(v, str) for v in s.values())
        for s in value
    )
    if not ok:
        raise _bad(path, "skipped", 'a JSON list of {"path": ..., "error": ...}', value)
    return tuple(value)


def _extra(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path, "extra", "a JSON object", value)
    record = value.get(SHARD_KEY)
    if record is not None:
        ok = (
            isinstance(record, dict)
            and sorted(record) == sorted(_SHARD_FIELDS)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in record.values())
        )
        if not ok:
            raise _bad(path, f"extra.{SHARD_KEY}", f"integers {', '.join(_SHARD_FIELDS)}", record)
    return value


def _complete(attrs, path: str) -> None:
    value = attrs.get("complete", None)
    if value is None or (isinstance(value, bool | np.bool_) and not value):
        raise FeatureStoreError(
            f"feature store {path!r} is incomplete (no 'complete' attribute): it was "
            "interrupted while being written; extract it again"
        )
    if not isinstance(value, bool | np.bool_):
        raise _bad(path, "complete", "the boolean true", value)


def _version(attrs, path: str) -> int:
    value = attrs.get("format_version", -1)
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise _bad(path, "format_version", "an integer", value)
    if int(value) not in SUPPORTED_VERSIONS:
        raise FeatureStoreError(
            f"feature store {path!r} has format_version {int(value)}; this pipeline reads "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}"
        )
    return int(value)


def _declared_dtype(attrs, version: int, path: str) -> str:
    if version == 1:
        if "feature_dtype" in attrs:
            raise FeatureStoreError(
                f"feature store {path!r}: format_version 1 stores are float32 and carry no "
                f"feature_dtype; got feature_dtype {attrs['feature_dtype']!r}"
            )
        return "float32"
    declared = _text(attrs, "feature_dtype", path) if "feature_dtype" in attrs else ""
    if declared not in FEATURE_DTYPES:
        raise FeatureStoreError(
            f"feature store {path!r}: format_version {version} needs a feature_dtype "
            f"attribute, one of {', '.join(FEATURE_DTYPES)}; got {declared or 'none'!r}"
        )
    return declared


def meta_from_attrs(attrs, path: str) -> StoreMeta:
    """The :class:`StoreMeta` of a file's root attributes, every value checked first."""
    _complete(attrs, path)
    version = _version(attrs, path)
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise FeatureStoreError(f"feature store {path!r} lacks attributes {missing}")
    feature_dtype = _declared_dtype(attrs, version, path)
    versions = _json(attrs, "versions", path)
    if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
        raise _bad(path, "versions", "a JSON object of strings", versions)
    return StoreMeta(
        path=path,
        format_version=version,
        class_names=_strings(_json(attrs, "class_names", path), path, "class_names"),
        **{k: _text(attrs, k, path) for k in _TEXT_ATTRS},
        feature_dim=_integer(attrs, "feature_dim", path, 1, MAX_FEATURE_DIM),
        splits=_split_names(_json(attrs, "splits", path), path),
        dataset_fingerprint=_text(attrs, "dataset_fingerprint", path),
        skipped=_skipped(_json(attrs, "skipped", path), path),
        versions=versions,
        extra=_extra(_json(attrs, "extra", path) if "extra" in attrs else {}, path),
        feature_dtype=feature_dtype,
    )


def strict_json(value: Any) -> str:
    """``value`` as JSON with sorted keys; NaN and infinities are refused."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except ValueError as exc:
        raise FeatureStoreError(f"metadata is not strict JSON: {exc}") from None
