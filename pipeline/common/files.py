"""Files: atomic outputs (a temporary file beside the target, then ``os.replace``) and hashes."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

_HASH_CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; ``os.replace`` it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = None
    try:
        tmp_path = _new_temp_file(target, suffix)
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException as exc:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp_path)):
            exc.filename = str(target)  # the output the user asked for, not its temporary file
            exc.filename2 = None
        raise


def _new_temp_file(target: Path, suffix: str) -> Path:
    """An empty new file beside ``target``, mode 0666 less the umask (unlike ``mkstemp``)."""
    while True:
        path = target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path


def remove_stale_temps(target: str | Path, suffix: str = ".tmp") -> list[Path]:
    """Remove the temporary files of killed writes of ``target`` (hold its lock)."""
    target = Path(target)
    stale = sorted(target.parent.glob(f".{glob.escape(target.name)}.*{suffix}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_text(target: str | Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(target: str | Path, data: bytes) -> None:
    """Write a binary file atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_all(outputs: Mapping[Path, bytes]) -> None:
    """Write several files together: all temporary files first, then the renames."""
    with contextlib.ExitStack() as stack:
        temps = [(target, stack.enter_context(atomic_path(target))) for target in outputs]
        for target, tmp in temps:
            try:
                tmp.write_bytes(outputs[target])
            except OSError as exc:
                exc.filename, exc.filename2 = str(target), None
                raise


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_text(value: Any, indent: int | None = 2) -> str:
    """``value`` as strict JSON and a newline; NaN and infinities become null."""
    return json.dumps(_finite(value), indent=indent, allow_nan=False) + "\n"


def json_sha256(value: Any) -> str:
    """SHA-256 of ``value`` as JSON with sorted keys."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def project_cache(name: str) -> Path:
    """``.cache/<name>`` of the project: under ``$DVC_ROOT`` when DVC runs the command, so
    queued experiments, which run in copies of the project, share it."""
    return Path(os.environ.get("DVC_ROOT") or ".") / ".cache" / name


def source_digest(paths: list[str]) -> str:
    """SHA-256 of the package's source files ``paths`` (relative to ``pipeline/``; a folder:
    its ``*.py``), names and bytes, in order."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for name in paths:
        found = (
            sorted((package / name).glob("*.py")) if (package / name).is_dir() else [package / name]
        )
        for path in found:
            digest.update(f"{path.relative_to(package).as_posix()}\n".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
