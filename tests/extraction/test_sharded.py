"""Sharded extraction: --shard K/N, features merge, and shards run as Dask tasks."""

from __future__ import annotations

import logging
import pickle
import random
from pathlib import Path

import numpy as np
import pytest

from pipeline import extract
from pipeline import features as features_command
from pipeline.common.config import DataConfig, ExtractConfig, Params, TrainConfig
from pipeline.common.errors import BadImageError, ConfigError, DataError, FeatureStoreError
from pipeline.extraction.job import Job
from pipeline.extraction.loop import extract_images, stale_reason
from pipeline.sources.folder import FolderSource, scan
from pipeline.store import hdf5
from pipeline.store.shards import Shard, merge
from pipeline.training import sweep
from pipeline.training.data import load_data


def _cfg(out: Path, **kw) -> ExtractConfig:
    return ExtractConfig(**{"weights": "none", "out": str(out), "workers": 0, **kw})


def _params(tmp_path: Path) -> str:
    p = tmp_path / "params.yaml"
    p.write_text("{}\n")
    return str(p)


def test_shard_spelling_bounds_and_file_names():
    assert Shard.parse("2/4") == Shard(2, 4)
    for bad in ("0/2", "3/2", "1/0", "2", "a/b", "1/2/3", ""):
        with pytest.raises(ConfigError, match=r"--shard: expected K/N with 1 <= K <= N"):
            Shard.parse(bad)
    for total in range(13):
        for n in range(1, 6):
            ranges = [Shard(k, n).bounds(total) for k in range(1, n + 1)]
            covered = [i for start, stop in ranges for i in range(start, stop)]
            assert covered == list(range(total))
            sizes = [stop - start for start, stop in ranges]
            assert max(sizes) - min(sizes) <= 1
    assert Shard(1, 4).path("features/x.h5") == Path("features/x.shard-1-of-4.h5")
    assert Shard(3, 4).meta(10) == {"index": 3, "count": 4, "start": 5, "stop": 7, "total": 10}


def test_shards_select_the_listing_in_order(tiny_root):
    listing = scan(tiny_root, ["train", "val"])
    for n in (1, 2, 3, 4, 10, 12):
        parts = [listing.select(*Shard(k, n).bounds(listing.total)) for k in range(1, n + 1)]
        for split in ("train", "val"):
            joined = [listing.rows[split][i] for part in parts for i in part[split]]
            assert joined == listing.rows[split]
    everything = listing.select(0, listing.total)
    assert {s: list(r) for s, r in everything.items()} == {
        s: list(range(len(r))) for s, r in listing.rows.items()
    }


def test_merged_shards_are_byte_identical_to_one_extraction(tiny_root, tiny_store, tmp_path):
    out = tmp_path / "f.h5"
    common = [
        "--params",
        _params(tmp_path),
        "--set",
        f"data.dir={tiny_root}",
        "--set",
        "extract.weights=none",
        "--set",
        "extract.workers=0",
        "--set",
        f"extract.out={out}",
    ]
    for k in (1, 2, 3):
        assert extract.main([*common, "--shard", f"{k}/3"]) == 0
    shards = [tmp_path / f"f.shard-{k}-of-3.h5" for k in (1, 2, 3)]
    assert not out.exists()
    meta = hdf5.read_meta(shards[1])
    assert meta.extra["shard"] == {"index": 2, "count": 3, "start": 3, "stop": 6, "total": 10}
    assert meta.dataset_fingerprint == hdf5.read_meta(tiny_store).dataset_fingerprint
    assert [len(hdf5.load(shards[1], s)) for s in ("train", "val")] == [3, 0]
    with pytest.raises(FeatureStoreError, match=r"is shard 2/3 of an extraction; merge"):
        load_data(shards[1])
    with pytest.raises(FeatureStoreError, match=r"is shard 2/3 of an extraction; merge"):
        sweep.expand(Params(train=TrainConfig(features=str(shards[1]))), {"train.seed": [0]})

    shuffled = [str(p) for p in shards]
    random.Random(0).shuffle(shuffled)
    assert features_command.main(["merge", str(out), *shuffled]) == 0
    assert out.read_bytes() == tiny_store.read_bytes()
    assert "shard" not in hdf5.verify(out).extra


def test_a_shard_is_up_to_date_on_rerun(forbid_backbone, tiny_root, tmp_path, monkeypatch, caplog):
    cfg = _cfg(tmp_path / "f.h5")
    first = extract_images(DataConfig(dir=str(tiny_root)), cfg, shard=Shard(2, 2))
    assert first.path == tmp_path / "f.shard-2-of-2.h5" and not first.up_to_date

    forbid_backbone()
    caplog.set_level(logging.INFO, logger="pipeline")
    again = extract_images(DataConfig(dir=str(tiny_root)), cfg, shard=Shard(2, 2))
    assert again.up_to_date and "is up to date" in caplog.text
    # a renamed shard is not taken for another shard, nor for the whole extraction
    source = FolderSource(tiny_root, ["train", "val"])
    listing = source.list()
    fp = source.fingerprint(listing)
    reason = stale_reason(Job(source, listing, fp, first.path, cfg, Shard(1, 2).meta(10)))
    assert reason is not None and "shard" in reason
    reason = stale_reason(Job(source, listing, fp, first.path, cfg))
    assert reason is not None and "shard" in reason


