"""Benchmark ``pipeline.sweep`` on the real data set's features (not a test; run by hand).

    python benchmarks/sweep.py [--features F.h5 | --data ../shared/data/hymenoptera_data]
        [--seeds 10] [--heads quantum classical linear] [--modes jobs1 jobs2 dask2]
        [--set train.epochs=30 ...]

Runs the same sweep (by default 10 seeds x 3 heads = 30 runs, the paper's settings from
params.yaml) once per mode, each as ``python -m pipeline.sweep`` in a fresh subprocess of this
checkout: ``jobs1`` (``--jobs 1``, in-process), ``jobsN`` (``--jobs N``, joblib/loky), ``daskN``
(``--dask-workers N``, a LocalCluster on 127.0.0.1). Prints per mode the wall time of the
command (imports, pool or cluster start-up included), the time inside ``sweep()``, runs/s, the
speed-up over the first mode, and the sum of the runs' own training times (their ratio to the
wall time is the parallelism achieved). Checks that every mode's results.csv equals the first
one's apart from wall times. Without ``--features`` the images are extracted first with a
random-init backbone (``extract.weights=none``): speed does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import tempfile
from pathlib import Path

from timing import run_module

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> tuple[float, str]:
    """Run ``python -m ARGS`` in this checkout; (wall seconds, stderr)."""
    return run_module(args)


def _mode_args(mode: str) -> list[str]:
    match = re.fullmatch(r"(jobs|dask)(\d+)", mode)
    if not match:
        sys.exit(f"--modes: expected jobsN or daskN; got {mode!r}")
    kind, n = match.groups()
    return ["--jobs", n] if kind == "jobs" else ["--dask-workers", n]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", help="an existing feature store (default: extract one)")
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/hymenoptera_data"))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--heads", nargs="+", default=["quantum", "classical", "linear"])
    parser.add_argument("--modes", nargs="+", default=["jobs1", "jobs2", "dask2"])
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="extra --set for the sweep"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.features
        if store is None:
            store = str(Path(tmp) / "features.h5")
            wall, _ = _run(
                [
                    "pipeline.extract",
                    "--set",
                    f"data.dir={args.data}",
                    "--set",
                    "extract.weights=none",
                    "--set",
                    f"extract.out={store}",
                ]
            )
            print(f"extracted {store} in {wall:.1f} s (random-init backbone)")
        grid = [
            "--grid",
            f"train.seed={','.join(str(s) for s in range(args.seeds))}",
            "--grid",
            f"train.head={','.join(args.heads)}",
        ]
        n_runs = args.seeds * len(args.heads)
        sets = [x for o in [f"train.features={store}", *args.overrides] for x in ("--set", o)]
        print(
            f"{n_runs} runs ({args.seeds} seeds x {', '.join(args.heads)}), params.yaml "
            f"{' '.join(args.overrides) or '(paper settings)'}; {os.cpu_count()} CPUs"
        )
        print(
            f"{'mode':<8} {'wall s':>8} {'sweep s':>8} {'runs/s':>7} {'speed-up':>9} "
            f"{'sum of runs s':>14} {'same results':>13}"
        )
        reference, base = None, None
        for mode in args.modes:
            out = Path(tmp) / mode
            wall, err = _run(["pipeline.sweep", *sets, *grid, *_mode_args(mode), "--out", str(out)])
            inside = float(re.search(r"failed in ([\d.]+) s", err).group(1))
            rows = _rows(out / "results.csv")
            busy = sum(float(r["wall_time_s"]) for r in rows)
            stripped = [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]
            reference = reference or stripped
            base = base or inside
            print(
                f"{mode:<8} {wall:8.1f} {inside:8.1f} {n_runs / inside:7.2f} "
                f"{base / inside:8.2f}x {busy:14.1f} {stripped == reference!s:>13}"
            )


if __name__ == "__main__":
    main()
