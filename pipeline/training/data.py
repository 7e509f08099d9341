"""The features a head trains on: both splits of a store, checked, loaded once, shared by runs."""

from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.config import Params, value_text
from pipeline.common.errors import FeatureStoreError
from pipeline.common.files import file_sha256
from pipeline.store.hdf5 import FeatureSplit, StoreMeta, load_splits, read_meta

#: The generated data sets, by params block.
GENERATED = ("spiral", "qc", "qq")


@dataclass(frozen=True)
class HeadData:
    """Both splits of a feature store, checked and loaded once."""

    path: str
    sha256: str  # of the file's bytes
    meta: StoreMeta
    train: FeatureSplit
    val: FeatureSplit

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.meta.class_names


def load_data(path: str | Path) -> HeadData:
    """Read and check the ``train`` and ``val`` splits of a whole feature store.

    Raises:
        FeatureStoreError: what :func:`pipeline.store.hdf5.load` refuses, a shard, an empty
            split, fewer than 2 classes, or a class without training rows.
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


def features_for(params: Params) -> str:
    """The store ``params`` trains on; a generated one must exist with the settings of its block.

    Raises:
        FeatureStoreError: a generated store missing or stale (the message gives the command).
    """
    path = params.features_path
    outs = {getattr(params, f"{block}_out"): block for block in GENERATED}
    block = next((b for out, b in outs.items() if Path(out) == Path(path)), None)
    if block is None:
        return path  # an extracted store: load_data checks it
    command = datasets_command(params, block)
    if not Path(path).exists():
        raise FeatureStoreError(f"feature store {path!r} is missing; make it first:\n  {command}")
    recorded = read_meta(path).extra.get(block, {})
    if not isinstance(recorded, dict):
        raise FeatureStoreError(
            f"feature store {path!r}: extra.{block}: expected a JSON object of the {block} "
            f"settings; got {recorded!r}; make it again:\n  {command} --force"
        )
    current = _as_json(dataclasses.asdict(getattr(params, block)))
    stale = [k for k, v in recorded.items() if k in current and current[k] != v]
    if stale:
        found = ", ".join(f"{block}.{k}: {recorded[k]!r} in the store, {current[k]!r} in params"
                          for k in stale)  # fmt: skip
        raise FeatureStoreError(
            f"feature store {path!r} was made with other settings ({found}); make it again:\n"
            f"  {command} --force"
        )
    return path


def datasets_command(params: Params, block: str) -> str:
    """The ``python -m pipeline.datasets`` command that writes ``block`` as ``params`` sets it."""
    values = _as_json(dataclasses.asdict(getattr(params, block)))
    sets = [f"--set {shlex.quote(f'{block}.{k}={value_text(v)}')}" for k, v in values.items()]
    return " ".join(["python -m pipeline.datasets", block, *sets])


def _as_json(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values))
