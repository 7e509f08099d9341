"""A trained head's outputs in its run folder, each written atomically.

* ``model.pt``: the kept state dict, the full train config, class names, the features'
  identity, a circuit file's text and sha256 (:mod:`pipeline.heads.checkpoint` reads it);
* ``metrics.json``: best and last epoch (val and train accuracy and loss, per-class accuracy,
  confusion matrix), parameter count, timing;
* ``history.csv``: epoch, train_loss, train_acc, val_loss, val_acc, lr;
* ``val_predictions.csv``: path, actual, predicted, probability (the kept checkpoint).

The folder is replaced as one (:func:`pipeline.common.folders.replace_folder`): a reader sees
the old run or the new one. ``metrics.json`` records the sha256 of its ``model.pt``, which
readers check (:func:`pipeline.common.folders.check_pair`).

Same params and features file give identical bytes in all but ``metrics.json``'s ``timing``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from pipeline.common import files, folders
from pipeline.common.config import train_dict
from pipeline.heads.checkpoint import CHECKPOINT_VERSION, DIGEST_KEY, tensors_sha256
from pipeline.training.loop import HISTORY_FIELDS, TrainResult


def checkpoint(result: TrainResult) -> dict[str, Any]:
    """The ``model.pt`` payload: plain types only (``torch.load(weights_only=True)`` reads it)."""
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    payload = {
        "format_version": CHECKPOINT_VERSION,
        "state_dict": state,
        DIGEST_KEY: tensors_sha256(state),
        "config": train_dict(replace(result.config, features=result.data.path)),
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
    source = getattr(result.model, "circuit_source", None)
    if source is not None:  # a circuit file: its text, to rebuild the head without the file
        payload["circuit"] = source
    return payload


def _csv(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def model_bytes(result: TrainResult) -> bytes:
    """The bytes of the run's ``model.pt`` (:func:`checkpoint`)."""
    buf = io.BytesIO()  # torch.save names the archive after the file: save to memory first
    torch.save(checkpoint(result), buf)
    return buf.getvalue()


def save_model(result: TrainResult, path: str | Path) -> Path:
    """Write the run's ``model.pt`` (:func:`checkpoint`) atomically."""
    files.write_bytes(path, model_bytes(result))
    return Path(path)


def run_files(result: TrainResult) -> dict[str, bytes]:
    """The four files of a run folder by name; ``metrics.json`` records ``model.pt``'s sha256."""
    model = model_bytes(result)
    metrics = {
        **result.metrics,
        "timing": result.timing,
        folders.MODEL_DIGEST_KEY: hashlib.sha256(model).hexdigest(),
    }
    names = result.data.class_names
    pred = result.val_probs.argmax(axis=1)
    history = [HISTORY_FIELDS, *([r[k] for k in HISTORY_FIELDS] for r in result.history)]
    predictions = [
        ("path", "actual", "predicted", "probability"),
        *(
            (p, names[a], names[b], f"{result.val_probs[i, b]:.6f}")
            for i, (p, a, b) in enumerate(
                zip(result.data.val.paths, result.data.val.labels, pred, strict=True)
            )
        ),
    ]
    return {
        "model.pt": model,
        "metrics.json": files.json_text(metrics).encode(),
        "history.csv": _csv(history).encode(),
        "val_predictions.csv": _csv(predictions).encode(),
    }


def save(result: TrainResult, out_dir: str | Path, *, lock: bool = True) -> Path:
    """Write the run folder (:func:`run_files`) as one: built beside it, then swapped in.

    Other files already in the folder (later stages' plots and robustness files) are kept.

    Args:
        result: the trained run.
        out_dir: the run folder.
        lock: hold the folder's lock (:func:`pipeline.common.folders.locked`), waiting for
            another writer; False when the caller holds a lock over it.
    """
    contents = run_files(result)

    def write(tmp: Path) -> None:
        for name, data in contents.items():
            try:
                (tmp / name).write_bytes(data)
            except OSError as exc:  # a failed write() names no file
                exc.filename = exc.filename or str(tmp / name)
                raise

    with folders.locked(out_dir, "train_head", wait=True) if lock else contextlib.nullcontext():
        folders.replace_folder(out_dir, write)
    return Path(out_dir)
