"""One extraction per output at a time, and resuming an interrupted one.

Finished batches are kept under a key of everything that shapes the features, so a resumed
run writes the same bytes as a clean one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common import files
from pipeline.common.errors import FeatureStoreError
from pipeline.extraction.job import Job
from pipeline.store.hdf5 import library_versions

log = logging.getLogger("pipeline")

KEY_FILE = "key.json"


def lock_path(out: str | Path) -> Path:
    """The lock file of an output: ``<out>.lock`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".lock")


@contextlib.contextmanager
def locked(out: str | Path) -> Iterator[None]:
    """Hold the lock of ``out`` inside the block, waiting while another extraction holds it."""
    import filelock  # only when a store is written

    path = lock_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            log.info("waiting for another extraction of %s to finish (lock %s)", out, path)
            lock.acquire()
    except OSError as exc:
        raise FeatureStoreError(
            f"cannot take the lock {str(path)!r} beside the output: {exc}; expected a "
            "writable folder"
        ) from exc
    try:
        for stale in files.remove_stale_temps(out):  # a final write that was killed
            log.info("removed %s, left by an interrupted write of %s", stale, out)
        yield
    finally:
        lock.release()


def key(settings: Mapping[str, Any]) -> str:
    """SHA-256 of ``settings``: what a partial extraction is valid for."""
    return files.json_sha256(settings)


@dataclass(frozen=True)
class Chunk:
    """One finished batch: rows ``start..stop-1`` of a split's iterated rows."""

    split: str
    start: int
    stop: int
    indices: np.ndarray  # (k,) int64 positions that gave features
    features: np.ndarray  # (k, feature_dim)
    failed: list[tuple[int, str]]  # (position, reason) of unreadable rows


class Partial:
    """The finished batches of one extraction of ``out``, under the :func:`key` of ``settings``."""

    def __init__(self, out: str | Path, settings: Mapping[str, Any]):
        out = Path(out)
        self.dir = out.with_name(out.name + ".partial")
        self.settings = dict(settings)
        self.key = key(settings)
        self._count = 0

    def _chunk_path(self, n: int) -> Path:
        return self.dir / f"batch-{n:07d}.npz"

    def load(self) -> dict[str, list[Chunk]]:
        """The finished batches per split, from row 0; a folder of another key is removed."""
        try:
            stored = json.loads((self.dir / KEY_FILE).read_text(encoding="utf-8"))["key"]
        except (OSError, ValueError, KeyError, TypeError):
            stored = None
        if stored != self.key:
            if self.dir.exists():
                log.info("removing %s: left by an extraction of other inputs or settings", self.dir)
                self.remove()
            return {}
        try:
            chunks = [self._read(path) for path in sorted(self.dir.glob("batch-*.npz"))]
        except (OSError, ValueError, KeyError) as exc:
            log.warning("removing %s: cannot read it back (%s)", self.dir, exc)
            self.remove()
            return {}
        self._count = len(chunks)
        by_split: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            done = by_split.setdefault(chunk.split, [])
            if chunk.start == (done[-1].stop if done else 0):  # keep the contiguous prefix
                done.append(chunk)
        return by_split

    @staticmethod
    def _read(path: Path) -> Chunk:
        with np.load(path, allow_pickle=False) as z:
            return Chunk(
                split=str(z["split"]),
                start=int(z["start"]),
                stop=int(z["stop"]),
                indices=z["indices"].astype(np.int64),
                features=z["features"],
                failed=[
                    (int(i), str(r))
                    for i, r in zip(z["failed_at"], z["failed_reason"], strict=True)
                ],
            )

    def add(self, chunk: Chunk) -> None:
        """Keep one finished batch, written atomically."""
        if self._count == 0:
            self.dir.mkdir(parents=True, exist_ok=True)
            record = {"key": self.key, "settings": self.settings}
            files.write_text(self.dir / KEY_FILE, json.dumps(record, indent=1, sort_keys=True))
        with files.atomic_path(self._chunk_path(self._count)) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                split=np.array(chunk.split),
                start=np.array(chunk.start),
                stop=np.array(chunk.stop),
                indices=np.asarray(chunk.indices, dtype=np.int64),
                features=chunk.features,
                failed_at=np.array([i for i, _ in chunk.failed], dtype=np.int64),
                failed_reason=np.array([r for _, r in chunk.failed], dtype=str),
            )
        self._count += 1

    def remove(self) -> None:
        """Delete the folder."""
        shutil.rmtree(self.dir, ignore_errors=True)


def for_extraction(
    job: Job, rows: Mapping[str, Sequence[int]], record: Mapping[str, Any]
) -> Partial | None:
    """The :class:`Partial` of a backbone's extraction of ``rows``; None without a backbone."""
    cfg, listing = job.cfg, job.listing
    if cfg is None:
        return None
    from pipeline.common.devices import resolve_device  # torch: already loaded by the backbone

    selected = "\n".join(listing.rows[s][i] for s, positions in rows.items() for i in positions)
    settings = {
        "out": job.out.name,
        "source": job.source.kind,
        "dataset_fingerprint": job.fingerprint,
        "rows_sha256": hashlib.sha256(selected.encode()).hexdigest(),
        "record": dict(record),
        "batch_size": cfg.batch_size,
        "on_bad_image": cfg.on_bad_image,
        "device": resolve_device(cfg.device).type,
        "versions": library_versions(),
    }
    return Partial(job.out, settings)