def test_shards_keep_the_bad_image_policy(tiny_data, tmp_path, truncated_jpeg):
    truncated_jpeg(tiny_data)  # train/bees/zz_truncated.jpg: image 7 of 11, in shard 2/2
    data = DataConfig(dir=str(tiny_data))
    single = extract_images(data, _cfg(tmp_path / "one.h5", on_bad_image="skip"))
    with pytest.raises(DataError, match=r"1 image cannot be decoded.*\n.*zz_truncated\.jpg"):
        extract_images(data, _cfg(tmp_path / "f.h5"), shard=Shard(2, 2))
    assert extract_images(data, _cfg(tmp_path / "f.h5"), shard=Shard(1, 2)).path.exists()
    parts = [
        extract_images(data, _cfg(tmp_path / "f.h5", on_bad_image="skip"), shard=Shard(k, 2)).path
        for k in (1, 2)
    ]
    merged = merge(tmp_path / "f.h5", parts)
    assert [s["path"] for s in merged.skipped] == ["train/bees/zz_truncated.jpg"]
    assert (tmp_path / "f.h5").read_bytes() == single.path.read_bytes()


def test_bad_image_error_survives_pickling():
    err = pickle.loads(pickle.dumps(BadImageError("a/b.jpg", "truncated")))
    assert isinstance(err, BadImageError)
    assert (err.path, err.reason, str(err)) == (
        "a/b.jpg",
        "truncated",
        "cannot decode image a/b.jpg: truncated",
    )


# --------------------------------------------------------------------------- merge checks

_META = {
    "class_names": ["a", "b"],
    "source": "folder",
    "backbone": "resnet18",
    "weights": "none",
    "weights_sha256": "0" * 64,
    "transform": "T()",
    "dataset_fingerprint": "f" * 64,
    "versions": {"torch": "1"},
}
_PATHS = [f"train/a/{i}.jpg" for i in range(5)]  # 5 images, all in train; val is empty


def _rows(paths, dtype=np.float32):
    n = len(paths)
    rng = np.random.default_rng(len(paths))
    return hdf5.SplitArrays(
        rng.standard_normal((n, 4)).astype(dtype), np.arange(n) % 2, list(paths)
    )


def _fake_shard(tmp_path, k, n, paths=None, skipped=(), shard=None, dtype=np.float32, **overrides):
    start, stop = Shard(k, n).bounds(len(_PATHS))
    paths = _PATHS[start:stop] if paths is None else paths
    kept = [p for p in paths if p not in {s["path"] for s in skipped}]
    path = tmp_path / f"s.shard-{k}-of-{n}.h5"
    hdf5.write(
        path,
        {"train": _rows(kept, dtype), "val": _rows([], dtype)},
        skipped=list(skipped),
        extra={"weights_kind": "none", "shard": shard or Shard(k, n).meta(len(_PATHS))},
        **{**_META, **overrides},
    )
    return path


