"""Benchmark circuits side by side (not a test; run by hand, on a quiet machine).

    python benchmarks/circuits.py [--features F.h5] [--epochs 30] [--members 100]

On a feature store the size of the paper's (244 train / 153 val rows of 512 features; a
synthetic one unless --features is given: speed does not depend on the values), at the
paper's settings (batch 4, Adam 4e-4, StepLR(10, 0.1)), one torch thread, for each circuit:

1. one ``python -m pipeline.train_head`` in a fresh process (wall seconds, and the
   training seconds per epoch that ``metrics.json`` reports), its circuit compiled by an
   earlier run (``--cold``: compiled in that process, which then imports PennyLane);
2. a stack of --members heads (seeds 0, 1, …) trained as one by
   :func:`pipeline.training.ensemble.fit_ensemble`, in this process (wall seconds; PennyLane's
   import and the circuit's compilation, once per process, are left out: one warm-up run).

The circuits: the built-in ``paper``; the same circuit as a file (``circuits/paper.py``);
``strongly_entangling`` with the paper's embedding; and ``strongly_entangling`` and ``paper``
with ``iqp`` and re-uploading; all at 4 qubits and depth 6. The paper as a file must end
with the built-in's metrics (checked here to 1e-7).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from timing import REPO, run_module

CIRCUITS = {
    "paper (built-in)": [],
    "paper (circuits/paper.py)": ["train.circuit=circuits/paper.py:paper"],
    "strongly_entangling": ["train.circuit=strongly_entangling"],
    "strongly_entangling + iqp + reupload": [
        "train.circuit=strongly_entangling", "train.embedding=iqp", "train.reupload=true"],
    "paper + iqp + reupload": ["train.embedding=iqp", "train.reupload=true"],
}  # fmt: skip


def _store(path: Path) -> Path:
    import numpy as np

    from pipeline.store import hdf5

    rng = np.random.default_rng(0)

    def split(name: str, n: int) -> hdf5.SplitArrays:
        labels = np.arange(n) % 2
        feats = rng.standard_normal((n, 512)).astype(np.float32) + labels[:, None]
        return hdf5.SplitArrays(feats, labels, [f"{name}/{i}.jpg" for i in range(n)])

    hdf5.write(path, {"train": split("train", 244), "val": split("val", 153)},
               class_names=["ants", "bees"], source="synthetic", backbone="none",
               weights="none", weights_sha256="", transform="none",
               dataset_fingerprint="benchmark")  # fmt: skip
    return path


def single(
    features: Path, sets: list[str], epochs: int, out: Path, cold: bool
) -> tuple[float, dict]:
    """One train_head process; ``cold``: with a compiled-circuit cache of its own, empty."""
    env = {"DVC_ROOT": str(out.parent / f"{out.name}-root")} if cold else None
    args = ["pipeline.train_head", "--set", f"train.features={features}", "--set",
            f"train.out_dir={out}", "--set", f"train.epochs={epochs}"]  # fmt: skip
    for s in sets:
        args += ["--set", s]
    wall, _ = run_module(args, cwd=REPO, env=env)
    return wall, json.loads((out / "metrics.json").read_text())


def stack(features: Path, sets: list[str], epochs: int, members: int) -> float:
    import torch

    from pipeline.common.config import TrainConfig, parse_assignment
    from pipeline.training.data import load_data
    from pipeline.training.ensemble import fit_ensemble

    torch.set_num_threads(1)
    extra = {}
    for s in sets:
        _, key, value = parse_assignment(s)
        extra[key] = value
    cfgs = [TrainConfig(seed=m, epochs=epochs, **extra) for m in range(members)]
    data = load_data(features)
    fit_ensemble(cfgs[:1], data)  # imports and compiles once, outside the timing
    start = time.perf_counter()
    fit_ensemble(cfgs, data)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--only", nargs="*", help="circuits to run (default: all)")
    parser.add_argument("--cold", action="store_true",
                        help="compile each circuit in its train_head process (default: compiled "
                        "before, in .cache/circuits, as after a first run)")  # fmt: skip
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        features = args.features or _store(Path(tmp) / "bench.h5")
        print(f"features {features}; {args.epochs} epochs; stacks of {args.members}")
        print("| circuit | train_head s | s/epoch | best val acc | "
              f"{args.members}-member stack s |")  # fmt: skip
        print("| --- | --- | --- | --- | --- |")
        metrics = {}
        for name, sets in CIRCUITS.items():
            if args.only and name not in args.only:
                continue
            out = Path(tmp) / f"run{len(metrics)}"
            if not args.cold:  # a first run compiles the circuit into .cache/circuits
                single(features, sets, 1, Path(tmp) / "warm-up", cold=False)
            wall, m = single(features, sets, args.epochs, out, args.cold)
            metrics[name] = m
            seconds = stack(features, sets, args.epochs, args.members)
            per_epoch = m["timing"]["train_seconds_per_epoch"]
            print(f"| {name} | {wall:.1f} | {per_epoch:.3f} | {m['best']['val_acc']:.4f} | "
                  f"{seconds:.1f} |", flush=True)  # fmt: skip
        if {"paper (built-in)", "paper (circuits/paper.py)"} - set(metrics):
            return
        a, b = metrics["paper (built-in)"], metrics["paper (circuits/paper.py)"]
        for part in ("best", "last"):
            for key in ("val_loss", "val_acc", "train_loss", "train_acc"):
                assert abs(a[part][key] - b[part][key]) <= 1e-7, (part, key)
        print("paper as a file ends with the built-in's metrics to 1e-7")


if __name__ == "__main__":
    main()
