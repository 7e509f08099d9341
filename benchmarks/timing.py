"""What the benchmark scripts share: a median timer, and a pipeline command in a fresh process.

The scripts run as ``python benchmarks/NAME.py``, so they import this as ``timing``.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """The median wall seconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_module(
    args: Sequence[str],
    *,
    peak: bool = False,
    cwd: str | Path = REPO,
    env: dict[str, str] | None = None,
) -> tuple[float, str]:
    """Run ``python -m ARGS`` in a fresh process with this checkout first on ``PYTHONPATH``
    (through ``benchmarks/peak_rss.py`` with ``peak``): its wall seconds and stderr.

    ``env`` adds to the environment. A command that fails ends the benchmark with its stderr.
    """
    full = {**os.environ, **(env or {})}
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full.get("PYTHONPATH")]))
    prefix = [str(REPO / "benchmarks" / "peak_rss.py")] if peak else ["-m"]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *prefix, *args], cwd=cwd, env=full, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.stderr


def peak_mib(stderr: str) -> tuple[float, float]:
    """The peak resident MiB that ``peak_rss.py`` reported: (its process, its largest child)."""
    own, kids = re.search(r"peak_rss_mib: (\d+) (\d+)", stderr).groups()
    return float(own), float(kids)
