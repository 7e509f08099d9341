"""Run ``python -m MODULE ARGS...`` in this process and print its peak memory on exit.

    python benchmarks/peak_rss.py pipeline.train_head --set train.epochs=30

Prints ``peak_rss_mib: SELF CHILDREN`` to stderr at exit: the largest resident set of this
process and of its largest child (e.g. DataLoader workers), in MiB, as getrusage reports it.
"""

from __future__ import annotations

import atexit
import resource
import runpy
import sys


def _report() -> None:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak_rss_mib: {own:.0f} {kids:.0f}", file=sys.stderr)


if __name__ == "__main__":
    module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    atexit.register(_report)
    runpy.run_module(module, run_name="__main__", alter_sys=True)
