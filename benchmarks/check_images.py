"""What stage one's passes over the image files cost before any model is built (run by hand).

    python benchmarks/check_images.py [--data ../shared/data/hymenoptera_data] [--repeats 7]

Prints the median over ``--repeats`` runs (files in the page cache after the first) of: the
listing (:func:`pipeline.sources.folder.scan`, links and duplicates included); the content
fingerprint (SHA-256 of every image, which the up-to-date check needs); the decode check
(:func:`pipeline.sources.folder.check`: every JPEG decoded at 1/8 scale, other formats in
full), which runs only when there is something to extract; and, for scale, a full decode of
every image (what extraction itself does, besides the forward pass).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from timing import median_seconds

from pipeline.sources import folder, images

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/hymenoptera_data"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger("pipeline").setLevel(logging.WARNING)  # no progress lines
    root = Path(args.data)
    listing = folder.scan(root, ["train", "val"])
    paths = [root / p for rows in listing.rows.values() for p in rows]
    print(f"{len(paths)} images in {root}; median of {args.repeats} runs")
    rows = [
        ("scan (list the images)", lambda: folder.scan(root, ["train", "val"])),
        ("fingerprint (SHA-256 of every image)", lambda: folder.fingerprint(root, listing)),
        ("decode check (folder.check)", lambda: folder.check(root, listing)),
        ("full decode to RGB, for scale", lambda: [images.load_rgb(p) for p in paths]),
    ]
    for label, fn in rows:
        seconds = median_seconds(fn, args.repeats)
        print(f"{label:<40} {seconds:6.3f} s  ({seconds / len(paths) * 1e3:.2f} ms/image)")


if __name__ == "__main__":
    main()
