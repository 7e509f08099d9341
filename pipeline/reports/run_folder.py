"""A run folder written by ``pipeline.train_head``, read back and checked.

``model.pt`` (classes, best epoch, where the features came from), ``metrics.json``,
``history.csv`` and ``val_predictions.csv``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.errors import PipelineError
from pipeline.heads.checkpoint import read_checkpoint
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

    Args:
        out_dir: a run folder (``train.out_dir``).

    Returns:
        A :class:`Run`.

    Raises:
        PipelineError: the folder or one of its four files is missing or malformed (the
            message names the file and what was expected).

    Example:
        >>> load_run("runs/head").best_epoch
        12
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
    ckpt = read_checkpoint(out / "model.pt")
    try:
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
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
