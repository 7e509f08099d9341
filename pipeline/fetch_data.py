"""Download the data set into ``data.dir`` (a no-op when it is already there).

    python -m pipeline.fetch_data [--params params.yaml] [--set data.url=file:///path/data.zip]

An image folder (``data.source: folder``) comes as a zip archive from ``data.url``, checked
and unpacked atomically (:mod:`pipeline.sources.download`); CIFAR-10 (``data.source:
cifar10``) through torchvision's download (:mod:`pipeline.sources.cifar10`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli
from pipeline.sources.catalog import fetch


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.fetch_data",
        "Download, verify and unpack the data set into data.dir.",
    )
    return cli.main(parser, argv, lambda args: fetch(cli.params(args).data))


if __name__ == "__main__":
    sys.exit(main())
