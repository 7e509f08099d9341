"""A run folder written by ``pipeline.train_head``, read back and checked, and its images found.

Read without torch, through ``run.json`` (:mod:`pipeline.heads.record`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common import folders
from pipeline.common.errors import DataError, PipelineError
from pipeline.heads.record import read_record
from pipeline.sources import folder
from pipeline.store.hdf5 import is_random_init


@dataclass(frozen=True)
class Run:
    """What :func:`load_run` reads from a run folder."""

    path: Path
    class_names: tuple[str, ...]
    best_epoch: int
    head: str
    features: dict[str, Any]  # the checkpoint's record of the feature store
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    predictions: list[dict[str, str]]  # path, actual, predicted, probability

    @property
    def random_init(self) -> bool:
        return is_random_init(self.features)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_run(out_dir: str | Path) -> Run:
    """Read the outputs of ``pipeline.train_head`` from ``out_dir``.

    Raises:
        PipelineError: the folder or one of its files is missing or malformed.
        MixedRunError: ``model.pt`` is not the one ``metrics.json`` was written with.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise PipelineError(
            f"run folder {str(out)!r} does not exist; train a head first "
            "(python -m pipeline.train_head) or pass --out-dir"
        )
    names = ("model.pt", "metrics.json", "history.csv", "val_predictions.csv")
    missing = [n for n in names if not (out / n).is_file()]
    if missing:
        raise PipelineError(
            f"run folder {str(out)!r} lacks {', '.join(missing)}; expected the outputs of "
            "python -m pipeline.train_head"
        )
    try:
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise PipelineError(f"{out / 'metrics.json'}: malformed JSON ({exc})") from exc
    folders.check_pair(out / "model.pt", metrics)
    ckpt = read_record(out)  # run.json: what model.pt holds but the weights, without torch
    if ckpt is None:  # a run folder of an older version: model.pt itself, with torch
        from pipeline.heads.checkpoint import read_checkpoint

        ckpt = read_checkpoint(out / "model.pt")
        folders.check_pair(out / "model.pt", metrics)  # after both reads: a swap between is seen
    elif ckpt["model_sha256"] != metrics.get(folders.MODEL_DIGEST_KEY, ckpt["model_sha256"]):
        raise folders.MixedRunError(  # the folder was swapped after metrics.json was read
            f"{out / 'run.json'} and {out / 'metrics.json'} come from different runs: read "
            "it again once train_head is done, or rerun train_head"
        )
    try:
        history = [{k: float(v) for k, v in row.items()} for row in _read_csv(out / "history.csv")]
        predictions = _read_csv(out / "val_predictions.csv")
        confusion = np.asarray(metrics["best"]["confusion"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"run folder {str(out)!r}: malformed outputs ({exc})") from exc
    k = len(ckpt["class_names"])
    if confusion.shape != (k, k):
        raise PipelineError(
            f"{out / 'metrics.json'}: expected a {k}x{k} confusion matrix; got {confusion.shape}"
        )
    if not history:
        raise PipelineError(f"{out / 'history.csv'}: expected one row per epoch; got none")
    for key in ("path", "actual", "predicted", "probability"):
        if predictions and key not in predictions[0]:
            raise PipelineError(f"{out / 'val_predictions.csv'}: expected a column {key!r}")
    return Run(
        path=out,
        class_names=tuple(ckpt["class_names"]),
        best_epoch=int(ckpt["best_epoch"]),
        head=str(ckpt["config"].get("head", "?")),
        features=dict(ckpt["features"]),
        metrics=metrics,
        history=history,
        predictions=predictions,
    )


def _candidates(run: Run, recorded: str) -> list[Path]:
    """A recorded data folder as is, then relative to each folder above the run folder."""
    path = Path(recorded)
    if path.is_absolute():
        return [path]
    found = [path, *(parent / path for parent in run.path.resolve().parents)]
    return list(dict.fromkeys(found))


def _matches(run: Run, root: Path, splits: list[str]) -> str | None:
    """None when ``root`` holds exactly the images of the run's features, else why not."""
    try:
        listing = folder.scan(root, splits)
    except DataError as exc:
        return f"{str(root)!r} does not hold them ({exc})"
    if folder.fingerprint(root, listing) != run.features.get("dataset_fingerprint"):
        return (
            f"{str(root)!r} does not hold the images the run's features were made from (their "
            "dataset fingerprint differs: images added, removed, renamed or changed)"
        )
    return None


def find_images(run: Run, data_dir: str | Path | None = None) -> Path:
    """The folder holding the images of the run's features, checked against their fingerprint.

    The folder is the one stage one recorded, or ``data_dir``; the fingerprint check keeps
    another data set with the same relative paths from being shown.

    Raises:
        DataError: no image folder recorded, or no candidate holds the run's images.
    """
    source = run.features.get("source")
    if source != "folder":
        raise DataError(f"the features come from source {source!r}, not from image files")
    record = (run.features.get("extra") or {}).get("images")
    if record is None and data_dir is None:
        raise DataError(
            "the run's features record no data folder (extracted by an older version); pass "
            "--data-dir with the folder of its images"
        )
    splits = list(record["splits"]) if record else ["train", "val"]
    candidates = [Path(data_dir)] if data_dir is not None else _candidates(run, record["dir"])
    reasons = []
    for root in candidates:
        if root.is_dir():
            reason = _matches(run, root, splits)
            if reason is None:
                return root
            reasons.append(reason)
    where = ", ".join(repr(str(c)) for c in candidates)
    what = f"{str(data_dir)!r} (--data-dir)" if data_dir is not None else repr(record["dir"])
    detail = "; ".join(reasons) if reasons else f"none of {where} exists"
    raise DataError(
        f"the images of the run's features are not in {what}: {detail}. Pass --data-dir with "
        "the folder that holds them now"
    )
