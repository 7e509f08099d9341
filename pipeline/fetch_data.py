"""Download the data set into ``data.dir`` (a no-op when it is already there).

    python -m pipeline.fetch_data [--params params.yaml] [--set data.url=file:///path/data.zip]

An image folder comes as a checked zip from ``data.url``, CIFAR-10 through torchvision.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.common import cli
from pipeline.common.config import DataConfig
from pipeline.common.errors import DataError
from pipeline.sources.catalog import fetch

#: What docs/dvc.md runs after ``dvc repro``, before queueing experiments.
BASELINE_COMMIT = (
    'git add dvc.lock runs && git commit -m "baseline: dvc.lock and the small outputs"'
)


def _check_queued_workspace(data: DataConfig) -> None:
    """Refuse a queued experiment's workspace lacking ``dvc.lock``: DVC cannot restore its data."""
    root = os.environ.get("DVC_ROOT")
    if not os.environ.get("DVC_EXP_NAME") or not root:
        return
    here = Path.cwd().resolve()
    if here == Path(root).resolve() or Path(data.dir).exists() or Path("dvc.lock").exists():
        return
    raise DataError(
        f"data.dir {data.dir!r} is not in this queued DVC experiment's workspace ({here}): DVC "
        "builds it from the last git commit, which holds no dvc.lock, so it cannot check the "
        "data and the features out of its cache and would download and extract everything "
        f"again. After `dvc repro` in {root}, commit the lock file and the small outputs "
        f"({BASELINE_COMMIT}), then queue the experiments again (dvc queue remove --failed)"
    )


def _run(args) -> None:
    data = cli.params(args).data
    _check_queued_workspace(data)
    fetch(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.fetch_data",
        "Download, verify and unpack the data set into data.dir.",
    )
    return cli.main(parser, argv, _run)


if __name__ == "__main__":
    sys.exit(main())