def test_merge_joins_in_order_and_matches_a_direct_write(tmp_path):
    parts = [_fake_shard(tmp_path, k, 3) for k in (3, 1, 2)]
    merged = merge(tmp_path / "m.h5", parts)
    assert merged.extra == {"weights_kind": "none"}
    assert hdf5.load(tmp_path / "m.h5", "train").paths == _PATHS
    assert len(hdf5.load(tmp_path / "m.h5", "val")) == 0
    rows = [hdf5.load(p, "train") for p in sorted(parts)]
    hdf5.write(
        tmp_path / "direct.h5",
        {
            "train": hdf5.SplitArrays(
                np.concatenate([r.features for r in rows]),
                np.concatenate([r.labels for r in rows]),
                _PATHS,
            ),
            "val": _rows([]),
        },
        extra={"weights_kind": "none"},
        **_META,
    )
    assert (tmp_path / "m.h5").read_bytes() == (tmp_path / "direct.h5").read_bytes()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda t: [_fake_shard(t, 1, 2)], r"missing shard 2/2 \(s.shard-2-of-2.h5\?\)"),
        (
            lambda t: [_fake_shard(t, 1, 2), _fake_shard(t, 1, 2), _fake_shard(t, 2, 2)],
            r"shard 1/2 given twice",
        ),
        (
            lambda t: [_fake_shard(t, 1, 2), _fake_shard(t, 2, 3)],
            r"is shard 2/3 of 5 images but .* is shard 1/2 of 5; expected the shards of one",
        ),
        (
            lambda t: [_fake_shard(t, 1, 2), _fake_shard(t, 2, 2, weights_sha256="1" * 64)],
            r"weights_sha256 '1111.*' differs from .*s.shard-1-of-2.h5",
        ),
        (
            lambda t: [_fake_shard(t, 1, 2), _fake_shard(t, 2, 2, backbone="resnet34")],
            r"backbone 'resnet34' differs",
        ),
        (
            lambda t: [_fake_shard(t, 1, 2), _fake_shard(t, 2, 2, transform="U()")],
            r"transform 'U\(\)' differs",
        ),
        (
            lambda t: [_fake_shard(t, 1, 2), _fake_shard(t, 2, 2, class_names=["a", "c"])],
            r"class_names \('a', 'c'\) differs",
        ),
        (
            lambda t: [_fake_shard(t, 1, 2), _fake_shard(t, 2, 2, dataset_fingerprint="e" * 64)],
            r"dataset_fingerprint 'eeee.*' differs",
        ),
        (
            lambda t: [_fake_shard(t, 1, 2), _fake_shard(t, 2, 2, versions={"torch": "2"})],
            r"versions \{'torch': '2'\} differs",
        ),
        (
            lambda t: [_fake_shard(t, 1, 2), _fake_shard(t, 2, 2, dtype=np.complex128)],
            r"feature_dtype 'complex128' differs from .*s.shard-1-of-2.h5'+s 'float32'",
        ),
        (
            lambda t: [_fake_shard(t, 1, 2), _fake_shard(t, 2, 2, paths=_PATHS[2:4])],
            r"2 rows and 0 skipped images, but shard 2/2 covers 3 images \(2..4\)",
        ),
        (
            lambda t: [_fake_shard(t, 1, 2), _fake_shard(t, 2, 2, paths=_PATHS[1:4])],
            r"image 'train/a/1.jpg' is in both .* expected disjoint shards",
        ),
        (
            lambda t: [
                _fake_shard(t, 1, 2),
                _fake_shard(
                    t, 2, 2, shard={"index": 2, "count": 2, "start": 1, "stop": 5, "total": 5}
                ),
            ],
            r"does not match the deterministic split",
        ),
    ],
)
def test_merge_refuses_shards_that_do_not_fit(tmp_path, make, match):
    with pytest.raises(FeatureStoreError, match=match):
        merge(tmp_path / "m.h5", make(tmp_path))
    assert not (tmp_path / "m.h5").exists()


def test_merge_refuses_a_whole_store_and_counts_skipped_images(tmp_path):
    whole = tmp_path / "whole.h5"
    hdf5.write(whole, {"train": _rows(_PATHS)}, **_META)
    with pytest.raises(FeatureStoreError, match=r"whole.h5' is not a shard"):
        merge(tmp_path / "m.h5", [whole])
    assert features_command.main(["merge", str(tmp_path / "m.h5"), str(whole)]) == 1
    with pytest.raises(FeatureStoreError, match="at least one shard"):
        merge(tmp_path / "m.h5", [])
    skipped = [{"path": _PATHS[3], "error": "truncated"}]
    parts = [_fake_shard(tmp_path, 1, 2), _fake_shard(tmp_path, 2, 2, skipped=skipped)]
    merged = merge(tmp_path / "m.h5", parts)
    assert list(merged.skipped) == skipped
    assert hdf5.load(tmp_path / "m.h5", "train").paths == [p for p in _PATHS if p != _PATHS[3]]


# --------------------------------------------------------------------------- on Dask


@pytest.mark.slow
def test_shards_on_a_two_worker_local_cluster_equal_one_extraction(tiny_root, tiny_store, tmp_path):
    from distributed import LocalCluster

    out = tmp_path / "f.h5"
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as local:
        args = [
            "--params",
            _params(tmp_path),
            "--set",
            f"data.dir={tiny_root}",
            "--set",
            "extract.weights=none",
            "--set",
            f"extract.out={out}",  # extract.workers stays 2: the tasks decode in-process
            "--scheduler",
            local.scheduler_address,
            "--shards",
            "3",
        ]
        assert extract.main(args) == 0
        assert out.read_bytes() == tiny_store.read_bytes()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5", "params.yaml"]
        # up to date: no shard task is sent
        assert extract.main(args) == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5", "params.yaml"]


def test_extract_cli_options(tmp_path):
    with pytest.raises(SystemExit):
        extract.main(["--shards", "2"])  # needs a cluster
    with pytest.raises(SystemExit):
        extract.main(["--shard", "1/2", "--dask-workers", "2"])
    with pytest.raises(SystemExit):
        extract.main(["--shard", "3/2"])
