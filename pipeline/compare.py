"""The DVC ``compare`` stage: every head x seed on the same features, and their summary.

    python -m pipeline.compare [--params params.yaml] [--summary-only]

Trains every head in ``compare.heads`` with every seed in ``compare.seeds`` (the ``train``
block otherwise) in one process, as stacks of heads that train together, into
``compare.dir/runs/<head>-seed<seed>/``, and writes ``compare.dir/summary.md`` and
``summary.json``: mean ± std of best and last val accuracy per head
(:mod:`pipeline.training.compare`). ``--summary-only`` reads the runs already there.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli
from pipeline.training.compare import compare, compare_summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.compare",
        "Train every compare head x seed on the same features; mean ± std of val accuracy.",
    )
    parser.add_argument(
        "--summary-only", action="store_true", help="summarise the runs already in compare.dir"
    )
    return cli.main(parser, argv, _run)


def _run(args) -> None:
    params = cli.params(args)
    if args.summary_only:
        compare_summary(params.compare)
    else:
        compare(params)


if __name__ == "__main__":
    sys.exit(main())
