"""Stage two: train a head (quantum, classical or linear) on cached features.

    python -m pipeline.train_head [--params params.yaml] [--set train.q_depth=3]

Trains with the paper's settings on ``train.features`` (default ``extract.out``), keeps the
checkpoint with the best val accuracy, as the paper does (``train.checkpoint: last`` keeps the
final one), and writes the run folder ``train.out_dir`` (:mod:`pipeline.training`).

``train.features``, ``train.out_dir`` and ``spiral.out`` may hold placeholders such as
``{spiral.turns}``; a store that is ``spiral.out`` is generated first when missing or stale.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.train_head",
        "Stage two: train a quantum, classical or linear head on cached features.",
    )
    return cli.main(parser, argv, _run)


def _run(args) -> None:
    params = cli.params(args)
    from pipeline.training.run import train_head  # torch: imported for the work, not for --help

    train_head(params)


if __name__ == "__main__":
    sys.exit(main())
