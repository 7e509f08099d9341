"""The DVC ``compare`` stage: every head x seed on the same features, and their summary.

    python -m pipeline.compare [--params params.yaml] [--summary-only] [--no-cache]

Trains every head in ``compare.heads`` with every seed in ``compare.seeds`` and writes
``compare.dir/summary.md`` (:mod:`pipeline.training.compare`). ``--no-cache`` trains heads
found in ``.cache/heads`` again; ``--summary-only`` reads the runs already there.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.compare",
        "Train every compare head x seed on the same features; mean ± std of val accuracy.",
    )
    parser.add_argument(
        "--summary-only", action="store_true", help="summarise the runs already in compare.dir"
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="train every head, even those in the head cache .cache/heads",
    )
    return cli.main(parser, argv, _run)


def _run(args) -> None:
    params = cli.params(args)
    # torch: imported for the work, not for --help
    from pipeline.training.cache import default_root
    from pipeline.training.compare import compare, compare_summary

    if args.summary_only:
        compare_summary(params.compare)
    else:
        compare(params, cache_dir=None if args.no_cache else default_root())


if __name__ == "__main__":
    sys.exit(main())
