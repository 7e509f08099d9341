"""Write generated data sets as feature stores: the paper's two-spiral benchmark.

    python -m pipeline.datasets spiral [--params params-spiral.yaml] [--set spiral.turns=2.0]

The store (``spiral.out``) has the stage-one format and is written by the one extraction loop
(:mod:`pipeline.extraction.loop`) from :class:`pipeline.sources.spiral.SpiralSource`; it is
rewritten only when missing or made with other settings (``--force``: always).
``python -m pipeline.train_head`` writes a missing store itself.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli
from pipeline.common.config import add_params_arguments
from pipeline.extraction.loop import extract
from pipeline.sources.spiral import SpiralSource


def _run(args) -> None:
    params = cli.params(args)
    extract(SpiralSource(params.spiral), params.spiral_out, force=args.force)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.datasets",
        "Write generated data sets as feature stores.",
        with_params=False,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    spiral = sub.add_parser(
        "spiral", help="the paper's two-spiral benchmark (block spiral) -> spiral.out"
    )
    add_params_arguments(spiral)
    spiral.add_argument("--force", action="store_true", help="write even if up to date")
    return cli.main(parser, argv, _run)


if __name__ == "__main__":
    sys.exit(main())
