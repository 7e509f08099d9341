"""Output folders: one writer at a time, a run folder swapped in as one, runs checked whole."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import json
import logging
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.common.errors import PipelineError
from pipeline.common.files import file_sha256

log = logging.getLogger("pipeline")

#: The key of ``metrics.json`` that holds the SHA-256 of the ``model.pt`` beside it.
MODEL_DIGEST_KEY = "model_sha256"
_NEW, _OLD = ".new", ".old"


class FolderBusyError(PipelineError):
    """Another process is writing the same output folder."""


class MixedRunError(PipelineError):
    """``model.pt`` and ``metrics.json`` of a run folder come from different runs."""


def lock_path(folder: str | Path) -> Path:
    """The lock file of an output folder: ``.<name>.lock`` beside it."""
    folder = Path(os.path.abspath(folder))
    return folder.with_name(f".{folder.name}.lock")


@contextlib.contextmanager
def locked(folder: str | Path, what: str, *, wait: bool = False) -> Iterator[None]:
    """Hold the lock of ``folder`` in the block; ``wait`` for it, else :class:`FolderBusyError`."""
    import filelock  # only where a folder is written

    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if not wait:
            raise FolderBusyError(
                f"another {what} is writing {folder} (it holds {path}); wait for it to "
                "finish, or choose another output folder"
            ) from None
        log.info("waiting for another %s writing %s to finish (lock %s)", what, folder, path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _siblings(folder: Path, suffix: str) -> list[Path]:
    return sorted(folder.parent.glob(f".{glob.escape(folder.name)}.*{suffix}"))


def recover(folder: str | Path) -> None:
    """Clean up after a killed swap of ``folder``; its old copy returns if it is missing."""
    folder = Path(os.path.abspath(folder))
    for path in _siblings(folder, _NEW):
        log.info("removing %s, left by an interrupted write of %s", path, folder)
        shutil.rmtree(path)
    for path in _siblings(folder, _OLD):
        if not folder.exists():
            log.info("putting back %s as %s (its replacement was interrupted)", path, folder)
            os.rename(path, folder)
        else:
            shutil.rmtree(path)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _carry_over(old: Path, new: Path) -> None:
    for entry in old.iterdir():
        target = new / entry.name
        if target.exists() or target.is_symlink():
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(entry), str(target))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b), None, str(a))


def replace_folder(folder: str | Path, write: Callable[[Path], Any]) -> Path:
    """Make ``folder`` anew with ``write(tmp)`` and swap it in as one (hold its lock).

    Readers see the old folder or the new one, never a mix; old files that ``write`` does not
    make are carried over as hard links. On an error ``folder`` is left as it was.
    """
    folder = Path(os.path.abspath(folder))
    if folder.is_symlink():  # replace the folder it points to, and keep the link
        folder = folder.resolve()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(folder))
    here = Path.cwd().resolve()
    if folder.resolve() == here or folder.resolve() in here.parents:
        raise PipelineError(
            f"{folder}: expected an output folder of its own, not the current folder or one "
            "above it (it is replaced as a whole)"
        )
    recover(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{secrets.token_hex(4)}{_NEW}")
    tmp.mkdir()
    try:
        try:
            write(tmp)
        except OSError as exc:  # name the folder asked for, not the temporary one
            name = str(exc.filename or tmp)
            if name.startswith(str(tmp)):
                exc.filename = str(folder) + name[len(str(tmp)) :]
            raise
        if not folder.exists():
            os.rename(tmp, folder)
            return folder
        _carry_over(folder, tmp)
        if not _exchange(tmp, folder):
            old = tmp.with_name(tmp.name[: -len(_NEW)] + _OLD)
            os.rename(folder, old)
            os.rename(tmp, folder)
            tmp = old
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def metrics_beside(model_path: str | Path) -> dict[str, Any] | None:
    """The ``metrics.json`` beside ``model_path``, or None; read it before the model."""
    try:
        metrics = json.loads(Path(model_path).with_name("metrics.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None


def check_pair(model_path: str | Path, metrics: dict[str, Any] | None) -> None:
    """Raise :class:`MixedRunError` unless ``metrics`` (read first) records this ``model.pt``."""
    model_path = Path(model_path)
    recorded = metrics.get(MODEL_DIGEST_KEY) if isinstance(metrics, dict) else None
    if recorded is None:
        return
    actual = file_sha256(model_path)
    if actual != recorded:
        raise MixedRunError(
            f"{model_path} and {model_path.with_name('metrics.json')} come from different "
            f"runs (model sha256 {actual[:12]}..., metrics.json records {str(recorded)[:12]}"
            "...): a train_head run is replacing the folder, or one was stopped while an "
            "older version wrote it; read it again once train_head is done, or rerun train_head"
        )
