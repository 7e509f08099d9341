"""Stage one's checks of the rows before any backbone is built: every problem in one error."""

from __future__ import annotations

import logging

import numpy as np

from pipeline.common.config import ExtractConfig
from pipeline.common.errors import DataError
from pipeline.sources.base import Listing, Source
from pipeline.sources.folder import EMPTY_HINT

log = logging.getLogger("pipeline")

SKIP_HINT = (
    "set extract.on_bad_image=skip to leave them out (they are then listed in the store's "
    "'skipped' attribute and the log)"
)
MAX_LISTED = 20  # bad images named in one error; the rest are counted


def bad_images_error(source: Source, bad: list[tuple[str, str]]) -> DataError:
    """One error for every undecodable image: ``bad`` is [(row, reason)] in listing order."""
    lines = [f"  {source.location(row)}: {reason}" for row, reason in bad[:MAX_LISTED]]
    if len(bad) > MAX_LISTED:
        lines.append(f"  ... and {len(bad) - MAX_LISTED} more")
    return DataError(
        f"{len(bad)} image{'s' * (len(bad) != 1)} cannot be decoded (extract.on_bad_image is "
        f"'error'); {SKIP_HINT}:\n" + "\n".join(lines)
    )


def problems_error(source: Source, empty: tuple[str, ...], bad: list[tuple[str, str]]) -> DataError:
    """One error for every empty class folder and every undecodable image."""
    parts = []
    if empty:
        parts.append(
            f"{len(empty)} class folder{'s' * (len(empty) != 1)} without images; {EMPTY_HINT}:\n"
            + "\n".join(f"  {line}" for line in empty)
        )
    if bad:
        parts.append(str(bad_images_error(source, bad)))
    return DataError("\n".join(parts))


def refuse_empty_classes(source: Source, listing: Listing) -> None:
    """Raise :func:`problems_error` when a class folder of the listing has no images."""
    if listing.empty:
        raise problems_error(source, listing.empty, [])


def checked_rows(
    source: Source,
    listing: Listing,
    selection: dict[str, range],
    cfg: ExtractConfig | None,
    *,
    whole: bool,
) -> tuple[dict[str, list[int]], list[tuple[str, int, str]]]:
    """The positions of each split to extract, after decoding every selected image once.

    ``cfg`` None (no backbone) checks nothing; ``whole`` False (a shard) may lack a class.

    Returns:
        (split -> positions to extract, [(split, position, reason)] skipped).
    """
    check = getattr(source, "check", None)  # image folders have one (FolderSource.check)
    bad = check(listing, selection) if check is not None and cfg is not None else {}
    found = [
        (split, i, reason)
        for split, positions in selection.items()
        for i, reason in sorted(bad.get(split, {}).items())
        if i in positions
    ]
    refused = found if cfg is not None and cfg.on_bad_image == "error" else []
    if listing.empty or refused:
        raise problems_error(
            source, listing.empty, [(listing.rows[s][i], r) for s, i, r in refused]
        )
    skip = {(s, i) for s, i, _ in found}
    for split, i, reason in found:
        log.warning("skipping undecodable image %s: %s", listing.rows[split][i], reason)
    rows = {s: [i for i in positions if (s, i) not in skip] for s, positions in selection.items()}
    if whole and found:
        check_classes_left(listing, rows)
    empty_splits = [split for split, positions in rows.items() if whole and not positions]
    if empty_splits:
        raise DataError(
            f"split {', '.join(map(repr, empty_splits))} has no rows to extract; expected at "
            "least one image in every split"
        )
    return rows, found


def check_classes_left(listing: Listing, rows: dict[str, list[int]]) -> None:
    """Refuse a split in which skipping undecodable images left a class without images."""
    empty = [
        f"class {name!r} of split {split!r}"
        for split, positions in rows.items()
        for label, name in enumerate(listing.class_names)
        if not np.any(listing.labels[split][positions] == label)
    ]
    if empty:
        raise DataError(
            f"{', '.join(empty)} has no images left once the undecodable ones are skipped; "
            "expected at least one readable image per class in every split"
        )
