"""The image folder: ImageFolder-style listing, a content fingerprint, and decoding to RGB.

Layout ``<root>/<split>/<class>/.../<file>``, as ``torchvision.datasets.ImageFolder`` reads it:
class folders sorted by name give the label indices (taken from the ``train`` split), files
are found recursively in sorted order, and only files whose lower-cased name ends in one of
:data:`IMG_EXTENSIONS` are images. Everything else is counted as ignored. This module needs
neither torch nor torchvision.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import BadImageError, DataError

#: The same list as ``torchvision.datasets.folder.IMG_EXTENSIONS`` (a test keeps them equal).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Sample:
    """One image: its path relative to the data root (POSIX separators) and its label."""

    path: str
    label: int


@dataclass(frozen=True)
class ImageListing:
    """What :func:`scan` found under a data root."""

    root: Path
    class_names: tuple[str, ...]
    samples: dict[str, list[Sample]]
    ignored: dict[str, list[str]] = field(default_factory=dict)

    def all_samples(self) -> list[Sample]:
        return [s for split in self.samples for s in self.samples[split]]


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


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir())


def scan(root: str | Path, splits: tuple[str, ...] | list[str]) -> ImageListing:
    """List the images of each split with ImageFolder semantics.

    Args:
        root: the data folder, holding one folder per split.
        splits: split folder names; ``train`` defines the classes, the others must match.

    Returns:
        An :class:`ImageListing`: classes, samples per split, ignored files per split.

    Raises:
        DataError: the root or a split is missing, a split has no class folders or no images,
            or a split's classes differ from train's (the message names the classes).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {str(root)!r} does not exist (data.dir)")
    for split in splits:
        if not (root / split).is_dir():
            present = sorted(e.name for e in os.scandir(root) if e.is_dir())
            raise DataError(
                f"split folder {str(root / split)!r} does not exist; expected "
                f"{root}/<split>/<class>/<image> for splits {list(splits)}; found folders {present}"
            )
    reference = "train" if "train" in splits else splits[0]
    class_names = tuple(_class_folders(root / reference))
    if not class_names:
        raise DataError(f"split folder {str(root / reference)!r} has no class folders")
    samples: dict[str, list[Sample]] = {}
    ignored: dict[str, list[str]] = {}
    for split in splits:
        classes = tuple(_class_folders(root / split))
        if classes != class_names:
            extra = sorted(set(classes) - set(class_names))
            missing = sorted(set(class_names) - set(classes))
            parts = []
            if extra:
                parts.append(f"class {', '.join(map(repr, extra))} not in {reference}")
            if missing:
                parts.append(f"class {', '.join(map(repr, missing))} missing")
            raise DataError(
                f"split {split!r} has classes {list(classes)} but {reference!r} has "
                f"{list(class_names)}: {'; '.join(parts)}"
            )
        samples[split], ignored[split] = [], []
        for label, name in enumerate(class_names):
            found, other = walk_images(root / split / name)
            samples[split] += [Sample(f"{split}/{name}/{rel}", label) for rel in found]
            ignored[split] += [f"{split}/{name}/{rel}" for rel in other]
        if not samples[split]:
            raise DataError(
                f"split {split!r} under {str(root)!r} has no images with extensions "
                f"{', '.join(IMG_EXTENSIONS)}"
            )
    return ImageListing(root, class_names, samples, ignored)


def fingerprint(listing: ImageListing) -> str:
    """SHA-256 over every image's split, relative path, size and content, in listing order.

    Moving the data folder keeps the fingerprint; renaming, adding, removing or editing an
    image changes it. Ignored (non-image) files do not count.
    """
    digest = hashlib.sha256()
    digest.update(repr(listing.class_names).encode())
    for split, samples in listing.samples.items():
        for sample in samples:
            path = listing.root / sample.path
            file_digest = file_sha256(path)
            digest.update(
                f"{split}\0{sample.path}\0{sample.label}\0{path.stat().st_size}\0{file_digest}\n".encode()
            )
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
