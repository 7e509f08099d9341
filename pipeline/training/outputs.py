"""A trained head's outputs in its run folder, each written atomically.

* ``model.pt``: the kept state dict, the full train config, class names, the features'
  identity (:mod:`pipeline.heads.checkpoint` reads it);
* ``metrics.json``: best and last epoch (val and train accuracy and loss, per-class accuracy,
  confusion matrix), parameter count, timing;
* ``history.csv``: epoch, train_loss, train_acc, val_loss, val_acc, lr;
* ``val_predictions.csv``: path, actual, predicted, probability (the kept checkpoint).

Same params and features file give identical bytes in all but ``metrics.json``'s ``timing``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from pipeline.common import files
from pipeline.common.config import to_dict
from pipeline.heads.checkpoint import CHECKPOINT_VERSION, DIGEST_KEY, tensors_sha256
from pipeline.training.loop import HISTORY_FIELDS, TrainResult


def checkpoint(result: TrainResult) -> dict[str, Any]:
    """The ``model.pt`` payload: plain types only (``torch.load(weights_only=True)`` reads it)."""
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    return {
        "format_version": CHECKPOINT_VERSION,
        "state_dict": state,
        DIGEST_KEY: tensors_sha256(state),
        "config": to_dict(replace(result.config, features=result.data.path)),
        "class_names": list(result.data.class_names),
        "in_features": result.data.meta.feature_dim,
        "best_epoch": result.best_epoch,
        "checkpoint": result.config.checkpoint,
        "epoch": result.best_epoch if result.config.checkpoint == "best" else result.config.epochs,
        "features": {
            "path": result.data.path,
            "sha256": result.data.sha256,
            **result.data.meta.provenance(),
        },
    }


def _csv(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def save_model(result: TrainResult, path: str | Path) -> Path:
    """Write the run's ``model.pt`` (:func:`checkpoint`) atomically."""
    buf = io.BytesIO()  # torch.save names the archive after the file: save to memory first
    torch.save(checkpoint(result), buf)
    files.write_bytes(path, buf.getvalue())
    return Path(path)


def save(result: TrainResult, out_dir: str | Path) -> Path:
    """Write model.pt, metrics.json, history.csv and val_predictions.csv, each atomically."""
    out = Path(out_dir)
    save_model(result, out / "model.pt")
    metrics = {**result.metrics, "timing": result.timing}
    files.write_text(out / "metrics.json", files.json_text(metrics))
    files.write_text(
        out / "history.csv",
        _csv([HISTORY_FIELDS, *([r[k] for k in HISTORY_FIELDS] for r in result.history)]),
    )
    names = result.data.class_names
    pred = result.val_probs.argmax(axis=1)
    files.write_text(
        out / "val_predictions.csv",
        _csv(
            [
                ("path", "actual", "predicted", "probability"),
                *(
                    (p, names[a], names[b], f"{result.val_probs[i, b]:.6f}")
                    for i, (p, a, b) in enumerate(
                        zip(result.data.val.paths, result.data.val.labels, pred, strict=True)
                    )
                ),
            ]
        ),
    )
    return out
