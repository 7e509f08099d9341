"""CIFAR-10 class pairs as a stage-one source: the paper's dogs/cats and planes/cars experiments.

Reads torchvision's python files (train: ``data_batch_1..5``, val: ``test_batch``) with an
unpickler that builds only plain types and arrays, so a planted file cannot run code.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.errors import ConfigError, DataError
from pipeline.common.files import file_sha256
from pipeline.sources.base import Batch, Encoder, Listing, encode

log = logging.getLogger("pipeline")

FOLDER = "cifar-10-batches-py"
META_FILE = "batches.meta"
#: split -> the batch files it is read from, in this order (torchvision's).
SPLIT_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "val": ("test_batch",),
}


@dataclass(frozen=True)
class Cifar10Split:
    """The images of the selected classes in one split."""

    images: np.ndarray  # (N, 32, 32, 3) uint8, RGB
    labels: np.ndarray  # (N,) int64, index into data.classes
    ids: list[str]  # "<batch file>/<index>"


#: MD5 of each file of the published ``cifar-10-python.tar.gz``.
PUBLISHED_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not allowed")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    try:  # what ndarray.__reduce__ names (numpy 2, then numpy 1)
        from numpy._core.multiarray import _reconstruct
    except ImportError:
        from numpy.core.multiarray import _reconstruct

    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain types and numpy arrays; any other global is refused before it runs."""

    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed in a CIFAR-10 file (it holds only "
                "dicts, lists, strings, numbers and numpy arrays)"
            ) from None


def _unpickle(path: Path) -> dict[str, Any]:
    """A CIFAR-10 file read as data (:class:`_PlainUnpickler`)."""
    try:
        with open(path, "rb") as fh:
            entry = _PlainUnpickler(fh, encoding="latin1").load()  # as torchvision reads them
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(
            f"cannot read CIFAR-10 file {path}: {exc}; expected an unmodified file of "
            "cifar-10-python.tar.gz (delete the folder and run `python -m pipeline.fetch_data`)"
        ) from exc
    if not isinstance(entry, dict):
        raise DataError(f"{path}: expected a pickled dict (CIFAR-10 python layout)")
    return entry


def unpublished(folder: Path) -> list[str]:
    """The files of ``folder`` whose MD5 is not the published archive's."""
    return [
        name
        for name, md5 in PUBLISHED_MD5.items()
        if hashlib.md5((folder / name).read_bytes(), usedforsecurity=False).hexdigest() != md5
    ]


def batches_dir(data_dir: str | Path) -> Path:
    """``data.dir/cifar-10-batches-py``, checked to hold every file."""
    folder = Path(data_dir) / FOLDER
    needed = [META_FILE, *(f for files in SPLIT_FILES.values() for f in files)]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 files missing in {folder}: {', '.join(missing)}; expected torchvision's "
            "python layout there. Run `python -m pipeline.fetch_data` with data.source cifar10 "
            "(downloads it), or set data.dir to the folder that holds cifar-10-batches-py/"
        )
    return folder


