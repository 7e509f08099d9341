"""Sweeps: one head per point of a grid of ``train`` settings, in parallel, on cached features.

Each run equals its ``python -m pipeline.train_head`` run bit for bit (runs of one shape train
as one stack), on joblib processes or a Dask cluster (:mod:`pipeline.common.cluster`).
``--out`` gets ``results.csv`` (:mod:`pipeline.training.sweep_files`) and ``summary.md``/``.json``
(:mod:`pipeline.training.summary`), under a lock. A rerun skips runs recorded ok with the same
``run_id``; a failed run is recorded with its error and the others go on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.common import cluster, files, folders
from pipeline.common.config import Params, value_text
from pipeline.common.errors import (
    ClusterError,
    FeatureStoreError,
    PipelineError,
    describe_os_error,
)
from pipeline.common.progress import progress
from pipeline.store.hdf5 import RANDOM_INIT_WARNING, read_meta
from pipeline.training import summary, sweep_files
from pipeline.training.cache import HeadCache, head_key
from pipeline.training.data import load_data
from pipeline.training.grid import Cell, expand, groups
from pipeline.training.grid import parse_grid as parse_grid
from pipeline.training.sweep_files import (
    METRIC_FIELDS,
    Outcome,
    columns,
    read_results,
    result_row,
    write_results,
    write_summary,
)

log = logging.getLogger("pipeline")

DEFAULT_OUT = "runs/sweep"
WRITE_INTERVAL_S = 2.0


class SweepError(PipelineError):
    """Some runs of a sweep failed (the others' results are written)."""


# --------------------------------------------------------------------------- one run (a worker)

_CACHE: OrderedDict[tuple[str, str], Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2


def _head_data(path: str, sha256: str) -> tuple[Any, bool]:
    """This process's copy of a feature file, loaded on first use; (data, loaded now)."""
    key = (path, sha256)
    with _CACHE_LOCK:  # one load per process even when a Dask worker runs several threads
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key], False
        data = load_data(path)
        if data.sha256 != sha256:
            raise FeatureStoreError(
                f"feature store {path!r} changed since the sweep started (sha256 "
                f"{sha256[:12]}... -> {data.sha256[:12]}...); rerun the sweep"
            )
        _CACHE[key] = data
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return data, True


def run_group(
    cells: Sequence[Cell],
    save_dir: str | None = None,
    rows_dir: str | None = None,
    cache_dir: str | None = None,
) -> list[Outcome]:
    """Train runs of one shape on one feature file as one stack; never raises for a failed run.

    Each member's model, then its row, is written as soon as its stack finishes (OSError if not).
    """
    import socket

    # torch: imported in the processes that train, not in the sweep's client
    from pipeline.training.ensemble import fit_ensemble
    from pipeline.training.loop import MemberFailure
    from pipeline.training.outputs import run_files, save_model

    start = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    state = {"loaded": False}
    outcomes: dict[int, Outcome] = {}

    def finished(i: int, result: Any) -> None:
        cell, loaded = cells[i], state["loaded"]
        if isinstance(result, MemberFailure):
            seconds = (time.perf_counter() - start) / len(cells)
            outcome = Outcome(cell.index, "failed", {}, seconds, result.error, loaded, worker)
        else:
            if save_dir is not None:
                save_model(result, sweep_files.model_path(save_dir, cell.run_id))
            if cache_dir is not None:
                key = head_key(cell.config, cell.features_sha256)
                HeadCache(cache_dir).put(key, run_files(result), cell.config)
            record = summary.run_record({}, result.metrics)
            metrics = {k: record[k] for k in METRIC_FIELDS}
            seconds = result.timing["wall_time_s"]
            outcome = Outcome(cell.index, "ok", metrics, seconds, "", loaded, worker)
        if rows_dir is not None:
            sweep_files.write_pending(rows_dir, result_row(cell, outcome))
        state["loaded"] = False  # one load per task, counted once
        outcomes[i] = outcome

    try:
        data, state["loaded"] = _head_data(cells[0].features_file, cells[0].features_sha256)
        fit_ensemble([c.config for c in cells], data, on_result=finished)
    except OSError:
        raise  # a full disk or a read-only folder stops the sweep
    except Exception as exc:  # a failed group is a result; the sweep goes on
        error = f"{type(exc).__name__}: {exc}"
        seconds = (time.perf_counter() - start) / len(cells)
        for i, c in enumerate(cells):
            if i not in outcomes:
                outcomes[i] = Outcome(c.index, "failed", {}, seconds, error, False, worker)
    return [outcomes[i] for i in range(len(cells))]


# --------------------------------------------------------------------------- the sweep


@dataclass
class SweepResult:
    """What :func:`sweep` did."""

    out_dir: Path
    cells: list[Cell]
    rows: list[dict[str, str]]  # results.csv rows of this grid, in grid order
    ran: int  # runs executed now
    skipped: int  # runs already in results.csv
    failed: list[tuple[dict[str, Any], str]]  # (settings, error) of the failed runs
    loads: int  # feature-file loads by the workers (one per worker process)
    workers: int  # distinct worker processes that ran something
    seconds: float


@contextlib.contextmanager
def _runner(
    jobs: int, scheduler: str | None, dask_workers: int | None
) -> Iterator[tuple[Any, int, str]]:
    """(joblib.Parallel, how many tasks run at once, description) for the chosen backend."""
    from joblib import Parallel, cpu_count, parallel_config

    if scheduler is None and dask_workers is None:
        where = "this process" if jobs == 1 else f"{jobs} local processes (loky)"
        parallel = Parallel(n_jobs=jobs, return_as="generator_unordered")
        yield parallel, cpu_count() if jobs == -1 else jobs, where
        return
    with (
        cluster.connect(scheduler, dask_workers) as client,
        parallel_config(backend="dask", client=client),
    ):
        threads = cluster.total_threads(client)
        where = f"Dask at {client.scheduler.address} ({threads} threads)"
        yield Parallel(n_jobs=-1, return_as="generator_unordered"), threads, where


class _Results:
    """``results.csv`` while a sweep runs: this grid's rows in grid order, then earlier ones."""

    def __init__(self, path: Path, grid: Mapping[str, Sequence[Any]], cells: Sequence[Cell]):
        self.path, self.header, self.cells = path, columns(grid), list(cells)
        self.rows_by_id = read_results(path)
        pending = sweep_files.read_pending(path.parent)  # rows of a sweep that was killed
        self.rows_by_id |= {r["run_id"]: r for r in pending}
        self.fresh = {r["run_id"] for r in pending}  # rows not yet in results.csv
        if pending:
            log.info("found %d finished runs not yet in %s", len(pending), path)
        grid_ids = {c.run_id for c in cells}
        self.earlier = [r for i, r in self.rows_by_id.items() if i not in grid_ids]
        self._last_write = time.perf_counter()

    def done(self) -> set[str]:
        return {i for i, r in self.rows_by_id.items() if r.get("status") == "ok"}

    def record(self, cell: Cell, outcome: Outcome) -> None:
        """Keep a finished run; rewrite the file at most every ``WRITE_INTERVAL_S`` seconds."""
        self.rows_by_id[cell.run_id] = result_row(cell, outcome)
        self.fresh.add(cell.run_id)
        if time.perf_counter() - self._last_write >= WRITE_INTERVAL_S:
            self.write()

    def write(self) -> None:
        rows = [self.rows_by_id[c.run_id] for c in self.cells if c.run_id in self.rows_by_id]
        write_results(self.path, self.header, rows + self.earlier)
        sweep_files.remove_pending(self.path.parent, self.fresh)
        self.fresh = set()
        self._last_write = time.perf_counter()


def _execute(
    todo: Sequence[Cell],
    results: _Results,
    jobs: int,
    scheduler: str | None,
    dask_workers: int | None,
    save_dir: str | None,
    cache_dir: str | None = None,
) -> tuple[int, set[str]]:
    """Run ``todo`` as stacks on the chosen backend; return (feature-file loads, workers)."""
    from joblib import delayed  # joblib: only when there is something to run

    loads, workers, finished = 0, set(), 0
    by_index = {c.index: c for c in todo}
    # rows are kept where workers reach the folder; a remote cluster's come back with its tasks
    local = scheduler is None or save_dir is not None
    rows_dir = str(results.path.parent.resolve()) if local else None
    try:
        with _runner(jobs, scheduler, dask_workers) as (parallel, parts, where):
            chunks = groups(todo, parts)
            log.info("running %d runs as %d stacks on %s", len(todo), len(chunks), where)
            tasks = (delayed(run_group)(chunk, save_dir, rows_dir, cache_dir) for chunk in chunks)
            with progress(len(todo), "sweep", unit="run") as bar:
                for outcome in (o for outcomes in parallel(tasks) for o in outcomes):
                    cell = by_index[outcome.index]
                    results.record(cell, outcome)
                    loads += outcome.loaded
                    workers.add(outcome.worker)
                    finished += 1
                    if outcome.status != "ok":
                        log.error("run %s failed: %s", _describe(cell), outcome.error)
                    bar.update(1)
        results.write()
    except (PipelineError, KeyboardInterrupt):
        results.write()
        raise
    except OSError as exc:  # a full disk, a read-only folder: in this process or a worker
        raise SweepError(
            f"the sweep stopped: {describe_os_error(exc, advice=False)}. {_kept(results, todo)}"
        ) from exc
    except Exception as exc:  # a worker died, the cluster went away, ...
        raise ClusterError(
            f"the sweep stopped after {finished} of {len(todo)} runs "
            f"({type(exc).__name__}: {exc}). {_kept(results, todo)}"
        ) from exc
    return loads, workers


def _kept(results: _Results, todo: Sequence[Cell]) -> str:
    """What a stopped sweep kept, as it is on disk, and what to do."""
    try:
        results.write()
        where = f"{results.path}"
    except OSError as exc:
        where = f"{results.path.parent / sweep_files.ROWS_DIR} ({results.path}: {exc.strerror})"
    try:
        on_disk = read_results(results.path) if results.path.is_file() else {}
        pending = {p.stem for p in (results.path.parent / sweep_files.ROWS_DIR).glob("*.json")}
    except OSError:
        on_disk, pending = {}, set()
    kept = sum(c.run_id in on_disk or c.run_id in pending for c in todo)
    return (
        f"{kept} of its {len(todo)} runs to do are recorded in {where}; free some space if "
        "the disk is full (or choose a writable --out), then run the same command again to "
        "do the rest"
    )


def sweep(
    params: Params,
    grid: Mapping[str, Sequence[Any]],
    *,
    out_dir: str | Path = DEFAULT_OUT,
    jobs: int = 1,
    scheduler: str | None = None,
    dask_workers: int | None = None,
    force: bool = False,
    save_models: bool = False,
    cache_dir: str | Path | None = None,
) -> SweepResult:
    """Run every combination of ``grid`` on ``params``; failed runs are recorded, not raised.

    Args:
        grid: ``{"train.key": [values]}``, tied keys as ``{"train.a,train.b": [(a1, b1), ...]}``
            (:func:`parse_grid`); combinations that differ only in keys their head kind does
            not read are one run (:func:`pipeline.training.grid.expand`).
        jobs: local processes (1: in this process; -1: one per CPU).
        scheduler: run on this Dask cluster (``tcp://HOST:PORT``) instead.
        dask_workers: run on a new local Dask cluster of this many workers instead.
        cache_dir: a head cache (:mod:`pipeline.training.cache`) to reuse and fill.

    Raises:
        ConfigError: a bad grid. FeatureStoreError: a bad features file.
        ClusterError: the cluster cannot be reached or a worker died.
        SweepError: a model or results.csv could not be written.
        FolderBusyError: another sweep holds the lock of ``out_dir``.
    """
    start = time.perf_counter()
    cells = expand(params, grid)
    out = Path(out_dir)
    with folders.locked(out, "sweep"):
        return _sweep(
            grid, cells, out, start, jobs, scheduler, dask_workers, force, save_models, cache_dir
        )


def _sweep(grid, cells, out, start, jobs, scheduler, dask_workers, force, save_models, cache_dir):
    results = _Results(out / "results.csv", grid, cells)
    sweep_files.remove_orphans(out, results.done())
    done = set() if force else results.done()
    if save_models:
        missing = sweep_files.missing_models(out, done & {c.run_id for c in cells})
        if missing:
            log.info("%d finished runs have no model.pt: they run again", len(missing))
        done -= missing
    todo = [c for c in cells if c.run_id not in done]
    if cache_dir is not None:
        cache_dir = str(Path(cache_dir).resolve())
        todo = _reuse(todo, results, HeadCache(cache_dir), out if save_models else None)
    _log_plan(grid, cells, todo, results, out)
    loads, workers = 0, set()
    if todo:
        save_dir = str(out.resolve()) if save_models else None
        loads, workers = _execute(todo, results, jobs, scheduler, dask_workers, save_dir, cache_dir)
    else:
        results.write()
    sweep_files.remove_rows_dir(out)
    rows_by_id = results.rows_by_id
    rows = [rows_by_id[c.run_id] for c in cells]
    failed = [
        (c.settings, r["error"]) for c, r in zip(cells, rows, strict=True) if r["status"] != "ok"
    ]
    try:
        write_summary(grid, cells, rows_by_id, out, failed)
    except OSError as exc:
        raise SweepError(
            f"the sweep's runs are all recorded in {results.path}, but the summary could not "
            f"be written: {describe_os_error(exc)} (no run is trained again)"
        ) from exc
    seconds = time.perf_counter() - start
    log.info(
        "sweep: %d runs done, %d skipped, %d failed in %.1f s; feature file loaded %d times by "
        "%d worker processes; wrote %s and %s",
        len(todo),
        len(cells) - len(todo),
        len(failed),
        seconds,
        loads,
        len(workers),
        results.path,
        out / "summary.md",
    )
    return SweepResult(
        out, cells, rows, len(todo), len(cells) - len(todo), failed, loads, len(workers), seconds
    )


def _reuse(todo: Sequence[Cell], results: _Results, cache: HeadCache, save: Path | None):
    """Record the runs of ``todo`` that ``cache`` holds; return the others."""
    left = []
    for cell in todo:
        blobs = cache.get(head_key(cell.config, cell.features_sha256))
        if blobs is None:
            left.append(cell)
            continue
        metrics = json.loads(blobs["metrics.json"])
        record = summary.run_record({}, metrics)
        seconds = metrics["timing"]["wall_time_s"]
        outcome = Outcome(cell.index, "ok", {k: record[k] for k in METRIC_FIELDS}, seconds)
        if save is not None:
            from pipeline.training.outputs import rebased_files  # torch: only to write a model

            meta = read_meta(cell.features_file)
            run = rebased_files(blobs, cell.config, cell.features_file, cell.features_sha256, meta)
            files.write_bytes(sweep_files.model_path(save, cell.run_id), run["model.pt"])
        sweep_files.write_pending(results.path.parent, result_row(cell, outcome))
        results.record(cell, outcome)
    if len(left) < len(todo):
        log.info("%d of %d runs from the head cache %s", len(todo) - len(left), len(todo),
                 cache.root)  # fmt: skip
    return left


def _log_plan(grid, cells: Sequence[Cell], todo: Sequence[Cell], results: _Results, out) -> None:
    for path in sorted({c.config.features for c in cells if c.random_init}):
        log.warning("%s: %s", path, RANDOM_INIT_WARNING)
    combinations = math.prod(len(v) for v in grid.values())
    if combinations > len(cells):
        log.info(
            "%d of the grid's %d combinations differ from another only in keys their head does "
            "not read (train.circuit for a classical head, ...): one run each",
            combinations - len(cells),
            combinations,
        )
    log.info(
        "sweep of %d runs (%s) into %s: %d already in results.csv%s, %d to run",
        len(cells),
        " x ".join(f"{k} {len(v)}" for k, v in grid.items()),
        out,
        len(cells) - len(todo),
        " (rerun: --force)" if len(todo) < len(cells) else "",
        len(todo),
    )
    if results.earlier:
        log.info("results.csv keeps %d rows of runs outside this grid", len(results.earlier))


def _describe(cell: Cell) -> str:
    return ", ".join(f"{k}={value_text(v)}" for k, v in cell.settings.items())
