"""The compare table: mean ± std of best and last val accuracy per head over seeds.

:func:`compare` trains every head in ``compare.heads`` with every seed in ``compare.seeds`` as
stacks (the same numbers as one ``train_head`` run each), or copies it from the head cache
(:mod:`pipeline.training.cache`), into ``compare.dir/runs/<head>-seed<seed>/``;
:func:`compare_summary` writes ``summary.md`` and ``summary.json`` from those runs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.common import folders
from pipeline.common.config import CompareConfig, Params
from pipeline.common.errors import PipelineError
from pipeline.heads.checkpoint import read_checkpoint
from pipeline.store.hdf5 import RANDOM_INIT_WARNING, is_random_init
from pipeline.training import summary
from pipeline.training.cache import HeadCache, head_key
from pipeline.training.data import features_for, load_data
from pipeline.training.ensemble import fit_ensemble
from pipeline.training.loop import MemberFailure
from pipeline.training.outputs import rebased_files, run_files, write_run

log = logging.getLogger("pipeline")

PAPER_NOTE = (
    "Paper (Mari et al. 2020, ants/bees, single runs, best val accuracy): quantum 0.9673, "
    "ResNet18 + linear layer 0.9542. `best` selects the epoch on the validation split, as the "
    "paper and the demo do; `last` is the final epoch."
)


def run_dir(cfg: CompareConfig, head: str, seed: int) -> Path:
    """The folder of one compare run."""
    return Path(cfg.dir) / "runs" / f"{head}-seed{seed}"


def compare(params: Params, *, cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Train ``compare.heads`` x ``compare.seeds``, write each run and the summary; return its rows.

    Each run is written as soon as its stack has trained, under the lock of ``compare.dir``;
    heads found in the head cache ``cache_dir`` (:mod:`pipeline.training.cache`) are copied.

    Raises:
        PipelineError: a bad feature store, or runs that diverged (the others are written).
        FolderBusyError: another compare is writing ``compare.dir``.
    """
    cfg = params.compare
    data = load_data(features_for(params))
    cfgs = [replace(params.train, head=h, seed=s) for h in cfg.heads for s in cfg.seeds]
    cache = HeadCache(cache_dir) if cache_dir is not None else None
    keys = [head_key(c, data.sha256) for c in cfgs]
    found = {i: blobs for i, k in enumerate(keys) if cache and (blobs := cache.get(k))}
    todo = [i for i in range(len(cfgs)) if i not in found]
    log.info("training %d heads (%s x seeds %s) on %s%s", len(todo), ", ".join(cfg.heads),
             list(cfg.seeds), data.path, f"; {len(found)} more from the head cache "
             f"{cache.root}" if found else "")  # fmt: skip
    failed, runs = [], {}

    def write(i: int, run: dict[str, bytes]) -> None:
        train = cfgs[i]
        write_run(run, run_dir(cfg, train.head, train.seed), lock=False)
        settings = {"train.head": train.head, "train.seed": train.seed}
        runs[i] = summary.run_record(settings, json.loads(run["metrics.json"]))

    def finished(j: int, result: Any) -> None:
        i, train = todo[j], cfgs[todo[j]]
        if isinstance(result, MemberFailure):
            failed.append(f"{train.head}/seed {train.seed}: {result.error}")
            return
        run = run_files(result)
        if cache is not None:
            cache.put(keys[i], run, train)
        write(i, run)

    with folders.locked(cfg.dir, "compare"):
        for i, blobs in found.items():
            write(i, rebased_files(blobs, cfgs[i], data.path, data.sha256, data.meta))
        if todo:
            fit_ensemble([cfgs[i] for i in todo], data, on_result=finished)
        if failed:
            raise PipelineError(f"{len(failed)} compare runs failed: {'; '.join(failed)}")
        records = [runs[i] for i in sorted(runs)]
        return _write_summary(cfg, records, data.meta.random_init)  # from memory


def collect_runs(cfg: CompareConfig) -> tuple[list[dict[str, Any]], bool]:
    """One :func:`summary.run_record` per (head, seed) asked for, read from ``cfg.dir/runs``.

    Also returns whether any run used random-init (``weights: none``) features.

    Raises:
        PipelineError: a requested (head, seed) has no finished run.
    """
    found: dict[tuple[str, int], dict[str, Any]] = {}
    random_init = False
    runs_dir = Path(cfg.dir) / "runs"
    for model_path in sorted(runs_dir.glob("*/model.pt")):
        metrics_path = model_path.with_name("metrics.json")
        if not metrics_path.is_file():
            continue
        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise PipelineError(f"{metrics_path}: malformed JSON ({exc})") from exc
        ckpt = read_checkpoint(model_path)
        folders.check_pair(model_path, metrics)
        key = (ckpt["config"]["head"], ckpt["config"]["seed"])
        random_init |= is_random_init(ckpt["features"])
        found[key] = summary.run_record({"train.head": key[0], "train.seed": key[1]}, metrics)
    wanted = [(h, s) for h in cfg.heads for s in cfg.seeds]
    missing = [f"{h}/seed {s}" for h, s in wanted if (h, s) not in found]
    if missing:
        raise PipelineError(
            f"no finished run under {runs_dir} for {', '.join(missing)}; expected one per "
            "compare.heads x compare.seeds (run `python -m pipeline.compare`)"
        )
    return [found[k] for k in wanted], random_init


def compare_summary(cfg: CompareConfig) -> list[dict[str, Any]]:
    """Write ``summary.md`` and ``summary.json`` from ``cfg.dir/runs``; return the rows."""
    with folders.locked(cfg.dir, "compare"):
        return _write_summary(cfg, *collect_runs(cfg))


def _write_summary(
    cfg: CompareConfig, runs: list[dict[str, Any]], random_init: bool
) -> list[dict[str, Any]]:
    rows = summary.summarize(runs)
    if random_init:
        log.warning("%s", RANDOM_INIT_WARNING)
    md, js = summary.write(
        rows,
        cfg.dir,
        title=f"Heads on the same features, mean ± std over seeds {list(cfg.seeds)}",
        note=PAPER_NOTE,
        warning=RANDOM_INIT_WARNING if random_init else "",
    )
    log.info("wrote %s and %s\n%s", md, js, summary.to_markdown(rows))
    return rows
