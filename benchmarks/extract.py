"""Benchmark stage one on the real data set (not a test; run by hand).

    python benchmarks/extract.py [--data ../shared/data/hymenoptera_data] [--batch-size 32]
    python benchmarks/extract.py --shards 2 [--data ...]

Prints images/s for: decoding + preprocessing only; the forward pass only (plain torchvision
model, + channels_last, + BatchNorm folded, i.e. what the pipeline runs) on pre-decoded
images, in the batches extraction uses (per split); decoding and forward pass together, as
extraction runs them (``inference.iter_features``, 0, 1 and 2 decoding workers), against the
forward pass alone; and the whole ``python -m pipeline.extract --force`` process, with its
peak memory. Every figure but the last is the best of ``--repeats`` runs on a warm model.
Weights are a random init (``none``): throughput does not depend on the weight values.

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
from timing import peak_mib, run_module

from pipeline.backbones import inference, models
from pipeline.sources import folder, images
from pipeline.sources.base import Listing

REPO = Path(__file__).resolve().parents[1]


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:7.1f} img/s  ({seconds:6.2f} s for {n})"


def decode_only(root: Path, paths: list[str], transform) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    batch = torch.stack([transform(images.load_rgb(root / p)) for p in paths])
    return batch, time.perf_counter() - start


def end_to_end(data: Path, out: Path, workers: int, batch_size: int) -> tuple[float, float, float]:
    """Run the command in a subprocess: (wall s, peak RSS MiB, s inside extract).

    The peak RSS is the main process's: decoding workers are forks that share its pages, and
    getrusage's maximum over children counts those shared pages again.
    """
    cmd = [
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
    wall, stderr = run_module(cmd, peak=True)
    inside = float(re.search(r"read and encoded in ([\d.]+) s", stderr).group(1))
    return wall, peak_mib(stderr)[0], inside


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
    listing = folder.scan(root, ["train", "val"])
    total = listing.total
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


def split_batches(listing: Listing, batch_size: int) -> list[list[int]]:
    """Positions (in listing order) of each batch extraction runs: per split, in order."""
    batches, offset = [], 0
    for samples in listing.rows.values():
        for i in range(0, len(samples), batch_size):
            batches.append(list(range(offset + i, offset + min(i + batch_size, len(samples)))))
        offset += len(samples)
    return batches


def forward_only(model, batch: torch.Tensor, batches: list[list[int]], channels_last: bool):
    """Seconds for the forward pass over pre-decoded images, in extraction's batches."""
    with torch.inference_mode():
        start = time.perf_counter()
        for idx in batches:
            x = batch[idx[0] : idx[-1] + 1]
            model(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    return time.perf_counter() - start


def decode_and_forward(model, transform, root: Path, listing, batch_size: int, workers: int):
    """Seconds for :func:`inference.iter_features` over every split: decoding overlapped."""
    start = time.perf_counter()
    for rows in listing.rows.values():
        for _ in inference.iter_features(
            model,
            folder.ImageFiles(root, rows, transform),
            batch_size=batch_size,
            workers=workers,
        ):
            pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/hymenoptera_data"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument(
        "--shards", type=int, help="compare one process against this many shards instead"
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    root = Path(args.data)
    if args.shards:
        shard_comparison(root, args.shards, args.batch_size)
        return
    listing = folder.scan(root, ["train", "val"])
    paths = [p for rows in listing.rows.values() for p in rows]
    batches = split_batches(listing, args.batch_size)
    n = len(paths)
    print(
        f"{n} images, batch {args.batch_size}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs; best of {args.repeats} runs"
    )

    transform = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    timings = [decode_only(root, paths, transform) for _ in range(args.repeats)]
    batch, seconds = timings[0][0], min(t for _, t in timings)
    print(f"decode + preprocess only (1 process):    {_rate(n, seconds)}")

    def best(model, channels_last: bool) -> float:
        forward_only(model, batch, batches, channels_last)  # warm-up: every batch shape once
        return min(forward_only(model, batch, batches, channels_last) for _ in range(args.repeats))

    torch.manual_seed(0)
    plain = torchvision.models.resnet18(weights=None)
    plain.fc = torch.nn.Identity()
    plain.eval()
    print(f"forward only, plain eval model:          {_rate(n, best(plain, False))}")
    with torch.inference_mode():
        reference = plain(batch[:32])
    plain = plain.to(memory_format=torch.channels_last)
    print(f"forward only, + channels_last:           {_rate(n, best(plain, True))}")
    fused, info = models.build("resnet18", "none", seed=0, device="cpu")
    fwd = best(fused, True)
    print(f"forward only, + BatchNorm folded (ours): {_rate(n, fwd)}")
    with torch.inference_mode():
        ours = fused(batch[:32].contiguous(memory_format=torch.channels_last))
    print(f"  max abs diff against the plain model: {(ours - reference).abs().max().item():.2e}")

    for workers in args.workers:
        e2e = min(
            decode_and_forward(fused, info.transform, root, listing, args.batch_size, workers)
            for _ in range(args.repeats)
        )
        print(
            f"decode + forward, {workers} decoding workers:  {_rate(n, e2e)}  "
            f"{fwd / e2e:.0%} of forward-only"
        )

    with tempfile.TemporaryDirectory() as tmp:
        wall, peak, inside = end_to_end(root, Path(tmp) / "f.h5", 2, args.batch_size)
    print(
        f"python -m pipeline.extract --force (2 workers): {wall:.2f} s wall incl. imports and "
        f"model build, {n / inside:.1f} img/s in its decode + forward loop; peak RSS "
        f"{peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
