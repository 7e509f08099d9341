"""Download, check and unpack an image-folder data set into ``data.dir``.

Unpacked beside ``data.dir`` and renamed into place, so an error leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from pipeline.common import files
from pipeline.common.config import DataConfig
from pipeline.common.errors import DataError
from pipeline.common.files import file_sha256
from pipeline.common.progress import progress
from pipeline.sources import folder

log = logging.getLogger("pipeline")

_CHUNK = 1 << 16
#: The sha256 of the archive and of each image, written into ``data.dir`` on unpacking.
MANIFEST = ".fetch-sha256.json"
_REFETCH = "delete the folder and run `python -m pipeline.fetch_data` to download it again"


def download(url: str, dest: Path, *, timeout: float = 60.0) -> str:
    """Stream ``url`` into ``dest``; return the SHA-256 of the bytes received."""
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


def _image_digests(root: Path, listing) -> dict[str, str]:
    return {rel: file_sha256(root / rel) for rows in listing.rows.values() for rel in rows}


def _write_manifest(root: Path, listing, digest: str, url: str) -> None:
    record = {"archive_sha256": digest, "url": url, "images": _image_digests(root, listing)}
    files.write_text(root / MANIFEST, json.dumps(record, indent=1, sort_keys=True) + "\n")


def _read_manifest(target: Path) -> dict | None:
    path = target / MANIFEST
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not JSON ({exc}); {_REFETCH}") from None
    images = record.get("images") if isinstance(record, dict) else None
    if not isinstance(images, dict) or not isinstance(record.get("archive_sha256"), str):
        raise DataError(f"{path}: expected archive_sha256 and images; {_REFETCH}")
    return record


def _check_existing(target: Path, data: DataConfig, listing) -> None:
    record = _read_manifest(target)
    if record is None:
        if data.sha256 is not None:
            raise DataError(
                f"{target} holds images but no {MANIFEST} (the record fetch_data writes when it "
                f"unpacks a checked archive), so they cannot be checked against data.sha256; "
                f"{_REFETCH}, or set data.sha256 to null to use the folder unchecked"
            )
        log.warning("%s was not unpacked by fetch_data: its images are not checked", target)
        return
    if data.sha256 is not None and record["archive_sha256"] != data.sha256.lower():
        raise DataError(
            f"{target} was unpacked from an archive of sha256 {record['archive_sha256']}; "
            f"expected {data.sha256.lower()} (data.sha256); {_REFETCH}"
        )
    found, recorded = _image_digests(target, listing), record["images"]
    problems = [
        f"{kind}: {', '.join(names[:10])}{' ...' * (len(names) > 10)}"
        for kind, names in (
            (
                "changed",
                sorted(k for k in found.keys() & recorded.keys() if found[k] != recorded[k]),
            ),
            ("added", sorted(found.keys() - recorded.keys())),
            ("missing", sorted(recorded.keys() - found.keys())),
        )
        if names
    ]
    if problems:
        raise DataError(
            f"{target} differs from the archive it was unpacked from (sha256 "
            f"{record['archive_sha256']}): {'; '.join(problems)}; {_REFETCH}"
        )
    log.info("%s: %d images match %s", target, len(found), MANIFEST)


def fetch(data: DataConfig) -> Path:
    """Make sure ``data.dir`` holds the image folder; download and unpack it if absent.

    An existing folder is checked against :data:`MANIFEST`; one without it is refused when
    ``data.sha256`` is set, else used with a warning.
    """
    target = Path(data.dir)
    if target.exists():
        listing = folder.scan(target, data.splits)
        _check_existing(target, data, listing)
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
        _write_manifest(root, listing, digest, data.url)
        os.replace(root, target)
    log.info(
        "unpacked into %s: %s",
        target,
        ", ".join(f"{s} {len(v)} images" for s, v in listing.rows.items()),
    )
    return target
