"""Summarise the DVC ``compare`` stage: mean ± std of best and last val accuracy per head.

    python -m pipeline.compare [--params params.yaml]

The ``compare`` stage of ``dvc.yaml`` trains every head in ``compare.heads`` with every seed
in ``compare.seeds`` (a DVC ``matrix``), each into its own folder under
``compare.dir/runs/``. This step reads those runs (their settings from each ``model.pt``,
their numbers from each ``metrics.json``), keeps exactly the heads x seeds asked for, and
writes ``compare.dir/summary.md`` and ``summary.json`` through :mod:`pipeline.summary`: the
quantum-against-classical table of the paper, over seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline import cli, summary
from pipeline.config import CompareConfig, add_params_arguments, load_params
from pipeline.errors import PipelineError

log = logging.getLogger("pipeline")

PAPER_NOTE = (
    "Paper (Mari et al. 2020, ants/bees, single runs, best val accuracy): quantum 0.9673, "
    "ResNet18 + linear layer 0.9542. `best` selects the epoch on the validation split, as the "
    "paper and the demo do; `last` is the final epoch."
)

RANDOM_INIT_NOTE = (
    "These runs used features of a RANDOM-INIT backbone (extract.weights: none): the "
    "accuracies mean nothing."
)


def collect_runs(cfg: CompareConfig) -> tuple[list[dict[str, Any]], bool]:
    """One :func:`summary.run_record` per (head, seed) asked for, read from ``cfg.dir/runs``.

    Returns:
        The records, and whether any run was trained on random-init (``weights: none``)
        features.

    Raises:
        PipelineError: a requested (head, seed) has no finished run.
    """
    from pipeline.heads import load_checkpoint

    found: dict[tuple[str, int], dict[str, Any]] = {}
    random_init = False
    runs_dir = Path(cfg.dir) / "runs"
    for model_path in sorted(runs_dir.glob("*/model.pt")):
        metrics_path = model_path.with_name("metrics.json")
        if not metrics_path.is_file():
            continue
        _, ckpt = load_checkpoint(model_path)
        key = (ckpt["config"]["head"], ckpt["config"]["seed"])
        random_init |= ckpt["features"]["extra"].get("weights_kind") == "none"
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
        note = f"**{RANDOM_INIT_NOTE}**\n\n{note}"
        log.warning("%s", RANDOM_INIT_NOTE)
    md, js = summary.write(
        rows,
        cfg.dir,
        title=f"Heads on the same features, mean ± std over seeds {list(cfg.seeds)}",
        note=note,
    )
    log.info("wrote %s and %s\n%s", md, js, summary.to_markdown(rows))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.compare",
        description="Summarise the compare runs: mean ± std of val accuracy per head.",
    )
    add_params_arguments(parser)
    args = parser.parse_args(argv)
    cli.setup_logging()
    return cli.run(lambda: compare_summary(load_params(args.params, args.overrides).compare))


if __name__ == "__main__":
    sys.exit(main())
