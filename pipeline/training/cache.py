"""Heads already trained: a content-addressed cache of run folders, shared by compare and sweep.

:func:`head_key` hashes everything that decides a head's result: its ``train`` settings (less
those its kind never reads), a circuit file's sha256, the features' sha256, the code of
:data:`CODE_PACKAGES` and the host. :class:`HeadCache` keeps one run folder per key under
``.cache/heads`` (in ``$DVC_ROOT`` so queued experiments share it), written into a temporary
folder and renamed under a lock; an entry whose files do not match ``entry.json`` is never used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from filelock import FileLock

from pipeline.common.config import TrainConfig, to_dict
from pipeline.common.files import json_sha256, project_cache, source_digest
from pipeline.heads import kinds

log = logging.getLogger("pipeline")

#: The files of a run folder an entry keeps (``run.json`` is made from ``model.pt``).
FILES = ("model.pt", "metrics.json", "history.csv", "val_predictions.csv")
ENTRY = "entry.json"
#: The sub-packages whose code computes a head's result.
CODE_PACKAGES = ("common", "store", "simulators", "circuits", "heads", "training")


def default_root() -> Path:
    """``.cache/heads`` of the project: under ``$DVC_ROOT`` when DVC runs the command."""
    return project_cache("heads")


@functools.cache
def code_digest() -> str:
    """SHA-256 of the source of :data:`CODE_PACKAGES`."""
    return source_digest(list(CODE_PACKAGES))


@functools.cache
def environment() -> dict[str, str]:
    """The host and the versions of what computes the numbers."""
    versions = {}
    for name in ("torch", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # a build without package metadata
            versions[name] = "unknown"
    return {
        "host": platform.node(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        **versions,
    }


def settings(cfg: TrainConfig) -> dict:
    """The settings that decide a head's result: all but those its kind never reads
    (:func:`pipeline.heads.kinds.unused`) and ``features`` and ``out_dir``, which name files."""
    unused = {"features", "out_dir", *kinds.unused(cfg)}
    return {k: v for k, v in to_dict(cfg).items() if k not in unused}


def head_key(cfg: TrainConfig, features_sha256: str) -> str:
    """The cache key of a head: SHA-256 of its settings, features, code and host."""
    identity = {
        "train": settings(cfg),
        "features_sha256": features_sha256,
        "code": code_digest(),
        "environment": environment(),
    }
    if kinds.circuit_file(cfg):
        from pipeline.circuits.source import read  # only for a circuit file

        identity["circuit_sha256"] = read(cfg.circuit).sha256  # an edited file: a new head
    return json_sha256(identity)


class HeadCache:
    """Run folders by :func:`head_key` under ``root``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _entry(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> dict[str, bytes] | None:
        """The files of ``key``'s entry, checked; None when absent or damaged (logged)."""
        blobs, problem = self._read(key)
        if problem:
            log.warning("head cache entry %s %s; training it again", self._entry(key), problem)
        return blobs

    def _read(self, key: str) -> tuple[dict[str, bytes] | None, str | None]:
        """(the entry's files, None), or (None, what is wrong with it: None when absent)."""
        entry = self._entry(key)
        if not entry.is_dir():
            return None, None
        try:
            digests = json.loads((entry / ENTRY).read_text(encoding="utf-8"))["files"]
            blobs = {name: (entry / name).read_bytes() for name in FILES}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"is incomplete ({exc})"
        bad = [n for n in FILES if hashlib.sha256(blobs[n]).hexdigest() != digests.get(n)]
        if bad:
            return None, f"is damaged ({', '.join(bad)}: not the sha256 in {ENTRY})"
        return blobs, None

    def put(self, key: str, blobs: Mapping[str, bytes], cfg: TrainConfig) -> bool:
        """Keep ``blobs`` (:data:`FILES`) as ``key``'s entry unless a sound one is there.

        Readers see a whole entry or none; a write error is logged and skipped. Returns whether
        it was written now.
        """
        entry = self._entry(key)
        tmp = None
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(entry) + ".lock"):
                if self._read(key)[0] is not None:
                    return False
                tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.", dir=entry.parent))
                for name in FILES:
                    (tmp / name).write_bytes(blobs[name])
                doc = {
                    "key": key,
                    "files": {n: hashlib.sha256(blobs[n]).hexdigest() for n in FILES},
                    "train": settings(cfg),
                }
                (tmp / ENTRY).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
                if entry.exists():  # damaged: replaced
                    shutil.rmtree(entry)
                os.replace(tmp, entry)
                tmp = None
        except OSError as exc:
            log.warning("head cache %s not written: %s", entry, exc)
            return False
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return True
