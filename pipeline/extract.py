"""Stage one: run a frozen backbone once over the images and store their features.

    python -m pipeline.extract [--params params.yaml] [--set extract.weights=none] [--force]
        [--shard K/N | --scheduler tcp://HOST:PORT | --dask-workers N [--shards M]]

Shards merge with ``python -m pipeline.features merge``; see docs/extraction.md.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from pipeline.common import cli, cluster
from pipeline.extraction.loop import extract_images
from pipeline.extraction.sharded import extract_on_dask
from pipeline.store.shards import Shard

log = logging.getLogger("pipeline")


def _on_dask(args) -> bool:
    return args.scheduler is not None or args.dask_workers is not None


def _check(args) -> str | None:
    if args.shards is not None and not _on_dask(args):
        return "--shards needs --scheduler or --dask-workers"
    return None


def _run(args) -> None:
    params = cli.params(args)
    data, cfg = params.data, params.extract
    if _on_dask(args):
        with cluster.connect(args.scheduler, args.dask_workers) as client:
            extract_on_dask(data, cfg, client, shards=args.shards, force=args.force)
        return
    result = extract_images(data, cfg, force=args.force, shard=args.shard)
    if args.shard is not None:
        count = args.shard.count
        log.info(
            "shard %s written; when all %d are: python -m pipeline.features merge %s %s",
            result.path,
            count,
            cfg.out,
            " ".join(str(Shard(k, count).path(cfg.out)) for k in range(1, count + 1)),
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.extract",
        "Stage one: extract frozen-backbone features into an HDF5 feature store.",
    )
    parser.add_argument(
        "--force", action="store_true", help="extract even if the output is up to date"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--shard",
        type=Shard.parse,
        metavar="K/N",
        help="extract only the K-th of N parts of the images, into extract.out with a "
        ".shard-K-of-N suffix (merge with `python -m pipeline.features merge`)",
    )
    cluster.add_cluster_arguments(where)
    parser.add_argument(
        "--shards",
        type=cluster.positive_int,
        metavar="M",
        help="with --scheduler/--dask-workers: number of shards (default: one per worker thread)",
    )
    return cli.main(parser, argv, _run, check=_check)


if __name__ == "__main__":
    sys.exit(main())
