"""Download and unpack an image-folder data set into ``data.dir`` (a no-op when it is there).

The archive at ``data.url`` (http(s) or file://) is downloaded with a progress bar, checked
(``data.sha256`` when set, zip integrity, the ``<split>/<class>/<image>`` layout for
``data.splits``) and unpacked into a temporary folder beside ``data.dir``, which is then renamed
into place: on any error nothing is left in ``data.dir``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from pipeline.common.config import DataConfig
from pipeline.common.errors import DataError
from pipeline.common.progress import progress
from pipeline.sources import folder

log = logging.getLogger("pipeline")

_CHUNK = 1 << 16


def download(url: str, dest: Path, *, timeout: float = 60.0) -> str:
    """Stream ``url`` into ``dest``; return the SHA-256 of the bytes received.

    Raises:
        DataError: HTTP error, unreachable host, or fewer bytes than Content-Length announced.
    """
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as fh:
            length = response.headers.get("Content-Length")
            total = int(length) if length else None
            received = 0
            with progress(
                total // 1024 if total else None, "download", unit="KiB", interval=5.0
            ) as bar:
                while chunk := response.read(_CHUNK):
                    fh.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk) // 1024)
    except urllib.error.HTTPError as exc:
        raise DataError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"cannot download {url}: {reason}. Offline? Put the archive on disk and set "
            "data.url to file:///path/to/archive.zip, or unpack it into data.dir yourself"
        ) from exc
    if total is not None and received != total:
        raise DataError(f"download of {url} is truncated: received {received} of {total} bytes")
    return digest.hexdigest()


def _unpack(archive: Path, into: Path, url: str) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise DataError(f"archive from {url} is corrupt: CRC check failed for {bad!r}")
            zf.extractall(into)
    except zipfile.BadZipFile as exc:
        raise DataError(f"archive from {url} is not a valid zip file (truncated?): {exc}") from exc
    except (EOFError, zlib.error) as exc:
        raise DataError(f"archive from {url} is corrupt: {exc}") from exc


def _data_root(unpacked: Path, splits: Sequence[str]) -> Path:
    """The folder holding the split folders: the unpacked folder or its single sub-folder."""
    if all((unpacked / s).is_dir() for s in splits):
        return unpacked
    subdirs = [p for p in unpacked.iterdir() if p.is_dir() and not p.name.startswith("__MACOSX")]
    if len(subdirs) == 1 and all((subdirs[0] / s).is_dir() for s in splits):
        return subdirs[0]
    found = sorted(p.relative_to(unpacked).as_posix() for p in unpacked.glob("*/*") if p.is_dir())
    raise DataError(
        f"archive does not have the expected layout [<top>/]<split>/<class>/<image> for splits "
        f"{list(splits)}; its folders: {found[:10] or sorted(p.name for p in subdirs)}"
    )


def fetch(data: DataConfig) -> Path:
    """Make sure ``data.dir`` holds the image folder; download and unpack it if it is absent.

    Returns:
        ``data.dir`` as a Path.

    Raises:
        DataError: download, checksum, archive or layout problems (``data.dir`` untouched), or
            an existing ``data.dir`` without the expected layout.
    """
    target = Path(data.dir)
    if target.exists():
        listing = folder.scan(target, data.splits)
        log.info(
            "%s already holds the data (%s); nothing to download",
            target,
            ", ".join(f"{s} {len(v)} images" for s, v in listing.rows.items()),
        )
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.fetch-", dir=target.parent) as tmp:
        archive = Path(tmp) / "archive.zip"
        log.info("downloading %s", data.url)
        digest = download(data.url, archive)
        if data.sha256 is not None and digest != data.sha256.lower():
            raise DataError(
                f"checksum mismatch for {data.url}: expected sha256 {data.sha256.lower()} "
                f"(data.sha256); got {digest}"
            )
        log.info("sha256 %s%s", digest, " (matches data.sha256)" if data.sha256 else "")
        unpacked = Path(tmp) / "unpacked"
        _unpack(archive, unpacked, data.url)
        root = _data_root(unpacked, data.splits)
        listing = folder.scan(root, data.splits)
        os.replace(root, target)
    log.info(
        "unpacked into %s: %s",
        target,
        ", ".join(f"{s} {len(v)} images" for s, v in listing.rows.items()),
    )
    return target