def label_names(folder: Path) -> list[str]:
    """The 10 class names of ``batches.meta``."""
    meta = _unpickle(folder / META_FILE)
    names = meta.get("label_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(f"{folder / META_FILE}: expected a list 'label_names'")
    return names


def class_indices(folder: Path, classes: Sequence[str]) -> list[int]:
    """CIFAR-10 label of each name in ``classes``, in that order."""
    names = label_names(folder)
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise ConfigError(
            f"data.classes: {', '.join(map(repr, unknown))} not a CIFAR-10 class; expected "
            f"names of {', '.join(names)}"
        )
    return [names.index(c) for c in classes]


def load_split(folder: Path, split: str, classes: Sequence[str]) -> Cifar10Split:
    """The images of ``classes`` in ``split``, labelled 0..k-1 in the order of ``classes``."""
    if split not in SPLIT_FILES:
        raise ConfigError(f"data.splits: expected train and/or val for CIFAR-10; got {split!r}")
    wanted = class_indices(folder, classes)
    remap = {cifar: i for i, cifar in enumerate(wanted)}
    images, labels, ids = [], [], []
    for name in SPLIT_FILES[split]:
        entry = _unpickle(folder / name)
        data = np.asarray(entry.get("data"))
        targets = np.asarray(entry.get("labels", entry.get("fine_labels", [])), dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(targets) != len(data):
            raise DataError(
                f"{folder / name}: expected 'data' of shape (N, 3072) and N 'labels'; got "
                f"{data.shape} and {len(targets)}"
            )
        keep = np.flatnonzero(np.isin(targets, wanted))
        # rows are 1024 red, 1024 green, 1024 blue values of a 32 x 32 image
        images.append(data[keep].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.uint8))
        labels.append(np.array([remap[int(t)] for t in targets[keep]], dtype=np.int64))
        ids += [f"{name}/{i}" for i in keep]
    return Cifar10Split(np.concatenate(images), np.concatenate(labels), ids)


def fingerprint(folder: Path, splits: Sequence[str]) -> str:
    """SHA-256 over the names and contents of the files ``splits`` read."""
    digest = hashlib.sha256()
    for name in [META_FILE, *(f for s in splits for f in SPLIT_FILES[s])]:
        digest.update(f"{name}\0{file_sha256(folder / name)}\n".encode())
    return digest.hexdigest()


class _ArrayImages:
    def __init__(self, images: np.ndarray, transform: Callable):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        return i, self.transform(Image.fromarray(self.images[i], "RGB")), None


class Cifar10Source:
    """``data.source: cifar10``: the images of ``classes``; rows are ``<batch file>/<index>``."""

    kind = "cifar10"
    needs_backbone = True

    def __init__(self, data_dir: str | Path, splits: Sequence[str], classes: Sequence[str]):
        self.folder = batches_dir(data_dir)
        self.splits, self.classes = tuple(splits), tuple(classes)
        changed = unpublished(self.folder)
        if changed:
            log.warning(
                "%s: %s differ from the published CIFAR-10 files (MD5); read as data only",
                self.folder,
                ", ".join(changed),
            )
        class_indices(self.folder, self.classes)  # check the names before any work
        self._parts: dict[str, Cifar10Split] = {}

    def _part(self, split: str) -> Cifar10Split:
        if split not in self._parts:
            self._parts[split] = load_split(self.folder, split, self.classes)
        return self._parts[split]

    def list(self) -> Listing:
        parts = {split: self._part(split) for split in self.splits}
        return Listing(
            self.classes,
            {split: list(part.ids) for split, part in parts.items()},
            {split: part.labels for split, part in parts.items()},
        )

    def fingerprint(self, listing: Listing) -> str:
        return fingerprint(self.folder, self.splits)

    def metadata(self) -> dict[str, Any]:
        return {"cifar10": {"classes": list(self.classes), "files": FOLDER}}

    def location(self, row: str) -> str:
        return str(self.folder / row)

    def iterate(
        self,
        split: str,
        rows: Sequence[str],
        encoder: Encoder | None,
        *,
        batch_size: int,
        workers: int,
    ) -> Iterator[Batch]:
        part = self._part(split)
        position = {row: i for i, row in enumerate(part.ids)}
        images = part.images[[position[row] for row in rows]]  # (len(rows), 32, 32, 3)
        dataset = _ArrayImages(images, encoder.transform if encoder is not None else None)
        return encode(self.kind, encoder, dataset, batch_size=batch_size, workers=workers)


def fetch(data_dir: str | Path) -> Path:
    """Make sure ``data_dir`` holds the published CIFAR-10 files, downloading them if not."""
    target = Path(data_dir)
    try:
        folder = batches_dir(target)
    except DataError:
        pass
    else:
        _check_published(folder)
        log.info("%s already holds CIFAR-10 (%s, MD5s checked)", target, folder.name)
        return target
    from torchvision.datasets import CIFAR10  # torchvision only for the download

    log.info("downloading CIFAR-10 into %s (torchvision)", target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            CIFAR10(root=str(target), train=train, download=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise DataError(
            f"cannot download CIFAR-10 into {target}: {exc}. Offline? Copy "
            f"cifar-10-python.tar.gz's {FOLDER}/ folder into {target}"
        ) from exc
    _check_published(batches_dir(target))
    return target


def _check_published(folder: Path) -> None:
    changed = unpublished(folder)
    if changed:
        raise DataError(
            f"{folder}: {', '.join(changed)} differ from the published cifar-10-python.tar.gz "
            "(MD5); expected the unmodified files. Delete the folder and run `python -m "
            "pipeline.fetch_data` to download them again"
        )
