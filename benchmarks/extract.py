"""Benchmark stage one on the real data set (not a test; run by hand).

    python benchmarks/extract.py [--data ../shared/data/hymenoptera_data] [--batch-size 32]
    python benchmarks/extract.py --shards 2 [--data ...]

Prints images/s for: decoding + preprocessing only; the forward pass only (plain torchvision
model, + channels_last, + BatchNorm folded, i.e. what the pipeline runs) on pre-decoded
batches; and end to end (``python -m pipeline.extract --force`` in a subprocess, for 0, 1
and 2 decoding workers), with each subprocess's peak memory. Weights are a random init
(``none``): throughput does not depend on the weight values.

With ``--shards N`` it compares instead, end to end and each in fresh subprocesses of this
checkout: one process (``extract.workers`` decode workers, torch on every core); N shards as
Dask tasks (``--dask-workers N``: N single-threaded workers, merge included); and N concurrent
``--shard K/N`` processes (CPUs/N torch threads each, no decode workers) followed by
``python -m pipeline.features merge``. It checks that the three files are byte-identical.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision

from pipeline import backbones, images

REPO = Path(__file__).resolve().parents[1]


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:7.1f} img/s  ({seconds:6.2f} s for {n})"


def decode_only(root: Path, paths: list[str], transform) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    batch = torch.stack([transform(images.load_rgb(root / p)) for p in paths])
    return batch, time.perf_counter() - start


def forward_only(model, batch: torch.Tensor, batch_size: int, channels_last: bool) -> float:
    with torch.inference_mode():
        warm = batch[:batch_size]
        model(warm.contiguous(memory_format=torch.channels_last) if channels_last else warm)
        start = time.perf_counter()
        for i in range(0, len(batch), batch_size):
            x = batch[i : i + batch_size]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            model(x)
    return time.perf_counter() - start


def end_to_end(data: Path, out: Path, workers: int, batch_size: int) -> tuple[float, float, float]:
    """Run the command in a subprocess: (wall s, peak RSS MiB incl. workers, s inside extract)."""
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "peak_rss.py"),
        "pipeline.extract",
        "--params",
        str(REPO / "params.yaml"),
        "--set",
        f"data.dir={data}",
        "--set",
        "extract.weights=none",
        "--set",
        f"extract.out={out}",
        "--set",
        f"extract.workers={workers}",
        "--set",
        f"extract.batch_size={batch_size}",
        "--set",
        "extract.device=cpu",
        "--force",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    own, kids = map(float, re.search(r"peak_rss_mib: (\d+) (\d+)", proc.stderr).groups())
    inside = float(re.search(r"forwarded in ([\d.]+) s", proc.stderr).group(1))
    return wall, own + kids, inside


def _module(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -m ARGS`` in this checkout (stderr captured)."""
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def _wait(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"{' '.join(proc.args)} failed ({proc.returncode}):\n{err[-3000:]}")


def shard_comparison(root: Path, n: int, batch_size: int) -> None:
    """One process against N shards (on Dask, and as N concurrent processes + merge)."""
    cpus = os.cpu_count() or 1
    listing = images.scan(root, ["train", "val"])
    total = len(listing.all_samples())
    print(f"{total} images, batch {batch_size}, {cpus} CPUs, {n} shards")
    with tempfile.TemporaryDirectory() as tmp:
        common = [
            "--set",
            f"data.dir={root}",
            "--set",
            "extract.weights=none",
            "--set",
            "extract.device=cpu",
            "--set",
            f"extract.batch_size={batch_size}",
            "--force",
        ]
        outs, times = {}, {}
        for label, extra in (
            ("1 process", []),
            (f"{n} shards on Dask (--dask-workers {n})", ["--dask-workers", str(n)]),
        ):
            out = Path(tmp) / f"{len(outs)}.h5"
            start = time.perf_counter()
            _wait([_module(["pipeline.extract", *common, "--set", f"extract.out={out}", *extra])])
            outs[label], times[label] = out, time.perf_counter() - start
        label = f"{n} concurrent --shard K/{n} processes + merge"
        out = Path(tmp) / "sharded.h5"
        threads = str(max(1, cpus // n))
        start = time.perf_counter()
        _wait(
            [
                _module(
                    [
                        "pipeline.extract",
                        *common,
                        "--set",
                        f"extract.out={out}",
                        "--set",
                        "extract.workers=0",
                        "--shard",
                        f"{k}/{n}",
                    ],
                    env={"OMP_NUM_THREADS": threads},
                )
                for k in range(1, n + 1)
            ]
        )
        shards = [str(Path(tmp) / f"sharded.shard-{k}-of-{n}.h5") for k in range(1, n + 1)]
        _wait([_module(["pipeline.features", "merge", str(out), *shards])])
        outs[label], times[label] = out, time.perf_counter() - start
        reference = next(iter(outs.values())).read_bytes()
        base = next(iter(times.values()))
        for label, seconds in times.items():
            same = outs[label].read_bytes() == reference
            print(
                f"{label:<45} {seconds:6.1f} s wall incl. start-up  {total / seconds:6.1f} img/s  "
                f"{base / seconds:4.2f}x  byte-identical: {same}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/hymenoptera_data"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument(
        "--shards", type=int, help="compare one process against this many shards instead"
    )
    args = parser.parse_args()
    root = Path(args.data)
    if args.shards:
        shard_comparison(root, args.shards, args.batch_size)
        return
    listing = images.scan(root, ["train", "val"])
    paths = [s.path for s in listing.all_samples()]
    n = len(paths)
    print(
        f"{n} images, batch {args.batch_size}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs"
    )

    transform = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    batch, seconds = decode_only(root, paths, transform)
    print(f"decode + preprocess only (1 process): {_rate(n, seconds)}")

    torch.manual_seed(0)
    plain = torchvision.models.resnet18(weights=None)
    plain.fc = torch.nn.Identity()
    plain.eval()
    print(
        f"forward only, plain eval model:        "
        f"{_rate(n, forward_only(plain, batch, args.batch_size, False))}"
    )
    cl = plain.to(memory_format=torch.channels_last)
    print(
        f"forward only, + channels_last:          "
        f"{_rate(n, forward_only(cl, batch, args.batch_size, True))}"
    )
    fused, _ = backbones.build("resnet18", "none", seed=0, device="cpu")
    fwd = forward_only(fused, batch, args.batch_size, True)
    print(f"forward only, + BatchNorm folded (ours): {_rate(n, fwd)}")
    with torch.inference_mode():
        diff = (
            (
                fused(batch[:32].contiguous(memory_format=torch.channels_last))
                - torch.nn.Identity()(plain(batch[:32]))
            )
            .abs()
            .max()
            .item()
        )
    print(f"  max abs diff against the plain model: {diff:.2e}")

    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            wall, peak, inside = end_to_end(root, Path(tmp) / "f.h5", workers, args.batch_size)
            print(
                f"end to end, {workers} decode workers: {_rate(n, inside)} inside extract(); "
                f"process {wall:5.2f} s wall incl. imports; peak RSS {peak:.0f} MiB "
                f"({n / inside / (n / fwd):.0%} of forward-only)"
            )


if __name__ == "__main__":
    main()
