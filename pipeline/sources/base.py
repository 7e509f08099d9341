"""The one interface of every source of a feature store (needs neither torch nor torchvision)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Listing:
    """What a source holds, in the order the store keeps it.

    Args:
        rows: split -> row names (image paths relative to the data folder, or row ids).
        ignored: split -> files seen that are not rows.
        empty: a line for each class folder without images.
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
        """Per split, the positions of rows ``start..stop-1`` of all splits in listing order."""
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
    failed: list[tuple[int, str]]  # (position, reason) of unreadable rows


class Encoder(Protocol):
    """A frozen backbone as sources see it."""

    transform: Callable[[Any], Any]  # RGB image -> input tensor

    def batches(self, dataset: Any, *, batch_size: int, workers: int) -> Iterator[Batch]:
        """Run over a map-style dataset whose item ``i`` is ``(i, input or None, error)``."""
        ...


class Source(Protocol):
    """A source of rows and features; image folders also have ``check`` and ``data_dir``."""

    #: The store's ``source`` attribute (``folder``, ``cifar10``, ``spiral``, ...).
    kind: str
    #: Rows are images for a backbone (else :meth:`iterate` yields features).
    needs_backbone: bool

    def list(self) -> Listing:
        """Classes and, per split, the row names and labels in order."""
        ...

    def fingerprint(self, listing: Listing) -> str:
        """A SHA-256 that changes whenever the rows' contents do."""
        ...

    def metadata(self) -> dict[str, Any]:
        """Source settings kept in the store's ``extra``."""
        ...

    def location(self, row: str) -> str:
        """Where a row comes from, for messages."""
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
        """Features of ``rows`` of ``split`` in batches; ``encoder`` is None without a backbone."""
        ...


def encode(
    kind: str, encoder: Encoder | None, dataset: Any, *, batch_size: int, workers: int
) -> Iterator[Batch]:
    """An image source's :meth:`Source.iterate`: its images through the backbone."""
    if encoder is None:
        raise ValueError(f"the {kind} source needs a backbone; got encoder None")
    return encoder.batches(dataset, batch_size=batch_size, workers=workers)


@dataclass(frozen=True)
class Provenance:
    """What made the features of a source without a backbone."""

    backbone: str = "none"
    weights: str = "none"
    weights_sha256: str = ""
    transform: str = ""
