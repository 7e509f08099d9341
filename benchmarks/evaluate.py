"""Benchmark ``python -m pipeline.evaluate`` on a head trained on the real set (run by hand).

    python benchmarks/evaluate.py [--features FILE] [--data DIR] [--repeats 3] [--epochs 30]

Unless ``--features`` names an existing store, the real ants/bees set is extracted with
``extract.weights: none`` into a temporary folder (timing does not depend on the weight
values; the accuracies do, and mean nothing here). One quantum head is trained at the
paper's settings (4 qubits, depth 6). Then, on the default grid (shots [exact, 100,
1000, 10000] x depolarizing [0, 0.001, 0.01, 0.05], 153 val samples), it prints:

* the wall time and peak RSS of the whole ``python -m pipeline.evaluate`` process (imports,
  loading, scoring, writing the CSV, JSON and PNG), median of ``--repeats`` runs, and the sum
  of the per-setting ``seconds`` column it wrote;
* in this process: the scoring alone (:func:`pipeline.inference.evaluate.score_grid`) with
  ``backend: auto`` at 1 and 2 torch threads, median of ``--repeats``, and once with
  ``backend: default.mixed`` (PennyLane) for the same grid;
* ``import torch`` alone, for scale.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from timing import median_seconds, peak_mib, run_module

from pipeline.common.config import DataConfig, EvaluateConfig, ExtractConfig, Params, TrainConfig
from pipeline.inference.evaluate import load_head, load_val, score_grid
from pipeline.training.run import train_head

REPO = Path(__file__).resolve().parents[1]


def whole_process(run: Path) -> tuple[float, float, float]:
    """Wall seconds and peak RSS (MiB) of ``python -m pipeline.evaluate`` on ``run``, and the
    sum of the ``seconds`` column it wrote."""
    cmd = [
        "pipeline.evaluate",
        "--params",
        str(REPO / "params.yaml"),
        "--model",
        str(run / "model.pt"),
    ]
    wall, stderr = run_module(cmd, peak=True)
    peak = peak_mib(stderr)[0]
    with open(run / "robustness.csv", newline="") as fh:
        settings = sum(float(row["seconds"]) for row in csv.DictReader(fh))
    return wall, peak, settings


def scoring_seconds(run: Path, cfg: EvaluateConfig, repeats: int) -> float:
    """Median seconds of score_grid (the head's forward passes and the scores, no files)."""
    head = load_head(run / "model.pt")
    split = load_val(head)
    return median_seconds(lambda: score_grid(head, split, cfg), repeats)


def torch_import_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - start


def prepare(tmp: Path, features: str | None, data: str, epochs: int) -> Path:
    """A run folder with a quantum head trained on the real set's features."""
    store = Path(features) if features else tmp / "hymenoptera-resnet18.h5"
    if not store.exists():
        print(f"extracting {data} with extract.weights: none into {store} ...", flush=True)
        from pipeline.extraction.loop import extract_images  # lazily: only when extracting

        extract_images(DataConfig(dir=data), ExtractConfig(weights="none", out=str(store)))
    run = tmp / "run"
    train = TrainConfig(features=str(store), out_dir=str(run), epochs=epochs, device="cpu")
    print(f"training a quantum head ({epochs} epochs) ...", flush=True)
    train_head(Params(train=train))
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", help="an existing store of the real set (else extract)")
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/hymenoptera_data"))
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of the head")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = prepare(Path(tmp), args.features, args.data, args.epochs)
        cfg = EvaluateConfig()  # the default grid: 4 shot settings x 4 depolarizing levels
        runs = [whole_process(run) for _ in range(args.repeats)]
        wall = statistics.median(r[0] for r in runs)
        peak = statistics.median(r[1] for r in runs)
        settings = statistics.median(r[2] for r in runs)
        rows = [
            (f"python -m pipeline.evaluate, whole process (peak RSS {peak:.0f} MiB)", wall),
            ("  its seconds column, summed over the 16 settings", settings),
        ]
        for threads in (1, 2):
            seconds = scoring_seconds(run, replace(cfg, threads=threads), args.repeats)
            rows.append((f"score_grid, backend auto, {threads} torch thread(s)", seconds))
        mixed = scoring_seconds(run, replace(cfg, backend="default.mixed"), 1)
        rows.append(("score_grid, backend default.mixed (PennyLane), once", mixed))
        rows.append(("import torch alone", torch_import_seconds()))
        with open(run / "robustness.csv", newline="") as fh:
            n = {row["n"] for row in csv.DictReader(fh)}
    print(
        f"default grid: 16 settings on {', '.join(sorted(n))} val samples, 4 qubits, depth 6; "
        f"torch {torch.__version__}; median of {args.repeats}:"
    )
    for name, seconds in rows:
        print(f"  {name:<66} {seconds:8.3f} s")


if __name__ == "__main__":
    main()
