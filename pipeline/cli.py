"""What every command's ``main()`` shares: logging set-up and mapping errors to exit codes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TypeVar

from pipeline.errors import PipelineError

T = TypeVar("T")

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

log = logging.getLogger("pipeline")


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler that writes to whatever ``sys.stderr`` is at the time of each record."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(verbose: bool = False) -> None:
    """Log ``pipeline.*`` messages to stderr, one plain line each."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)


def run(task: Callable[[], T]) -> int:
    """Run ``task``; return 0, or print the error of a PipelineError and return non-zero."""
    try:
        task()
    except PipelineError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
    return 0
