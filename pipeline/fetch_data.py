"""Download the data set into ``data.dir`` (a no-op when it is already there).

    python -m pipeline.fetch_data [--params params.yaml] [--set data.url=file:///path/data.zip]

An image folder (``data.source: folder``) comes as a zip archive from ``data.url``, checked
and unpacked atomically (:mod:`pipeline.sources.download`); CIFAR-10 (``data.source:
cifar10``) through torchvision's download (:mod:`pipeline.sources.cifar10`). In a queued DVC
experiment's workspace without a committed ``dvc.lock`` it stops with the commit that is
missing instead of downloading (see docs/dvc.md).
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
    """Refuse to download into a queued DVC experiment's temporary workspace without dvc.lock.

    ``dvc exp run --queue`` runs each experiment in a copy of the last git commit (DVC sets
    ``DVC_EXP_NAME``, and ``DVC_ROOT`` to the repository, not the copy). Without a committed
    ``dvc.lock`` DVC cannot check the data and the features out of its cache there, so every
    stage would run again from the download on: the way past is a commit, not the network.
    """
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
