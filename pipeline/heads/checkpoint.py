"""``model.pt``: a trained head's checkpoint, read and checked, and the head rebuilt from it.

A ``torch.save``d dict of plain types (read with ``weights_only=True``): the ``train`` config,
class names, ``state_dict`` and :data:`DIGEST_KEY`, checked on every read so a changed weight is
an error, not a silently different head. :mod:`pipeline.training.outputs` writes it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline.common.config import TrainConfig, build_section
from pipeline.common.errors import ConfigError, FeatureStoreError, PipelineError
from pipeline.common.files import file_sha256
from pipeline.heads.build import build_head
from pipeline.heads.record import CHECKPOINT_VERSION, not_a_head, require_keys
from pipeline.store import hdf5

log = logging.getLogger("pipeline")

#: The key of the state dict's digest (:func:`tensors_sha256`).
DIGEST_KEY = "tensors_sha256"


def tensors_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_tensors(path: str | Path, ckpt: dict) -> None:
    """Raise PipelineError unless ``state_dict`` matches :data:`DIGEST_KEY` (a note when absent)."""
    state = ckpt.get("state_dict")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise PipelineError(f"{not_a_head(path)}: expected 'state_dict' to map names to tensors")
    recorded = ckpt.get(DIGEST_KEY)
    if recorded is None:
        log.warning(
            "%s records no digest of its weights (written by an earlier version): they are "
            "not checked; train the head again to add one",
            path,
        )
        return
    actual = tensors_sha256(state)
    if actual != recorded:
        raise PipelineError(
            f"{str(path)!r} is corrupt: its weights' sha256 is {actual}, but the file records "
            f"{recorded}; train the head again (or restore the file, e.g. `dvc checkout`)"
        )


def read_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint dict of ``model.pt``, checked but without building the head.

    Raises:
        PipelineError: the file is missing, not a head checkpoint, or its weights changed.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"model file {str(path)!r} does not exist; train a head first")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file
        raise PipelineError(f"{str(path)!r} is not a readable checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != CHECKPOINT_VERSION:
        raise PipelineError(
            f"{str(path)!r} is not a head checkpoint of format_version {CHECKPOINT_VERSION}"
        )
    require_keys(path, ckpt)
    check_tensors(path, ckpt)
    return ckpt


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu"):
    """Rebuild a trained head from ``model.pt``.

    Returns ``(model, checkpoint)``: the head in eval mode and its trained dtype, and the dict.

    Raises:
        PipelineError: the file is bad, or its config or weights make no head of this version.
    """
    ckpt = read_checkpoint(path, map_location=map_location)
    try:
        cfg = build_section("train", TrainConfig, ckpt["config"])
        model = build_head(
            cfg, ckpt["in_features"], len(ckpt["class_names"]), circuit=ckpt.get("circuit")
        )
        model.to(getattr(torch, cfg.dtype)).load_state_dict(ckpt["state_dict"])
    except ConfigError as exc:  # its train config (a head this version does not know, say)
        raise PipelineError(f"{not_a_head(path)}: {exc}") from exc
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # weights of another shape
        raise PipelineError(f"{not_a_head(path)}: {exc}") from exc
    return model.eval(), ckpt


def trained_store(
    model: str | Path, record: dict[str, Any], features: str | Path | None, *, advice: str
) -> Path:
    """The feature store a head was trained on, checked against the sha256 ``model.pt`` records.

    ``features``: where the store is now (None: the recorded path); ``advice``: what to do if it
    is missing.

    Raises:
        FeatureStoreError: missing, or other bytes (naming the provenance fields that differ).
    """
    path = Path(features if features is not None else record["path"])
    if not path.is_file():
        raise FeatureStoreError(
            f"features file {str(path)!r} (the one {str(model)!r} was trained on) does not "
            f"exist; {advice}"
        )
    sha = file_sha256(path)
    if sha != record["sha256"]:
        raise FeatureStoreError(
            f"features file {str(path)!r} is not the one {str(model)!r} was trained on: "
            f"expected sha256 {record['sha256']} (recorded for {record['path']!r}); got "
            f"{sha}; {_differences(record, hdf5.read_meta(path).provenance())}"
        )
    return path


def _differences(record: dict[str, Any], provenance: dict[str, Any]) -> str:
    keys = sorted(set(provenance) | (set(record) - {"path", "sha256"}))
    diffs = [
        f"{k} {record.get(k)!r} (model) against {provenance.get(k)!r} (file)"
        for k in keys
        if record.get(k) != provenance.get(k)
    ]
    return "; ".join(diffs) if diffs else "the same provenance, but other bytes"
