"""The image-folder source: ``<root>/<split>/<class>/.../<image>``, read as ImageFolder reads it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.errors import BadImageError, DataError
from pipeline.common.files import file_sha256
from pipeline.common.progress import progress
from pipeline.sources.base import Batch, Encoder, Listing, encode
from pipeline.sources.images import IMG_EXTENSIONS, Visited, load_rgb, probe, walk_images


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir())


def _check_splits(root: Path, splits: Sequence[str]) -> None:
    if not root.is_dir():
        raise DataError(f"data folder {str(root)!r} does not exist (data.dir)")
    for split in splits:
        if not (root / split).is_dir():
            present = sorted(e.name for e in os.scandir(root) if e.is_dir())
            raise DataError(
                f"split folder {str(root / split)!r} does not exist; expected "
                f"{root}/<split>/<class>/<image> for splits {list(splits)}; found folders {present}"
            )


def _check_classes(split: str, classes: tuple[str, ...], reference: str, names: tuple) -> None:
    if classes == names:
        return
    extra = sorted(set(classes) - set(names))
    missing = sorted(set(names) - set(classes))
    parts = []
    if extra:
        parts.append(f"class {', '.join(map(repr, extra))} not in {reference}")
    if missing:
        parts.append(f"class {', '.join(map(repr, missing))} missing")
    raise DataError(
        f"split {split!r} has classes {list(classes)} but {reference!r} has "
        f"{list(names)}: {'; '.join(parts)}"
    )


def _empty_class(root: Path, split: str, name: str, other: list[str]) -> str:
    held = "no files"
    if other:
        listed = ", ".join(other[:3]) + ", ..." * (len(other) > 3)
        held = f"only {len(other)} other file{'s' * (len(other) > 1)} ({listed})"
    folder = str(root / split / name)
    return f"class {name!r} of split {split!r} has no images ({folder!r} holds {held})"


#: What an empty class folder is expected to hold, and how to drop a class.
EMPTY_HINT = (
    f"expected image files (extensions {', '.join(IMG_EXTENSIONS)}) in every class folder of "
    "every split (remove a class's folder from every split to drop the class)"
)


def scan(root: str | Path, splits: Sequence[str], *, allow_empty: bool = False) -> Listing:
    """List the images of each split; sorted class folders of ``train`` give the labels."""
    root = Path(root)
    _check_splits(root, splits)
    reference = "train" if "train" in splits else splits[0]
    class_names = tuple(_class_folders(root / reference))
    if not class_names:
        raise DataError(f"split folder {str(root / reference)!r} has no class folders")
    rows: dict[str, list[str]] = {}
    labels: dict[str, np.ndarray] = {}
    ignored: dict[str, list[str]] = {}
    visited = Visited()  # shared: a file reached from two class folders is listed once
    empty: list[str] = []
    for split in splits:
        _check_classes(split, tuple(_class_folders(root / split)), reference, class_names)
        rows[split], ignored[split], split_labels = [], [], []
        for label, name in enumerate(class_names):
            prefix = f"{split}/{name}/"
            found, other = walk_images(root / split / name, prefix=prefix, visited=visited)
            rows[split] += [prefix + rel for rel in found]
            split_labels += [label] * len(found)
            ignored[split] += [prefix + rel for rel in other]
            if not found:
                empty.append(_empty_class(root, split, name, other))
        labels[split] = np.array(split_labels, dtype=np.int64)
    if empty and not allow_empty:
        raise DataError("; ".join(empty) + f"; {EMPTY_HINT}")
    return Listing(class_names, rows, labels, ignored, tuple(empty))


def fingerprint(root: str | Path, listing: Listing) -> str:
    """SHA-256 over every image's split, relative path, label, size and content."""
    root = Path(root)
    digest = hashlib.sha256()
    digest.update(repr(listing.class_names).encode())
    for split, rows in listing.rows.items():
        for rel, label in zip(rows, listing.labels[split], strict=True):
            path = root / rel
            try:
                content = f"{path.stat().st_size}\0{file_sha256(path)}"
            except OSError:  # check() reports it; this only has to differ
                content = "unreadable"
            digest.update(f"{split}\0{rel}\0{label}\0{content}\n".encode())
    return digest.hexdigest()


def check(
    root: str | Path, listing: Listing, selection: Mapping[str, Sequence[int]] | None = None
) -> dict[str, dict[int, str]]:
    """Decode the ``selection`` (default all) cheaply: split -> {position: why it fails}."""
    root = Path(root)
    if selection is None:
        selection = {split: range(len(rows)) for split, rows in listing.rows.items()}
    bad: dict[str, dict[int, str]] = {}
    with progress(sum(map(len, selection.values())), "check images", unit="img") as bar:
        for split, positions in selection.items():
            bad[split] = {}
            for i in positions:
                reason = probe(root / listing.rows[split][i])
                if reason is not None:
                    bad[split][i] = reason
                bar.update(1)
    return bad


class ImageFiles:
    """A map-style dataset of image files: item i is ``(i, transform(image) or None, error)``."""

    def __init__(self, root: str | Path, paths: Sequence[str], transform: Callable):
        self.root, self.paths, self.transform = Path(root), list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None]:
        try:
            image = load_rgb(self.root / self.paths[i])
        except BadImageError as exc:
            return i, None, exc.reason
        return i, self.transform(image), None


class FolderSource:
    """``data.source: folder``: the images under ``root`` for ``splits``."""

    kind = "folder"
    needs_backbone = True

    def __init__(self, root: str | Path, splits: Sequence[str]):
        self.root, self.splits = Path(root), tuple(splits)

    def list(self) -> Listing:
        return scan(self.root, self.splits, allow_empty=True)

    def fingerprint(self, listing: Listing) -> str:
        return fingerprint(self.root, listing)

    def check(
        self, listing: Listing, selection: Mapping[str, Sequence[int]] | None = None
    ) -> dict[str, dict[int, str]]:
        """Every image that cannot be decoded (:func:`check`)."""
        return check(self.root, listing, selection)

    @property
    def data_dir(self) -> str:
        """The data folder as given (``data.dir``)."""
        return str(self.root)

    def metadata(self) -> dict[str, Any]:
        return {}

    def location(self, row: str) -> str:
        return str(self.root / row)

    def iterate(
        self,
        split: str,
        rows: Sequence[str],
        encoder: Encoder | None,
        *,
        batch_size: int,
        workers: int,
    ) -> Iterator[Batch]:
        transform = encoder.transform if encoder is not None else None
        dataset = ImageFiles(self.root, rows, transform)
        return encode(self.kind, encoder, dataset, batch_size=batch_size, workers=workers)
