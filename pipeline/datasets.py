"""Write the paper's generated data sets as feature stores, unless up to date.

    python -m pipeline.datasets {spiral,qc,qq} [--params params-spiral.yaml] [--force]

Stage two only reads these stores; see docs/paper.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli
from pipeline.common.config import add_params_arguments
from pipeline.extraction.loop import extract
from pipeline.sources.spiral import SpiralSource

DATASETS = {
    "spiral": "the paper's two-spiral benchmark (block spiral) -> spiral.out",
    "qc": "the paper's quantum-to-classical data set (block qc) -> qc.out",
    "qq": "the paper's quantum-to-quantum data set, complex kets (block qq) -> qq.out",
}


def _run(args) -> None:
    params = cli.params(args)
    if args.command in ("qc", "qq"):
        # imports torch, which the spiral does not need
        from pipeline.sources.photonic import QCSource, QQSource

        if args.command == "qc":
            extract(QCSource(params.qc), params.qc_out, force=args.force)
        else:
            extract(QQSource(params.qq), params.qq_out, force=args.force)
    else:
        extract(SpiralSource(params.spiral), params.spiral_out, force=args.force)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.datasets",
        "Write generated data sets as feature stores.",
        with_params=False,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in DATASETS.items():
        command = sub.add_parser(name, help=text)
        add_params_arguments(command)
        command.add_argument("--force", action="store_true", help="write even if up to date")
    return cli.main(parser, argv, _run)


if __name__ == "__main__":
    sys.exit(main())
