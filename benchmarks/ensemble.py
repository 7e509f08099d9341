"""Benchmark many heads in one pass (not a test; run by hand, on a quiet machine).

    python benchmarks/ensemble.py [--features F.h5 | --data ../shared/data/hymenoptera_data]
        [--sizes 1 10 100 1000] [--repeats 3] [--skip-commands]

On the real set's features (extracted first with a random-init backbone unless --features is
given: speed does not depend on the weights' values), at the paper's settings (30 epochs,
batch 4, Adam 4e-4, StepLR(10, 0.1)), one torch thread:

1. heads per second of :func:`pipeline.training.ensemble.fit_ensemble` against the number of
   quantum heads M in one stack, and against M sequential :func:`pipeline.training.loop.fit`
   runs (median of --repeats, in this process);
2. whole commands, each in a fresh process: one ``python -m pipeline.train_head``; 100 quantum
   heads as ``python -m pipeline.sweep --grid train.seed=0,...,99`` (wall time and peak
   resident memory, VmHWM); the 40-run spiral table of docs/paper.md; and ``train_head`` while
   another process keeps one core busy, against its quiet wall time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
from pathlib import Path

from timing import median_seconds, peak_mib, run_module

REPO = Path(__file__).resolve().parents[1]


def _command(args: list[str], cwd: Path) -> tuple[float, float]:
    """Run ``python -m ARGS`` in ``cwd``, a fresh process: (wall seconds, peak RSS MiB)."""
    wall, stderr = run_module(args, peak=True, cwd=cwd)
    return wall, peak_mib(stderr)[0]


def stacks(features: Path, sizes: list[int], repeats: int) -> None:
    """Heads per second against the stack size, and against sequential single runs."""
    import torch

    from pipeline.common.config import TrainConfig
    from pipeline.training.data import load_data
    from pipeline.training.ensemble import fit_ensemble
    from pipeline.training.loop import fit

    torch.set_num_threads(1)
    data = load_data(features)
    quiet = {"on_epoch": lambda row: None}
    single = median_seconds(lambda: fit(TrainConfig(seed=0), data, **quiet), repeats)
    print(f"sequential train_head fit, one quantum head: {single:.2f} s = {1 / single:.2f} heads/s")
    print("| quantum heads in one stack (M) | seconds | heads/s | vs sequential |")
    print("| --- | --- | --- | --- |")
    for m in sizes:
        cfgs = [TrainConfig(seed=s) for s in range(m)]
        seconds = median_seconds(lambda cfgs=cfgs: fit_ensemble(cfgs, data), repeats)
        print(f"| {m} | {seconds:.2f} | {m / seconds:.1f} | {single * m / seconds:.1f}x |")


def commands(features: Path, workdir: Path) -> None:
    """Whole commands in fresh processes: wall time and peak memory."""
    sets = ["--set", f"extract.out={features}", "--set", "extract.weights=none"]
    one, one_rss = _command(["pipeline.train_head", *sets, "--set", "train.out_dir=one"], workdir)
    print(
        f"python -m pipeline.train_head (30 epochs): {one:.2f} s wall, peak RSS {one_rss:.0f} MiB"
    )
    seeds = ",".join(map(str, range(100)))
    hundred, rss = _command(
        ["pipeline.sweep", *sets, "--grid", f"train.seed={seeds}", "--out", "sweep100"], workdir
    )
    print(
        f"100 quantum heads, python -m pipeline.sweep --grid train.seed=0,...,99: {hundred:.2f} s "
        f"wall ({hundred / one:.2f}x one train_head process), peak RSS {rss:.0f} MiB"
    )
    spiral = [
        "pipeline.sweep", "--params", str(REPO / "params-spiral.yaml"), "--grid",
        "spiral.turns=1.52,2.0", "--grid", "train.head=classical,quantum", "--grid",
        "train.seed=0,1,2,3,4,5,6,7,8,9", "--out", "spiral-sweep",
    ]  # fmt: skip
    for turns in ("1.52", "2.0"):  # the two spiral stores, as the README makes them
        _command(["pipeline.datasets", "spiral", "--params", str(REPO / "params-spiral.yaml"),
                  "--set", f"spiral.turns={turns}"], workdir)  # fmt: skip
    _command(spiral, workdir)
    for jobs in ("1", "2"):
        wall, _ = _command([*spiral, "--jobs", jobs, "--force"], workdir)
        print(f"40-run spiral table (docs/paper.md, --jobs {jobs}): {wall:.2f} s wall")
    busy = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    busy.start()
    try:
        loaded, _ = _command(["pipeline.train_head", *sets, "--set", "train.out_dir=b"], workdir)
    finally:
        busy.terminate()
    print(f"train_head with one core kept busy: {loaded:.2f} s wall ({loaded / one:.2f}x quiet)")


def _spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, help="a feature store (default: extract one)")
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/hymenoptera_data"))
    parser.add_argument("--sizes", type=int, nargs="*", default=[1, 10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-commands", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "params.yaml").write_text((REPO / "params.yaml").read_text())
        features = args.features
        if features is None:
            features = workdir / "features.h5"
            _command(
                ["pipeline.extract", "--set", f"data.dir={args.data}", "--set",
                 "extract.weights=none", "--set", f"extract.out={features}"], workdir,
            )  # fmt: skip
        print(f"{os.cpu_count()} CPUs; features {features}")
        stacks(features.resolve(), args.sizes, args.repeats)
        if not args.skip_commands:
            commands(features.resolve(), workdir)


if __name__ == "__main__":
    main()
