"""Summarise the DVC ``compare`` stage: mean ± std of best and last val accuracy per head.

    python -m pipeline.compare [--params params.yaml]

Reads the runs under ``compare.dir/runs/`` and writes ``compare.dir/summary.md`` and
``summary.json`` (:mod:`pipeline.training.compare`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli
from pipeline.training.compare import compare_summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.compare",
        "Summarise the compare runs: mean ± std of val accuracy per head.",
    )
    return cli.main(parser, argv, lambda args: compare_summary(cli.params(args).compare))


if __name__ == "__main__":
    sys.exit(main())
