"""What the feature store's Fletcher-32 checksums cost to read and write (run by hand).

    python benchmarks/store_checksums.py [--rows 397 12000 100000] [--repeats 7]

For each row count (512 float32 features, two classes, train and val 60/40) the same arrays
are written twice: as the current format (every dataset chunked with Fletcher-32, fixed-length
paths, :func:`pipeline.store.hdf5.write`) and in the layout of format 1 (contiguous datasets,
no filter, variable-length paths). Prints the median over ``--repeats`` runs (file in the page
cache) of reading both splits through the one checking reader
(:func:`pipeline.store.hdf5.load_splits`) and of writing, the file sizes, and, to isolate the
checksum itself, a raw h5py read of the same chunked features without and with Fletcher-32.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import h5py
import numpy as np
from timing import median_seconds

from pipeline.store import hdf5

DIM = 512


def _splits(rows: int) -> dict[str, hdf5.SplitArrays]:
    rng = np.random.default_rng(0)
    sizes = {"train": rows * 6 // 10, "val": rows - rows * 6 // 10}
    return {
        name: hdf5.SplitArrays(
            rng.standard_normal((n, DIM)).astype(np.float32),
            np.arange(n) % 2,
            [f"{name}/{'ab'[i % 2]}/{i:08d}_image_name.jpg" for i in range(n)],
        )
        for name, n in sizes.items()
    }


def _write_current(path: Path, splits) -> None:
    hdf5.write(
        path,
        splits,
        class_names=["a", "b"],
        source="folder",
        backbone="resnet18",
        weights="none",
        weights_sha256="0" * 64,
        transform="T()",
        dataset_fingerprint="f" * 64,
    )


def _write_format_1(path: Path, splits) -> None:
    """The layout of format 1: contiguous, no filters, variable-length UTF-8 paths."""
    with h5py.File(path, "w", libver="earliest", track_order=False) as f:
        for name, s in splits.items():
            group = f.create_group(name)
            group.create_dataset("features", data=s.features, track_times=False)
            group.create_dataset("labels", data=s.labels.astype(np.int64), track_times=False)
            group.create_dataset(
                "paths",
                data=np.array(list(s.paths), dtype=object),
                dtype=h5py.string_dtype("utf-8"),
                track_times=False,
            )
        attrs = {
            "format_version": 1,
            "class_names": json.dumps(["a", "b"]),
            "source": "folder",
            "backbone": "resnet18",
            "weights": "none",
            "weights_sha256": "0" * 64,
            "transform": "T()",
            "feature_dim": DIM,
            "splits": json.dumps(list(splits)),
            "dataset_fingerprint": "f" * 64,
            "skipped": "[]",
            "versions": "{}",
            "extra": "{}",
        }
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["complete"] = True


def _features_read(path: Path, fletcher32: bool, features: np.ndarray) -> float:
    """Seconds to read one chunked features dataset, with or without the checksum filter."""
    with h5py.File(path, "w") as f:
        chunks = hdf5.chunk_shape(features.shape, features.itemsize)
        f.create_dataset("x", data=features, chunks=chunks, fletcher32=fletcher32)
    with h5py.File(path, "r") as f:
        return median_seconds(lambda: f["x"][()], REPEATS)


def _row(rows: int, tmp: Path) -> str:
    splits = _splits(rows)
    old, new = tmp / "old.h5", tmp / "new.h5"
    write_old = median_seconds(lambda: _write_format_1(old, splits), REPEATS)
    write_new = median_seconds(lambda: _write_current(new, splits), REPEATS)
    read_old = median_seconds(lambda: hdf5.load_splits(old, list(splits)), REPEATS)
    read_new = median_seconds(lambda: hdf5.load_splits(new, list(splits)), REPEATS)
    plain = _features_read(tmp / "plain.h5", False, splits["train"].features)
    summed = _features_read(tmp / "summed.h5", True, splits["train"].features)
    return (
        f"{rows:>7} {read_old * 1e3:>9.1f}ms {read_new * 1e3:>9.1f}ms "
        f"{write_old * 1e3:>9.1f}ms {write_new * 1e3:>9.1f}ms "
        f"{plain * 1e3:>9.2f}ms {summed * 1e3:>9.2f}ms {old.stat().st_size / 2**20:>7.2f} "
        f"{new.stat().st_size / 2**20:>7.2f}"
    )


REPEATS = 7


def main() -> None:
    global REPEATS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[397, 12000, 100000])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    REPEATS = args.repeats
    logging.getLogger("pipeline").setLevel(logging.ERROR)  # no note for the format-1 file
    print(f"{DIM} float32 features; median of {REPEATS} runs. load: both splits through the")
    print("checking reader; raw: h5py read of train/features, chunked, without and with the filter")
    print(
        f"{'rows':>7} {'load fmt 1':>11} {'load fmt 3':>11} {'write 1':>11} {'write 3':>11} "
        f"{'raw plain':>11} {'raw fl32':>11} {'MiB 1':>7} {'MiB 3':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            print(_row(rows, Path(tmp)))


if __name__ == "__main__":
    main()
