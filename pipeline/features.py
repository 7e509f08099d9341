"""Inspect, check and merge feature stores.

python -m pipeline.features info FILE            # counts per split and class, metadata
python -m pipeline.features verify FILE          # non-zero exit unless every checksum matches
python -m pipeline.features merge OUT SHARD...   # join the shards of one extraction
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.common import cli
from pipeline.store import hdf5, shards


def _run(args) -> None:
    if args.command == "info":
        print(hdf5.describe(args.file))
    elif args.command == "merge":
        meta = shards.merge(args.out, args.shards)
        print(f"{args.out}: merged {len(args.shards)} shards ({', '.join(meta.splits)})")
    else:
        meta = hdf5.verify(args.file)
        checked = "every chunk's checksum matches" if meta.checksummed else "no checksums"
        print(
            f"{args.file}: OK (format {meta.format_version}, {meta.feature_dtype} features; "
            f"splits {', '.join(meta.splits)}; {checked})"
        )
        if not meta.checksummed:
            print(f"note: {hdf5.unchecked_note(meta)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser(
        "python -m pipeline.features", "Inspect and check feature stores.", with_params=False
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="counts per split and class, and the metadata").add_argument("file")
    sub.add_parser(
        "verify", help="exit non-zero unless the file is complete and sound"
    ).add_argument("file")
    merge = sub.add_parser(
        "merge", help="join the shards of one extraction (`pipeline.extract --shard K/N`)"
    )
    merge.add_argument("out", help="the merged store to write")
    merge.add_argument("shards", nargs="+", metavar="shard", help="shard files")
    return cli.main(parser, argv, _run)


if __name__ == "__main__":
    sys.exit(main())
