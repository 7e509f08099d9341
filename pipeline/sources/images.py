"""Image files: which files are images, walking a folder for them, decoding one to RGB.

Files are found recursively in sorted order, and only files whose lower-cased name ends in
one of :data:`IMG_EXTENSIONS` are images, as ``torchvision.datasets.ImageFolder`` decides.
This module needs neither torch nor torchvision.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.common.errors import BadImageError

#: The same list as ``torchvision.datasets.folder.IMG_EXTENSIONS`` (a test keeps them equal).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def walk_images(folder: str | Path) -> tuple[list[str], list[str]]:
    """Every file under ``folder``, recursively, split into images and the rest.

    Sub-folders are walked in sorted order (symbolic links followed), files sorted by name, and
    a file is an image when :func:`is_image_file` says so: the order and the rules of
    :func:`scan`, which lists each class folder with this function.

    Args:
        folder: a directory.

    Returns:
        ``(images, ignored)``: paths relative to ``folder``, POSIX separators.

    Example:
        >>> walk_images("data/hymenoptera_data/val/ants")[0][:1]
        ['10308379_1b6c72e180.jpg']
    """
    found: list[str] = []
    ignored: list[str] = []
    for dirpath, _, filenames in sorted(os.walk(folder, followlinks=True)):
        for filename in sorted(filenames):
            rel = Path(dirpath, filename).relative_to(folder).as_posix()
            (found if is_image_file(filename) else ignored).append(rel)
    return found, ignored


def load_rgb(path: str | Path):
    """Decode an image file fully and convert it to RGB (palette, L, CMYK, RGBA, ...).

    Raises:
        BadImageError: the file cannot be decoded (truncated, not an image, unsupported).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(str(path), f"{type(exc).__name__}: {exc}") from exc
