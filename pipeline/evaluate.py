"""Score a trained head on noisy and finite-shot devices: a robustness table and plot.

    python -m pipeline.evaluate [--model RUN/model.pt] [--features FILE]
                                [--params params.yaml] [--set evaluate.shots=[null,1000]]

Scores the head on the val split of its features under every combination of the ``evaluate``
block's shots and noise settings, and writes ``robustness.csv``, ``robustness.json`` and
``plots/robustness.png`` into the model's folder (:mod:`pipeline.inference.evaluate`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.evaluate",
        "Score a trained head under finite shots and noise; write robustness.csv, "
        "robustness.json and plots/robustness.png beside its model.pt.",
    )
    cli.add_model_argument(parser)
    parser.add_argument(
        "--features",
        metavar="FILE",
        help="the feature store to score on (default: the one model.pt records; its sha256 "
        "must match)",
    )
    return cli.main(parser, argv, _run)


def _run(args) -> None:
    params = cli.params(args)
    from pipeline.inference.evaluate import evaluate  # torch: imported for the work, not --help

    evaluate(params, args.model, args.features)


if __name__ == "__main__":
    sys.exit(main())
