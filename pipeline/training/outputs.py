"""A trained head's outputs in its run folder, each written atomically.

* ``model.pt``: the kept state dict, the full train config, class names, the features'
  identity (:mod:`pipeline.heads.checkpoint` reads it);
* ``run.json``: the same without the weights, and the weights' sha256 (readable without
  torch: :mod:`pipeline.heads.record`);
* ``metrics.json``: best and last epoch (val and train accuracy and loss, per-class accuracy,
  confusion matrix), parameter count, timing;
* ``history.csv``: epoch, train_loss, train_acc, val_loss, val_acc, lr;
* ``val_predictions.csv``: path, actual, predicted, probability (the kept checkpoint).

Same params and features file give identical bytes in all but ``metrics.json``'s ``timing``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from pipeline.common import files
from pipeline.common.config import TrainConfig, to_dict
from pipeline.heads.record import CHECKPOINT_VERSION, RECORD_NAME, record_text
from pipeline.store.hdf5 import StoreMeta
from pipeline.training.loop import HISTORY_FIELDS, TrainResult

#: The files of a run folder, in the order :func:`run_files` writes them.
RUN_FILES = ("model.pt", RECORD_NAME, "metrics.json", "history.csv", "val_predictions.csv")


def run_config(config: TrainConfig, features: str) -> dict[str, Any]:
    """The ``config`` that ``model.pt`` records: the train block, its features resolved."""
    return to_dict(replace(config, features=features))


def checkpoint(result: TrainResult) -> dict[str, Any]:
    """The ``model.pt`` payload: plain types only (``torch.load(weights_only=True)`` reads it)."""
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    data = result.data
    return _checkpoint(result.config, data.path, data.sha256, data.meta, state, result.best_epoch)


def _checkpoint(
    config: TrainConfig,
    path: str,
    sha256: str,
    meta: StoreMeta,
    state_dict: dict[str, Any],
    best_epoch: int,
) -> dict[str, Any]:
    """:func:`checkpoint` of its parts. Built the same way for a trained head and a copied
    one, so that ``torch.save`` shares the same objects in both (its bytes depend on it)."""
    return {
        "format_version": CHECKPOINT_VERSION,
        "state_dict": state_dict,
        "config": run_config(config, path),
        "class_names": list(meta.class_names),
        "in_features": meta.feature_dim,
        "best_epoch": best_epoch,
        "checkpoint": config.checkpoint,
        "epoch": best_epoch if config.checkpoint == "best" else config.epochs,
        "features": {"path": path, "sha256": sha256, **meta.provenance()},
    }


def _csv(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def model_bytes(ckpt: dict[str, Any]) -> bytes:
    """The bytes of ``model.pt`` holding ``ckpt``."""
    buf = io.BytesIO()  # torch.save names the archive after the file: save to memory first
    torch.save(ckpt, buf)
    return buf.getvalue()


def save_model(result: TrainResult, path: str | Path) -> Path:
    """Write the run's ``model.pt`` (:func:`checkpoint`) atomically."""
    files.write_bytes(path, model_bytes(checkpoint(result)))
    return Path(path)


def run_files(result: TrainResult) -> dict[str, bytes]:
    """The bytes of every file of the run's folder (:data:`RUN_FILES`)."""
    ckpt = checkpoint(result)
    model = model_bytes(ckpt)
    metrics = {**result.metrics, "timing": result.timing}
    names = result.data.class_names
    pred = result.val_probs.argmax(axis=1)
    predictions = _csv(
        [
            ("path", "actual", "predicted", "probability"),
            *(
                (p, names[a], names[b], f"{result.val_probs[i, b]:.6f}")
                for i, (p, a, b) in enumerate(
                    zip(result.data.val.paths, result.data.val.labels, pred, strict=True)
                )
            ),
        ]
    )
    history = _csv([HISTORY_FIELDS, *([r[k] for k in HISTORY_FIELDS] for r in result.history)])
    return {
        "model.pt": model,
        RECORD_NAME: record_text(ckpt, model).encode(),
        "metrics.json": (json.dumps(metrics, indent=2) + "\n").encode(),
        "history.csv": history.encode(),
        "val_predictions.csv": predictions.encode(),
    }


def rebased_files(
    stored: Mapping[str, bytes], config: TrainConfig, path: str, sha256: str, meta: StoreMeta
) -> dict[str, bytes]:
    """The run folder of another run with the same result, as ``config`` would write it.

    Args:
        stored: ``model.pt``, ``metrics.json``, ``history.csv`` and ``val_predictions.csv``
            of a run whose result ``config`` gives too, on the same features
            (:func:`pipeline.training.cache.head_key`).
        config: the run's train block; path, sha256, meta: its feature store's.

    Returns:
        The files of :data:`RUN_FILES`: ``model.pt`` and ``run.json`` record ``config`` and
        ``path``; the others are ``stored``'s.
    """
    ckpt = torch.load(io.BytesIO(stored["model.pt"]), map_location="cpu", weights_only=True)
    ckpt = _checkpoint(config, path, sha256, meta, ckpt["state_dict"], ckpt["best_epoch"])
    model = model_bytes(ckpt)
    out = {"model.pt": model, RECORD_NAME: record_text(ckpt, model).encode()}
    return out | {name: stored[name] for name in RUN_FILES if name not in out}


def write_run(run: Mapping[str, bytes], out_dir: str | Path) -> Path:
    """Write a run folder's files (:func:`run_files`), each atomically, in order."""
    out = Path(out_dir)
    for name in RUN_FILES:
        files.write_bytes(out / name, run[name])
    return out


def save(result: TrainResult, out_dir: str | Path) -> Path:
    """Write model.pt, run.json, metrics.json, history.csv and val_predictions.csv."""
    return write_run(run_files(result), out_dir)
