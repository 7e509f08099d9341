"""One extraction's inputs, passed as one value through the loop and its helpers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.common.config import ExtractConfig
from pipeline.sources.base import Listing, Source


@dataclass(frozen=True)
class Job:
    """The rows of ``source`` to write into ``out`` with ``cfg``'s backbone, or one ``shard``'s."""

    source: Source
    listing: Listing
    fingerprint: str
    out: Path
    cfg: ExtractConfig | None = None
    shard: dict[str, int] | None = None

    @property
    def images(self) -> dict[str, Any] | None:
        """Where the rows' image files are (``data.dir`` as given, and the splits); None without."""
        data_dir = getattr(self.source, "data_dir", None)
        return (
            None if data_dir is None else {"dir": str(data_dir), "splits": list(self.listing.rows)}
        )
