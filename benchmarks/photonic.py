"""Benchmark the paper's QC and QQ transfer through the pipeline's own commands (not a test).

    python benchmarks/photonic.py [--pretrained ../shared/data/paper-pretrained]
        [--seeds 10] [--repeats 3] [--steps 300] [--skip-sweeps] [--skip-orders]

Everything runs on the presets ``params-qc.yaml`` and ``params-qq.yaml`` with
``qc.pretrained``/``qq.pretrained`` pointed at ``--pretrained`` (never downloaded) and every
output in a temporary folder.

1. ``python -m pipeline.datasets qc|qq --force``: wall seconds of the whole command (imports
   included), median of ``--repeats`` fresh processes; the stores are checked to come out
   byte-identical every time.
2. ``python -m pipeline.sweep --params params-qc.yaml --grid train.seed=0,...,9`` (and qq):
   wall seconds of the whole command with ``--jobs 1`` (in-process, torch's default threads),
   ``--jobs 1`` with ``OMP_NUM_THREADS=1``, and ``--jobs 2`` (one thread per worker); the
   mean ± sample std of the last val accuracy from its ``summary.json``, against the paper.
3. One QQ training step (batch 8, cross entropy, backward, the pipeline's Adam) of the ``cv``
   head, one torch thread, median milliseconds over ``--steps`` steps: the reference (the
   layers multiplied into the full circuit matrix, gate by gate, against
   :func:`pipeline.heads.photonic.cv_logits`), ``cv_logits`` with one member, and ``cv_logits`` with
   M = 10 stacked members (weights (10, 3, 6), one optimiser over all): the per-step cost of a
   stacked ensemble. Also the seconds per epoch that :func:`pipeline.training.loop.fit`
   itself reports for one head (``metrics.json`` timing).
4. Shuffled against stored order: per seed, :func:`pipeline.training.loop.fit` on the stores
   with ``train.shuffle`` false (the presets: the notebooks' batches in their order) and true
   (a permutation per epoch seeded by ``train.seed``); last val accuracy per seed and
   mean ± sample std, one torch thread.

Prints the tables and the load average at the start of each part (the machine is shared).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

from timing import run_module

REPO = Path(__file__).resolve().parents[1]
PAPER = {"qc": 0.8067, "qq": 0.8755}  # the notebooks' test accuracies
FILES = {"qc": "trained_params.npy", "qq": "circuit_A.npy"}


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def _overrides(block: str, pretrained: Path, work: Path) -> list[str]:
    """``--set`` values: the shared pretrained file, every output under ``work``."""
    store = work / f"{block}.h5"
    return [
        f"{block}.pretrained={pretrained / FILES[block]}",
        f"{block}.out={store}",
        f"train.features={store}",
        f"train.out_dir={work}/runs/{block}-seed{{train.seed}}",
    ]


def _command(args: list[str], *, threads: int | None = None) -> float:
    """Run ``python -m ARGS`` in this checkout; its wall seconds (exit on failure)."""
    env = {"DVC_NO_ANALYTICS": "1"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return run_module(args, env=env)[0]


def _set(block: str, pretrained: Path, work: Path) -> list[str]:
    out = ["--params", str(REPO / f"params-{block}.yaml")]
    for value in _overrides(block, pretrained, work):
        out += ["--set", value]
    return out


def time_datasets(pretrained: Path, work: Path, repeats: int) -> None:
    print(f"\n1. python -m pipeline.datasets qc|qq --force (median of {repeats}; load {_load()})")
    print(f"{'set':4} {'rows':>6} {'wall s':>7}  byte-identical")
    for block, rows in (("qc", 14000), ("qq", 8000)):
        walls, digests = [], set()
        for _ in range(repeats):
            walls.append(
                _command(["pipeline.datasets", block, *_set(block, pretrained, work), "--force"])
            )
            digests.add(hashlib.sha256((work / f"{block}.h5").read_bytes()).hexdigest())
        print(f"{block:4} {rows:6d} {statistics.median(walls):7.2f}  {len(digests) == 1}")


def time_sweeps(pretrained: Path, work: Path, seeds: int) -> None:
    grid = "train.seed=" + ",".join(str(s) for s in range(seeds))
    modes = (
        ("--jobs 1", ["--jobs", "1"], None),
        ("--jobs 1, OMP_NUM_THREADS=1", ["--jobs", "1"], 1),
        ("--jobs 2", ["--jobs", "2"], None),
    )
    print(f"\n2. python -m pipeline.sweep --grid {grid} (stores exist; load {_load()})")
    print(f"{'set':4} {'mode':28} {'wall s':>7}  last val acc (mean ± std)  paper")
    for block in ("qc", "qq"):
        for name, extra, threads in modes:
            out = work / f"sweep-{block}-{len(extra)}-{threads}"
            args = ["pipeline.sweep", *_set(block, pretrained, work), "--grid", grid]
            wall = _command([*args, "--out", str(out), "--force", *extra], threads=threads)
            row = json.loads((out / "summary.json").read_text())[0]["last_val_acc"]
            acc = f"{row['mean']:.4f} ± {row['std']:.4f}"
            print(f"{block:4} {name:28} {wall:7.2f}  {acc:25}  {PAPER[block]}")


def time_steps(work: Path, steps: int) -> None:
    import torch
    import torch.nn.functional as F

    from pipeline.common.config import load_params
    from pipeline.heads import photonic
    from pipeline.simulators import fock_layers
    from pipeline.training.data import load_data
    from pipeline.training.ensemble import fit_ensemble
    from pipeline.training.loop import fit

    data = load_data(work / "qq.h5")
    kets = torch.as_tensor(data.train.features)  # (4000, 15) complex128
    labels = torch.as_tensor(data.train.labels)

    def reference(weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        p0 = (x @ fock_layers.one_mode_layers(weights, x.shape[-1])[0]).abs().square()  # (B,)
        return torch.stack([torch.log(1 - p0 + photonic.EPS), torch.log(p0 + photonic.EPS)], dim=-1)

    def per_step(logits, members: int) -> float:
        torch.manual_seed(0)
        shape = (members, 3, 6) if members > 1 else (3, 6)
        weights = (photonic.INIT_STD * torch.randn(shape, dtype=torch.float64)).requires_grad_()
        optimizer = torch.optim.Adam([weights], lr=0.01)  # the step's cost, not its numbers
        times = []
        for step in range(steps):
            rows = slice(8 * (step % 500), 8 * (step % 500) + 8)
            start = time.perf_counter()
            out = logits(weights, kets[rows]).reshape(-1, 2)  # (M B, 2)
            loss = F.cross_entropy(out, labels[rows].repeat(members), reduction="sum") / 8
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times[10:])

    torch.set_num_threads(1)
    print(f"\n3. one QQ training step, batch 8, one thread (median of {steps}; load {_load()})")
    print(f"{'implementation':52} {'ms/step':>8}")
    print(
        f"{'reference: full circuit matrix, gate by gate, M = 1':52} {per_step(reference, 1):8.2f}"
    )
    print(f"{'cv_logits, M = 1':52} {per_step(photonic.cv_logits, 1):8.2f}")
    stacked = per_step(photonic.cv_logits, 10)
    print(f"{'cv_logits, M = 10 stacked members (all 10 heads)':52} {stacked:8.2f}")
    params = load_params(REPO / "params-qq.yaml", [f"train.features={work / 'qq.h5'}"])
    result = fit(params.train, data, on_epoch=lambda row: None)
    seconds = result.timing["train_seconds_per_epoch"]
    print(f"fit(params-qq.yaml): {seconds:.2f} s per 500-step epoch ({2 * seconds:.2f} ms/step)")
    cfgs = [dataclasses.replace(params.train, seed=s) for s in range(10)]
    start = time.perf_counter()
    fit_ensemble(cfgs, data)
    seconds = time.perf_counter() - start
    print(f"fit_ensemble, 10 seeds of params-qq.yaml as one stack: {seconds:.2f} s "
          f"({2 * seconds:.2f} ms per step of all ten)")  # fmt: skip


def compare_orders(work: Path, seeds: int) -> None:
    import torch

    from pipeline.common.config import load_params
    from pipeline.training.data import load_data
    from pipeline.training.loop import fit

    torch.set_num_threads(1)
    print(f"\n4. stored order (the presets) against shuffled, fit per seed (load {_load()})")
    for block in ("qc", "qq"):
        params = load_params(REPO / f"params-{block}.yaml")
        data = load_data(work / f"{block}.h5")
        accs: dict[str, list[float]] = {"stored": [], "shuffled": []}
        for seed in range(seeds):
            for order, shuffle in (("stored", False), ("shuffled", True)):
                cfg = dataclasses.replace(params.train, seed=seed, shuffle=shuffle)
                result = fit(cfg, data, on_epoch=lambda row: None)
                accs[order].append(result.metrics["last"]["val_acc"])
        print(f"{block}: seed  " + "  ".join(f"{s:>4}" for s in range(seeds)))
        for order, values in accs.items():
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            cells = "  ".join(f"{v:.2f}"[1:] for v in values)
            print(f"  {order:8}  {cells}   {statistics.mean(values):.4f} ± {std:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pretrained", type=Path, default=REPO.parent / "shared/data/paper-pretrained"
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--skip-sweeps", action="store_true")
    parser.add_argument("--skip-orders", action="store_true")
    args = parser.parse_args()
    pretrained = args.pretrained.resolve()
    with tempfile.TemporaryDirectory(prefix="photonic-bench-") as tmp:
        work = Path(tmp)
        time_datasets(pretrained, work, args.repeats)
        if not args.skip_sweeps:
            time_sweeps(pretrained, work, args.seeds)
        time_steps(work, args.steps)
        if not args.skip_orders:
            compare_orders(work, args.seeds)


if __name__ == "__main__":
    main()
