"""What every command's ``main()`` shares: parser, logging, errors as one line and an exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.common.config import Params, add_params_arguments, load_params
from pipeline.common.errors import PipelineError, describe_os_error

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

log = logging.getLogger("pipeline")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at each record."""

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


def run(task: Callable[[], Any]) -> int:
    """Run ``task``; return 0, or log the error and return non-zero."""
    try:
        task()
    except PipelineError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:  # one line, no traceback
        log.error("%s", describe_os_error(exc))
        return EXIT_ERROR
    return 0


def parser(prog: str, description: str, *, with_params: bool = True) -> argparse.ArgumentParser:
    """An ArgumentParser for ``python -m pipeline.<command>``, with ``--params`` and ``--set``."""
    result = argparse.ArgumentParser(prog=prog, description=description)
    if with_params:
        add_params_arguments(result)
    return result


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--model FILE``: a trained head, by default ``train_head``'s."""
    parser.add_argument(
        "--model", metavar="FILE", help="the head (default: <train.out_dir>/model.pt)"
    )


def params(args: argparse.Namespace) -> Params:
    """The checked :class:`Params` of ``--params`` and ``--set``."""
    return load_params(args.params, args.overrides)


def main(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    task: Callable[[argparse.Namespace], Any],
    *,
    check: Callable[[argparse.Namespace], str | None] | None = None,
) -> int:
    """Parse ``argv``, set up logging and run ``task(args)``; return the exit code.

    ``check`` returns a usage error that argparse cannot find alone (exit status 2).
    """
    args = parser.parse_args(argv)
    problem = check(args) if check is not None else None
    if problem:
        parser.error(problem)
    setup_logging()
    return run(lambda: task(args))
