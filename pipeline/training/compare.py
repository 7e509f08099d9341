"""The compare table: mean ± std of best and last val accuracy per head over seeds.

The ``compare`` stage of ``dvc.yaml`` trains every head in ``compare.heads`` with every seed
in ``compare.seeds``, each into its own folder under ``compare.dir/runs/``.
:func:`compare_summary` reads those runs (their settings from each ``model.pt``, their numbers
from each ``metrics.json``), keeps exactly the heads x seeds asked for, and writes
``compare.dir/summary.md`` and ``summary.json`` through :mod:`pipeline.training.summary`: the
quantum-against-classical table of the paper, over seeds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline.common.config import CompareConfig
from pipeline.common.errors import PipelineError
from pipeline.heads.checkpoint import read_checkpoint
from pipeline.store.hdf5 import RANDOM_INIT_WARNING, is_random_init
from pipeline.training import summary

log = logging.getLogger("pipeline")

PAPER_NOTE = (
    "Paper (Mari et al. 2020, ants/bees, single runs, best val accuracy): quantum 0.9673, "
    "ResNet18 + linear layer 0.9542. `best` selects the epoch on the validation split, as the "
    "paper and the demo do; `last` is the final epoch."
)


def collect_runs(cfg: CompareConfig) -> tuple[list[dict[str, Any]], bool]:
    """One :func:`summary.run_record` per (head, seed) asked for, read from ``cfg.dir/runs``.

    Returns:
        The records, and whether any run was trained on random-init (``weights: none``)
        features.

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
        ckpt = read_checkpoint(model_path)
        key = (ckpt["config"]["head"], ckpt["config"]["seed"])
        random_init |= is_random_init(ckpt["features"])
        metrics = json.loads(metrics_path.read_text())
        found[key] = summary.run_record({"train.head": key[0], "train.seed": key[1]}, metrics)
    wanted = [(h, s) for h in cfg.heads for s in cfg.seeds]
    missing = [f"{h}/seed {s}" for h, s in wanted if (h, s) not in found]
    if missing:
        raise PipelineError(
            f"no finished run under {runs_dir} for {', '.join(missing)}; expected one per "
            "compare.heads x compare.seeds (run `dvc repro compare`)"
        )
    return [found[k] for k in wanted], random_init


def compare_summary(cfg: CompareConfig) -> list[dict[str, Any]]:
    """Write ``summary.md`` and ``summary.json`` into ``cfg.dir``; return the rows."""
    runs, random_init = collect_runs(cfg)
    rows = summary.summarize(runs)
    note = PAPER_NOTE
    if random_init:
        note = f"**{RANDOM_INIT_WARNING}**\n\n{note}"
        log.warning("%s", RANDOM_INIT_WARNING)
    md, js = summary.write(
        rows,
        cfg.dir,
        title=f"Heads on the same features, mean ± std over seeds {list(cfg.seeds)}",
        note=note,
    )
    log.info("wrote %s and %s\n%s", md, js, summary.to_markdown(rows))
    return rows
