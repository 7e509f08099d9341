"""A trained head's outputs in its run folder, each written atomically.

``model.pt`` (:mod:`pipeline.heads.checkpoint`), ``run.json`` (:mod:`pipeline.heads.record`),
``metrics.json``, ``history.csv`` and ``val_predictions.csv``. The folder is replaced as one
(:func:`pipeline.common.folders.replace_folder`) and ``metrics.json`` records ``model.pt``'s
sha256 (:func:`pipeline.common.folders.check_pair`), so readers never mix two runs.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from pipeline.common import files, folders
from pipeline.common.config import TrainConfig, train_dict
from pipeline.heads.checkpoint import DIGEST_KEY, tensors_sha256
from pipeline.heads.record import CHECKPOINT_VERSION, RECORD_NAME, record_text
from pipeline.store.hdf5 import StoreMeta
from pipeline.training.loop import HISTORY_FIELDS, TrainResult

#: The files of a run folder, as :func:`run_files` returns them.
RUN_FILES = ("model.pt", RECORD_NAME, "metrics.json", "history.csv", "val_predictions.csv")


def checkpoint(result: TrainResult) -> dict[str, Any]:
    """The ``model.pt`` payload: plain types only (``torch.load(weights_only=True)`` reads it)."""
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    data = result.data
    source = getattr(result.model, "circuit_source", None)
    return _checkpoint(
        result.config, data.path, data.sha256, data.meta, state, result.best_epoch, source
    )


def _checkpoint(
    config: TrainConfig,
    path: str,
    sha256: str,
    meta: StoreMeta,
    state_dict: dict[str, Any],
    best_epoch: int,
    circuit: dict[str, str] | None,
) -> dict[str, Any]:
    """:func:`checkpoint` of its parts, built alike for trained and copied heads (same bytes)."""
    payload = {
        "format_version": CHECKPOINT_VERSION,
        "state_dict": state_dict,
        DIGEST_KEY: tensors_sha256(state_dict),
        "config": train_dict(replace(config, features=path)),
        "class_names": list(meta.class_names),
        "in_features": meta.feature_dim,
        "best_epoch": best_epoch,
        "checkpoint": config.checkpoint,
        "epoch": best_epoch if config.checkpoint == "best" else config.epochs,
        "features": {"path": path, "sha256": sha256, **meta.provenance()},
    }
    if circuit is not None:  # a circuit file: its text, to rebuild the head without the file
        payload["circuit"] = circuit
    return payload


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


def _model_files(ckpt: dict[str, Any]) -> dict[str, bytes]:
    model = model_bytes(ckpt)
    return {"model.pt": model, RECORD_NAME: record_text(ckpt, model).encode()}


def run_files(result: TrainResult) -> dict[str, bytes]:
    """The files of a run folder by name (:data:`RUN_FILES`)."""
    out = _model_files(checkpoint(result))
    metrics = {
        **result.metrics,
        "timing": result.timing,
        folders.MODEL_DIGEST_KEY: hashlib.sha256(out["model.pt"]).hexdigest(),
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
        **out,
        "metrics.json": files.json_text(metrics).encode(),
        "history.csv": _csv(history).encode(),
        "val_predictions.csv": _csv(predictions).encode(),
    }


def rebased_files(
    stored: Mapping[str, bytes], config: TrainConfig, path: str, sha256: str, meta: StoreMeta
) -> dict[str, bytes]:
    """The run folder ``config`` would write, from ``stored``: the files of a run with the same
    :func:`pipeline.training.cache.head_key`."""
    old = torch.load(io.BytesIO(stored["model.pt"]), map_location="cpu", weights_only=True)
    ckpt = _checkpoint(
        config, path, sha256, meta, old["state_dict"], old["best_epoch"], old.get("circuit")
    )
    out = _model_files(ckpt)
    metrics = json.loads(stored["metrics.json"])
    metrics[folders.MODEL_DIGEST_KEY] = hashlib.sha256(out["model.pt"]).hexdigest()
    out["metrics.json"] = files.json_text(metrics).encode()
    return out | {name: stored[name] for name in RUN_FILES if name not in out}


def write_run(run: Mapping[str, bytes], out_dir: str | Path, *, lock: bool = True) -> Path:
    """Write a run folder (:func:`run_files`) as one: built beside it, then swapped in.

    Other files already in the folder (later stages' plots and robustness files) are kept.
    ``lock`` False: the caller holds the folder's lock.
    """

    def write(tmp: Path) -> None:
        for name, data in run.items():
            try:
                (tmp / name).write_bytes(data)
            except OSError as exc:  # a failed write() names no file
                exc.filename = exc.filename or str(tmp / name)
                raise

    with folders.locked(out_dir, "train_head", wait=True) if lock else contextlib.nullcontext():
        folders.replace_folder(out_dir, write)
    return Path(out_dir)


def save(result: TrainResult, out_dir: str | Path, *, lock: bool = True) -> Path:
    """Write the run folder (:func:`run_files`) as one (:func:`write_run`)."""
    return write_run(run_files(result), out_dir, lock=lock)
