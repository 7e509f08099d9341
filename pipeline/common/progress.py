"""Progress reporting: a tqdm bar on a terminal, plain periodic log lines otherwise (CI, DVC)."""

from __future__ import annotations

import logging
import sys
import time
from typing import IO

log = logging.getLogger("pipeline")


class _LogProgress:
    """tqdm's ``update``/``close`` interface, writing a log line at most every ``interval`` s."""

    def __init__(self, total: int | None, desc: str, unit: str, interval: float):
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.n = 0
        self._start = self._last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            self._emit(now)

    def _emit(self, now: float) -> None:
        rate = self.n / max(now - self._start, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        log.info("%s: %d%s %s (%.1f %s/s)", self.desc, self.n, of, self.unit, rate, self.unit)

    def close(self) -> None:
        self._emit(time.perf_counter())

    def __enter__(self) -> _LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    total: int | None,
    desc: str,
    unit: str = "it",
    stream: IO[str] | None = None,
    interval: float = 10.0,
):
    """A context manager with ``update(n)``: a bar on a terminal, else periodic log lines."""
    stream = stream if stream is not None else sys.stderr
    if stream.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True)
    return _LogProgress(total, desc, unit, interval)
