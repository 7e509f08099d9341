"""The one interface of every source of a feature store: list, fingerprint, iterate.

A source (an image folder, CIFAR-10, a generated data set) says what rows it has
(:meth:`Source.list`: classes, and per split the row names and labels in order), what
identifies its contents (:meth:`Source.fingerprint`), and turns rows into features
(:meth:`Source.iterate`): image sources hand decoded images to a frozen backbone (an
:class:`Encoder`), generated sources yield their features directly. One loop,
:func:`pipeline.extraction.loop.extract`, does the rest for all of them: the up-to-date
check, shards, progress, bad rows and the store write.

This module needs neither torch nor torchvision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Listing:
    """What a source holds, in the order the store keeps it.

    Args:
        class_names: label index -> class name.
        rows: split -> row names (image paths relative to the data folder, or row ids).
        labels: split -> (N,) int64 label of each row.
        ignored: split -> files that were seen but are not rows (e.g. not images).
        empty: a line for each class folder without images (stage one refuses them, together
            with the images it cannot decode).
    """

    class_names: tuple[str, ...]
    rows: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    ignored: dict[str, list[str]] = field(default_factory=dict)
    empty: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Rows in all splits."""
        return sum(len(r) for r in self.rows.values())

    def select(self, start: int, stop: int) -> dict[str, range]:
        """Per split, the positions of rows ``start..stop-1`` of all splits in listing order.

        Example:
            >>> Listing(("a",), {"train": ["x", "y"], "val": ["z"]}, {}).select(1, 3)
            {'train': range(1, 2), 'val': range(0, 1)}
        """
        selected, offset = {}, 0
        for split, rows in self.rows.items():
            selected[split] = range(
                min(max(start - offset, 0), len(rows)), min(max(stop - offset, 0), len(rows))
            )
            offset += len(rows)
        return selected


@dataclass(frozen=True)
class Batch:
    """Features of some rows of one split, and the rows that could not be read."""

    indices: list[int]  # positions in the iterated rows that gave features
    features: np.ndarray  # (len(indices), feature_dim) float32, or complex128 (QQ kets)
    failed: list[tuple[int, str]]  # (position, reason) of rows that could not be read


class Encoder(Protocol):
    """A frozen backbone as sources see it (:class:`pipeline.backbones.inference.Encoder`)."""

    transform: Callable[[Any], Any]  # a decoded RGB image -> the backbone's input tensor

    def batches(self, dataset: Any, *, batch_size: int, workers: int) -> Iterator[Batch]:
        """Run over a map-style dataset whose item ``i`` is ``(i, input or None, error)``."""
        ...


class Source(Protocol):
    """A source of rows and features (see the module docstring).

    Two members are optional, looked up with ``getattr`` by the extraction loop, and only
    image folders have them (:class:`pipeline.sources.folder.FolderSource`):

    * ``check(listing, selection) -> {split: {position: reason}}``: every row that cannot be
      read, found in one cheap pass before a backbone is built
      (:func:`pipeline.extraction.checks.checked_rows`);
    * ``data_dir: str``: the folder the rows' files are in, recorded in the store's ``extra``
      so that the report can show a run's own images.
    """

    #: The store's ``source`` attribute (``folder``, ``cifar10``, ``spiral``, ...).
    kind: str
    #: True: rows are images for a backbone; False: :meth:`iterate` yields features itself.
    needs_backbone: bool

    def list(self) -> Listing:
        """Classes and, per split, the row names and labels in order."""
        ...

    def fingerprint(self, listing: Listing) -> str:
        """A SHA-256 that changes whenever the rows' contents do (the up-to-date check)."""
        ...

    def metadata(self) -> dict[str, Any]:
        """Source settings kept in the store's ``extra`` (compared by the up-to-date check)."""
        ...

    def location(self, row: str) -> str:
        """Where a row comes from, for messages (an image's full path)."""
        ...

    def iterate(
        self,
        split: str,
        rows: Sequence[str],
        encoder: Encoder | None,
        *,
        batch_size: int,
        workers: int,
    ) -> Iterator[Batch]:
        """Features of ``rows`` of ``split``, in batches; ``encoder`` is None without a backbone."""
        ...


def encode(
    kind: str, encoder: Encoder | None, dataset: Any, *, batch_size: int, workers: int
) -> Iterator[Batch]:
    """An image source's :meth:`Source.iterate`: its decoded images through the backbone."""
    if encoder is None:
        raise ValueError(f"the {kind} source needs a backbone; got encoder None")
    return encoder.batches(dataset, batch_size=batch_size, workers=workers)


@dataclass(frozen=True)
class Provenance:
    """What made the features of a source without a backbone (stored as for a backbone)."""

    backbone: str = "none"
    weights: str = "none"
    weights_sha256: str = ""
    transform: str = ""
