"""Image files: which are images, walking a folder for them (``ImageFolder``'s order and rules,
but link loops and files reached twice are left out, with a warning), decoding one to RGB.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.common.errors import BadImageError

log = logging.getLogger("pipeline")

#: The same list as ``torchvision.datasets.folder.IMG_EXTENSIONS`` (a test keeps them equal).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


@dataclass
class Visited:
    """Folders and files already walked, by (device, inode), shared across calls."""

    folders: dict[tuple[int, int], str] = field(default_factory=dict)
    files: dict[tuple[int, int], str] = field(default_factory=dict)


def _key(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _folders(folder: Path, prefix: str, visited: Visited) -> list[tuple[str, Path]]:
    """Every folder under ``folder`` as (relative POSIX path, path); loops left out."""
    found: list[tuple[str, Path]] = []

    def visit(rel: str, path: Path, ancestors: dict[tuple[int, int], str]) -> None:
        shown = f"{prefix}{rel}" if rel else prefix.rstrip("/") or str(folder)
        key = _key(path)
        if key is None:
            log.warning("cannot read folder %s; left out", shown)
            return
        if key in ancestors:
            log.warning(
                "symbolic link loop: %s leads back to %s; not followed", shown, ancestors[key]
            )
            return
        if key in visited.folders:
            first = visited.folders[key]
            log.warning("%s is the same folder as %s; walked once, as %s", shown, first, first)
            return
        visited.folders[key] = shown
        found.append((rel, path))
        try:
            entries = sorted(e.name for e in os.scandir(path) if e.is_dir())
        except OSError as exc:
            log.warning("cannot list folder %s (%s); left out", shown, exc)
            return
        for name in entries:
            visit(f"{rel}/{name}" if rel else name, path / name, {**ancestors, key: shown})

    visit("", Path(folder), {})
    return found


def walk_images(
    folder: str | Path, *, prefix: str = "", visited: Visited | None = None
) -> tuple[list[str], list[str]]:
    """Every file under ``folder``, recursively, as ``(images, ignored)`` relative POSIX paths.

    ``visited`` holds folders and files walked by earlier calls; updated in place.
    """
    visited = visited if visited is not None else Visited()
    found: list[str] = []
    ignored: list[str] = []
    for rel_dir, path in sorted(_folders(Path(folder), prefix, visited)):
        try:
            names = sorted(e.name for e in os.scandir(path) if not e.is_dir())
        except OSError:
            continue  # _folders has just listed it; it went away since
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            key = _key(path / name)  # None for a broken link: kept, and reported when read
            if key is not None and key in visited.files:
                first = visited.files[key]
                log.warning(
                    "%s%s is the same file as %s; stored once, as %s", prefix, rel, first, first
                )
                continue
            if key is not None:
                visited.files[key] = f"{prefix}{rel}"
            (found if is_image_file(name) else ignored).append(rel)
    return found, ignored


def load_rgb(path: str | Path, *, at_least: int | None = None):
    """Decode an image file fully to RGB; ``at_least`` lets a JPEG preview decode smaller.

    Raises:
        BadImageError: the file cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if at_least is not None:
                img.draft("RGB", (at_least, at_least))
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(str(path), f"{type(exc).__name__}: {exc}") from exc


def probe(path: str | Path) -> str | None:
    """Why the image at ``path`` cannot be decoded, or None (a JPEG decodes at 1/8 scale)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.draft(None, (max(1, img.width // 8), max(1, img.height // 8)))
            img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
