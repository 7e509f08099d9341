"""The paper's spiral figure: the data, and each trained head's decision regions and accuracy.

    python -m pipeline.spiral_plot RUN_DIR [RUN_DIR ...] [--out docs/spiral.png]

Each ``RUN_DIR`` is a ``train.out_dir`` of ``pipeline.train_head`` on a 2-D store (the spiral
benchmark); runs on the same store share a row (:mod:`pipeline.reports.spiral`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.spiral_plot",
        "Draw the spiral data and the decision regions of trained heads (PNG).",
        with_params=False,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="train.out_dir folders")
    parser.add_argument("--out", default="spiral.png", help="PNG to write (default spiral.png)")
    parser.add_argument(
        "--resolution", type=int, default=300, help="grid points per axis (default 300)"
    )
    return cli.main(parser, argv, _run)


def _run(args) -> None:
    from pipeline.reports.spiral import plot  # torch: imported for the work, not for --help

    plot(args.runs, args.out, resolution=args.resolution)


if __name__ == "__main__":
    sys.exit(main())
