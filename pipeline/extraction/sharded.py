"""Extraction as Dask shards, merged into the file one process would write; workers must see
the data and ``extract.out``'s folder at the same paths.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from pathlib import Path

from pipeline.common import cluster
from pipeline.common.config import DataConfig, ExtractConfig
from pipeline.common.progress import progress
from pipeline.extraction.checks import refuse_empty_classes
from pipeline.extraction.job import Job
from pipeline.extraction.loop import ExtractResult, extract_images, up_to_date
from pipeline.sources.catalog import image_source
from pipeline.store.shards import Shard, merge

log = logging.getLogger("pipeline")


def extract_shard(
    data: DataConfig, cfg: ExtractConfig, shard: Shard, fingerprint: str, force: bool
) -> tuple[str, bool, float]:
    """One Dask task: extract one shard; returns (shard file, was up to date, seconds)."""
    import multiprocessing

    if cfg.workers and multiprocessing.current_process().daemon:
        # Dask tasks run in daemonic processes, which cannot start DataLoader workers
        cfg = replace(cfg, workers=0)
    result = extract_images(data, cfg, force=force, shard=shard, fingerprint=fingerprint)
    return str(result.path), result.up_to_date, result.seconds


def extract_on_dask(
    data: DataConfig,
    cfg: ExtractConfig,
    client,
    *,
    shards: int | None = None,
    force: bool = False,
) -> ExtractResult:
    """Extract ``cfg.out`` as ``shards`` Dask tasks on ``client``, then merge them."""
    from distributed import as_completed  # dask: only with --scheduler/--dask-workers

    start = time.perf_counter()
    out = Path(cfg.out)
    source = image_source(data)
    listing = source.list()
    refuse_empty_classes(source, listing)  # before any shard is sent
    fingerprint = source.fingerprint(listing)
    total = listing.total
    if out.exists() and not force:
        done = up_to_date(Job(source, listing, fingerprint, out, cfg), start)
        if done is not None:
            return done
    n = max(1, min(shards or cluster.total_threads(client), total))
    log.info("extracting %d rows as %d shards on %s", total, n, client.scheduler.address)
    token = uuid.uuid4().hex[:8]  # task keys unique to this run, on a shared cluster too
    futures = [
        client.submit(
            extract_shard,
            data,
            cfg,
            Shard(k, n),
            fingerprint,
            force,
            key=f"extract-{k}-of-{n}-{token}",
        )
        for k in range(1, n + 1)
    ]
    paths: list[str] = []
    try:
        with progress(n, "extract shards", unit="shard") as bar:
            for future in as_completed(futures):
                path, fresh, seconds = future.result()
                log.info("%s %s in %.1f s", path, "was up to date" if fresh else "done", seconds)
                paths.append(path)
                bar.update(1)
    finally:
        for future in futures:
            future.cancel()
    meta = merge(out, paths)
    for path in paths:
        Path(path).unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    log.info(
        "merged %d shards into %s in %.1f s in all (%.1f rows/s)", n, out, seconds, total / seconds
    )
    return ExtractResult(out, meta, False, seconds)
