"""Dask for the commands that scale out: ``--scheduler tcp://HOST:PORT`` joins a cluster (workers
need the data at the same paths), ``--dask-workers N`` starts a local one; dask imported lazily.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from pipeline.common.errors import ClusterError

log = logging.getLogger("pipeline")

LOCAL_HOST = "127.0.0.1"


def add_cluster_arguments(group: argparse._ActionsContainer) -> None:
    """Add ``--scheduler`` and ``--dask-workers`` to a parser or a (mutually exclusive) group."""
    group.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run on an existing Dask cluster (its scheduler's address)",
    )
    group.add_argument(
        "--dask-workers",
        type=positive_int,
        metavar="N",
        help=f"start a local Dask cluster of N single-threaded worker processes on {LOCAL_HOST}",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}")
    return value


@contextlib.contextmanager
def connect(
    scheduler: str | None = None, n_workers: int | None = None, *, timeout: float = 30.0
) -> Iterator[Any]:
    """A ``dask.distributed.Client`` joined to ``scheduler`` or on ``n_workers`` local workers.

    Raises:
        ClusterError: neither or both options, or the scheduler cannot be reached.
    """
    if (scheduler is None) == (n_workers is None):
        raise ClusterError("expected exactly one of --scheduler and --dask-workers")
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"--scheduler: cannot reach a Dask scheduler at {scheduler!r} within "
                f"{timeout:.0f} s ({type(exc).__name__}: {exc}); start one with `dask scheduler` "
                "and workers with `dask worker ADDRESS`"
            ) from exc
        with client:
            log.info("Dask: joined %s (%d worker threads)", scheduler, total_threads(client))
            yield client
        return
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host=LOCAL_HOST,
            dashboard_address=None,
        ) as local,
        Client(local) as client,
    ):
        log.info(
            "Dask: started a local cluster of %d workers at %s", n_workers, local.scheduler_address
        )
        yield client


def total_threads(client: Any) -> int:
    """How many tasks the client's cluster runs at once (its workers' threads, at least 1)."""
    return max(1, sum(client.nthreads().values()))
