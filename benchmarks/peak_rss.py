"""Run ``python -m MODULE ARGS...`` in this process and print its peak memory on exit.

    python benchmarks/peak_rss.py pipeline.train_head --set train.epochs=30

Prints ``peak_rss_mib: SELF CHILDREN`` to stderr at exit: the peak resident set of this
process (Linux: ``VmHWM`` of ``/proc/self/status``, which starts afresh at exec, unlike
``getrusage``'s ``ru_maxrss``, which a child started by a large parent inherits), and
getrusage's largest child (e.g. DataLoader workers: forks that share this process's pages).
"""

from __future__ import annotations

import atexit
import resource
import runpy
import sys
from pathlib import Path


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _report() -> None:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak_rss_mib: {peak_rss_mib():.0f} {kids:.0f}", file=sys.stderr)


if __name__ == "__main__":
    module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    atexit.register(_report)
    runpy.run_module(module, run_name="__main__", alter_sys=True)
