"""``run.json``: what ``model.pt`` holds besides the weights, readable without torch.

``model.pt``'s dict (:mod:`pipeline.heads.checkpoint`) without ``state_dict``, plus the
``model_sha256`` it describes, so commands that need no weights skip importing torch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipeline.common.errors import PipelineError
from pipeline.common.folders import MixedRunError

CHECKPOINT_VERSION = 1
RECORD_NAME = "run.json"
#: What every reader needs (``checkpoint`` and ``epoch`` are later additions: read with .get).
REQUIRED_KEYS = ("state_dict", "config", "class_names", "in_features", "best_epoch", "features")
#: What ``run.json`` must hold: the checkpoint's keys but the weights, and the weights' digest.
RECORD_KEYS = (*(k for k in REQUIRED_KEYS if k != "state_dict"), "model_sha256")


def not_a_head(path: str | Path) -> str:
    """The start of every message that refuses a file as a head checkpoint."""
    return f"{str(path)!r} is not a head checkpoint written by pipeline.train_head"


def require_keys(path: str | Path, ckpt: dict, keys: tuple[str, ...] = REQUIRED_KEYS) -> None:
    """Refuse a checkpoint dict without ``keys`` (or a ``features`` path and sha256)."""
    missing = [k for k in keys if k not in ckpt]
    record = ckpt.get("features")
    if not missing and not (isinstance(record, dict) and {"path", "sha256"} <= set(record)):
        missing = ["features.path", "features.sha256"]
    if missing:
        raise PipelineError(
            f"{not_a_head(path)}: expected the keys {', '.join(keys)}; it lacks "
            f"{', '.join(missing)}"
        )


def record_text(ckpt: dict[str, Any], model_bytes: bytes) -> str:
    """The text of ``run.json`` for the checkpoint dict ``ckpt`` saved as ``model_bytes``."""
    record = {k: v for k, v in ckpt.items() if k != "state_dict"}
    record["model_sha256"] = hashlib.sha256(model_bytes).hexdigest()
    return json.dumps(record, indent=2) + "\n"


def read_record(run_dir: str | Path) -> dict[str, Any] | None:
    """The ``run.json`` of ``run_dir``, checked against the ``model.pt`` beside it.

    None when the folder has no ``run.json`` (an older version: read ``model.pt``).

    Raises:
        PipelineError: ``run.json`` is malformed or lacks a key.
        MixedRunError: it describes another ``model.pt`` than the one beside it.
    """
    path = Path(run_dir) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{str(path)!r} is not a readable run record: {exc}") from exc
    if not isinstance(record, dict) or record.get("format_version") != CHECKPOINT_VERSION:
        raise PipelineError(
            f"{str(path)!r}: expected a run record of format_version {CHECKPOINT_VERSION}"
        )
    require_keys(path, record, RECORD_KEYS)
    model = path.with_name("model.pt")
    sha = hashlib.sha256(model.read_bytes()).hexdigest() if model.is_file() else None
    if sha != record["model_sha256"]:
        raise (MixedRunError if sha else PipelineError)(
            f"{str(path)!r} describes a model.pt of sha256 {record['model_sha256']}; "
            f"{str(model)!r} has {sha or 'no file'}: train the head again "
            "(python -m pipeline.train_head)"
        )
    return record
