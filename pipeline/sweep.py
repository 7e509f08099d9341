"""Sweeps: one head per point of a grid of ``train`` settings, in parallel, on cached features.

    python -m pipeline.sweep --grid train.seed=0,1,2,3,4 --grid train.head=quantum,linear \\
        [--grid 'train.embedding,train.reupload=[paper,false],[iqp,true]'] \\
        [--jobs N | --scheduler tcp://HOST:PORT | --dask-workers N] [--out runs/sweep] [--force] \\
        [--no-cache] [--params params.yaml] [--set train.epochs=10]

The runs are all combinations of the ``--grid`` values; keys in one ``--grid`` joined by commas
vary together. Combinations that differ only in keys their head does not read (a classical
head and ``train.circuit``) are one run. Writes ``results.csv``, ``summary.md`` and
``summary.json`` into ``--out``; the machinery and its guarantees are
:mod:`pipeline.training.sweep` (docs: training and scaling pages).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli, cluster
from pipeline.training import cache, sweep


def _check(args) -> str | None:
    if args.jobs == 0 or args.jobs < -1:
        return f"--jobs: expected an integer >= 1 or -1; got {args.jobs}"
    return None


def _run(args) -> None:
    result = sweep.sweep(
        cli.params(args),
        sweep.parse_grid(args.grid),
        out_dir=args.out,
        jobs=args.jobs,
        scheduler=args.scheduler,
        dask_workers=args.dask_workers,
        force=args.force,
        save_models=args.save_models,
        cache_dir=None if args.no_cache else cache.default_root(),
    )
    if result.failed:
        raise sweep.SweepError(
            f"{len(result.failed)} of {len(result.cells)} runs failed (see "
            f"{result.out_dir / 'results.csv'}); the others' results are written"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.sweep",
        "Train one head per combination of --grid values, in parallel; "
        "write results.csv and a mean ± std summary.",
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        required=True,
        metavar="BLOCK.KEY=V1,V2,...",
        help="values of one train setting, or of a key that selects the features such as "
        "spiral.turns (repeatable; the runs are all combinations). Keys tied together: "
        "'train.embedding,train.reupload=[paper,false],[iqp,true]', one list per combination. "
        "Combinations that differ only in keys a head does not read (train.circuit for "
        "classical and linear heads, ...) are one run, shown as n/a in summary.md",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="local worker processes (joblib; default 1: in this process; -1: one per CPU)",
    )
    cluster.add_cluster_arguments(where)
    parser.add_argument(
        "--out",
        default=sweep.DEFAULT_OUT,
        metavar="DIR",
        help=f"output folder (default {sweep.DEFAULT_OUT})",
    )
    parser.add_argument(
        "--force", action="store_true", help="rerun runs that are already in results.csv"
    )
    parser.add_argument(
        "--save-models",
        action="store_true",
        help="write each run's model.pt to <out>/runs/<run_id>/model.pt",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="train every run, even those in the head cache .cache/heads",
    )
    return cli.main(parser, argv, _run, check=_check)


if __name__ == "__main__":
    sys.exit(main())
