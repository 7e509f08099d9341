"""Pictures of a trained head: a grid of validation predictions, the curves, the confusion matrix.

    python -m pipeline.report [--out-dir RUN_DIR] [--data-dir DIR] [--params params.yaml]
                              [--set report.n_images=9]

Images come from the data folder recorded with the run's features; ``--data-dir`` names
where they are now.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli
from pipeline.reports.plots import report


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.report",
        "Draw predictions.png, curves.png and confusion.png of a trained head into <run>/plots.",
    )
    parser.add_argument(
        "--out-dir",
        metavar="RUN_DIR",
        help="the run folder to read (default: train.out_dir of the params)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the run's images are now (default: the data folder recorded with its "
        "features; checked against their fingerprint)",
    )
    return cli.main(
        parser, argv, lambda args: report(cli.params(args), args.out_dir, args.data_dir)
    )


if __name__ == "__main__":
    sys.exit(main())
