"""Write generated data sets as feature stores: the paper's spiral, QC and QQ data sets.

    python -m pipeline.datasets spiral [--params params-spiral.yaml] [--set spiral.turns=2.0]
    python -m pipeline.datasets qc [--params params-qc.yaml] [--force]
    python -m pipeline.datasets qq [--params params-qq.yaml] [--force]

Each store (``spiral.out``, ``qc.out``, ``qq.out``) has the stage-one format and is written by
the one extraction loop (:mod:`pipeline.extraction.loop`) from its source
(:class:`pipeline.sources.spiral.SpiralSource`,
:class:`pipeline.sources.photonic.QCSource`, ``QQSource``); it is rewritten only when
missing or made with other settings (``--force``: always). ``qc`` and ``qq`` download the
paper's pretrained file (``qc.pretrained`` from ``qc.url``, ...) when it is missing and check
its SHA-256. Stage two only reads these stores: ``train_head``, ``sweep`` and ``compare`` name
this command when one is missing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli
from pipeline.common.config import add_params_arguments
from pipeline.extraction.loop import extract
from pipeline.sources.spiral import SpiralSource

#: subcommand -> its help line
DATASETS = {
    "spiral": "the paper's two-spiral benchmark (block spiral) -> spiral.out",
    "qc": "the paper's quantum-to-classical data set (block qc) -> qc.out",
    "qq": "the paper's quantum-to-quantum data set, complex kets (block qq) -> qq.out",
}


def _run(args) -> None:
    params = cli.params(args)
    if args.command in ("qc", "qq"):
        # torch and the photonic simulator: only for these two, not for the spiral
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
