"""The QC and QQ data sets as feature stores: sources, the datasets command, train_head."""

from __future__ import annotations

import logging
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import datasets, train_head
from pipeline.common.config import load_params
from pipeline.common.errors import ConfigError, DataError, FeatureStoreError
from pipeline.extraction.loop import extract
from pipeline.heads import inputs
from pipeline.heads.checkpoint import load_checkpoint
from pipeline.sources import photonic_data
from pipeline.sources.photonic import QCSource, QQSource, fetch_pretrained
from pipeline.store import hdf5
from pipeline.training.data import load_data
from pipeline.training.loop import fit
from pipeline.training.run import train_head as run_train_head

REPO = Path(__file__).resolve().parents[2]
SMALL = ["n_train_batches=4", "n_val_batches=3"]


def _overrides(block: str, tmp_path: Path, pretrained: Path, *extra: str) -> list[str]:
    name = "trained_params.npy" if block == "qc" else "circuit_A.npy"
    return [
        f"{block}.pretrained={pretrained / name}",
        f"{block}.url=file:///nonexistent/{name}",  # never downloaded in these tests
        f"{block}.out={tmp_path / block}.h5",
        f"train.features={tmp_path / block}.h5",
        f"train.out_dir={tmp_path}/run-{block}",
        *(f"{block}.{s}" for s in SMALL),
        *extra,
    ]


def _params(block: str, tmp_path: Path, pretrained: Path, *extra: str):
    return load_params(
        REPO / f"params-{block}.yaml", _overrides(block, tmp_path, pretrained, *extra)
    )


def test_presets_hold_the_papers_settings():
    qc = load_params(REPO / "params-qc.yaml")
    assert (qc.qc.layers, qc.qc.cutoff, qc.qc.seed) == (15, 11, 100)
    assert (qc.qc.n_train_batches, qc.qc.n_val_batches) == (1000, 1000)
    t = qc.train
    assert (t.head, t.lr, t.batch_size, t.epochs, t.gamma) == ("linear", 0.01, 7, 1, 1.0)
    assert (t.shuffle, t.checkpoint) == (False, "last") and qc.features_path == qc.qc_out
    qq = load_params(REPO / "params-qq.yaml")
    assert (qq.qq.cutoff, qq.qq.seed, qq.qq.n_train_batches) == (15, 1, 500)
    t = qq.train
    assert (t.head, t.cv_layers, t.lr, t.batch_size, t.epochs) == ("cv", 3, 0.01, 8, 1)
    assert 8 * qq.qq.n_train_batches // t.batch_size == 500  # steps
    assert (t.shuffle, t.checkpoint) == (False, "last") and qq.features_path == qq.qq_out
    for p in (qc, qq):  # the defaults never point at the shared folder
        assert not p.qc.pretrained.startswith("..") and not p.qq.pretrained.startswith("..")
        assert p.qc.url.endswith("/pre_trained/trained_params.npy")
        assert p.qq.url.endswith("/pre_trained/circuit_A.npy")


def test_qc_store(tmp_path, pretrained_dir, caplog):
    p = _params("qc", tmp_path, pretrained_dir)
    source = QCSource(p.qc)
    listing = source.list()
    assert listing.class_names == photonic_data.QC_CLASSES
    assert listing.rows["val"][:2] == ["val/0", "val/1"] and listing.total == 49
    result = extract(source, p.qc_out)
    meta = result.meta
    assert (meta.source, meta.feature_dtype, meta.feature_dim, meta.format_version) == (
        "qc",
        "float32",
        16,
        3,
    )
    assert meta.weights == "trained_params.npy" and meta.backbone == "cv-tetromino-15of25"
    assert meta.weights_sha256 == photonic_data.PRETRAINED["trained_params.npy"].sha256
    params = photonic_data.load_pretrained(pretrained_dir, "trained_params.npy")
    expected = photonic_data.qc_dataset(params, n_train_batches=4, n_val_batches=3, min_norm=0)
    for split in ("train", "val"):
        got = hdf5.load(p.qc_out, split)
        assert np.array_equal(got.features, expected[split].features)
        assert np.array_equal(got.labels, expected[split].labels)
    # up to date: the pretrained file is not even needed
    moved = load_params(REPO / "params-qc.yaml", [*_overrides("qc", tmp_path, tmp_path / "gone")])
    with caplog.at_level(logging.INFO, logger="pipeline"):
        assert extract(QCSource(moved.qc), moved.qc_out).up_to_date
    assert "is up to date" in caplog.text
    changed = _params("qc", tmp_path, pretrained_dir, "qc.layers=14")
    assert not extract(QCSource(changed.qc), changed.qc_out).up_to_date
    assert hdf5.read_meta(p.qc_out).extra["qc"]["layers"] == 14


def test_qc_warns_once_when_the_cutoff_is_too_small(tmp_path, pretrained_dir, caplog):
    p = _params("qc", tmp_path, pretrained_dir, "qc.cutoff=6")
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        extract(QCSource(p.qc), p.qc_out)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1, lines  # one summary line for both splits
    assert lines[0].startswith("QC states at cutoff 6: ") and " of 49 " in lines[0]
    caplog.clear()
    quiet = _params("qc", tmp_path, pretrained_dir, "qc.cutoff=6", "qc.min_norm=0")
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        assert extract(QCSource(quiet.qc), quiet.qc_out).up_to_date  # min_norm: not a setting
    assert caplog.text == ""


def test_qq_store_holds_the_kets_exactly(tmp_path, pretrained_dir):
    p = _params("qq", tmp_path, pretrained_dir)
    meta = extract(QQSource(p.qq), p.qq_out).meta
    assert (meta.source, meta.feature_dtype, meta.feature_dim, meta.format_version) == (
        "qq",
        "complex128",
        15,
        3,
    )
    assert meta.class_names == ("gaussian", "non-gaussian")
    circuit_a = photonic_data.load_pretrained(pretrained_dir, "circuit_A.npy")
    expected = photonic_data.qq_dataset(circuit_a, n_train_batches=4, n_val_batches=3)
    for split in ("train", "val"):
        got = hdf5.load(p.qq_out, split)
        assert got.features.dtype == np.complex128
        assert np.array_equal(got.features, expected[split].features)  # bitwise
        assert np.array_equal(got.labels, expected[split].labels)
    assert hdf5.verify(p.qq_out).feature_dtype == "complex128"


def test_missing_and_altered_pretrained_files(tmp_path, pretrained_dir, capsys):
    spec = photonic_data.PRETRAINED["circuit_A.npy"]
    gone = tmp_path / "nowhere" / "circuit_A.npy"
    p = _params("qq", tmp_path, pretrained_dir, f"qq.pretrained={gone}")
    assert datasets.main(["qq", "--params", str(REPO / "params-qq.yaml"), *_set(p)]) == 1
    err = capsys.readouterr().err
    assert f"pretrained file {gone} is missing and cannot be downloaded from " in err
    assert "file:///nonexistent/circuit_A.npy" in err and "data.url" not in err
    assert not gone.exists() and list(gone.parent.iterdir()) == []  # nothing half-written
    altered = tmp_path / "altered" / "circuit_A.npy"
    altered.parent.mkdir()
    array = np.load(pretrained_dir / "circuit_A.npy")
    array[0, 0] += 1e-3
    np.save(altered, array)
    with pytest.raises(
        DataError, match=rf"{altered} was altered: expected sha256 {spec.sha256}; got"
    ):
        fetch_pretrained(altered, "file:///nonexistent", "circuit_A.npy")
    p = _params("qq", tmp_path, pretrained_dir, f"qq.pretrained={altered}")
    assert datasets.main(["qq", "--params", str(REPO / "params-qq.yaml"), *_set(p)]) == 1
    assert "was altered" in capsys.readouterr().err and not Path(p.qq_out).exists()


def _set(p) -> list[str]:
    """``--set`` options that reproduce the test's qc/qq/train overrides."""
    out = []
    for block in ("qc", "qq"):
        cfg = getattr(p, block)
        out += ["--set", f"{block}.pretrained={cfg.pretrained}", "--set", f"{block}.url={cfg.url}"]
        out += ["--set", f"{block}.out={cfg.out}"]
        out += ["--set", f"{block}.n_train_batches={cfg.n_train_batches}"]
        out += ["--set", f"{block}.n_val_batches={cfg.n_val_batches}"]
    train = [f"train.features={p.train.features}", f"train.out_dir={p.train.out_dir}"]
    return [*out, "--set", train[0], "--set", train[1]]


def test_a_missing_file_is_downloaded_and_checked(tmp_path, pretrained_dir):
    origin = tmp_path / "origin" / "circuit_A.npy"
    origin.parent.mkdir()
    shutil.copy(pretrained_dir / "circuit_A.npy", origin)
    target = tmp_path / "data" / "paper-pretrained" / "circuit_A.npy"
    array = fetch_pretrained(target, origin.as_uri(), "circuit_A.npy")
    assert array.shape == (6, 1) and target.read_bytes() == origin.read_bytes()
    wrong = tmp_path / "wrong.npy"
    shutil.copy(pretrained_dir / "trained_params.npy", wrong)  # another file at the url
    other = tmp_path / "other" / "circuit_A.npy"
    spec = photonic_data.PRETRAINED["circuit_A.npy"]
    with pytest.raises(
        DataError,
        match=rf"download of {wrong.as_uri()} for {other} .*expected sha256 {spec.sha256}",
    ):
        fetch_pretrained(other, wrong.as_uri(), "circuit_A.npy")
    assert not other.exists() and list(other.parent.iterdir()) == []  # nothing half-written


def test_datasets_command_and_catalog(tmp_path, pretrained_dir, capsys):
    for block in ("qc", "qq"):
        p = _params(block, tmp_path, pretrained_dir)
        argv = [block, "--params", str(REPO / f"params-{block}.yaml"), *_set(p)]
        assert datasets.main(argv) == 0
        out = getattr(p, f"{block}_out")
        first = Path(out).read_bytes()
        capsys.readouterr()
        assert datasets.main(argv) == 0
        assert "is up to date" in capsys.readouterr().err
        assert datasets.main([*argv, "--force"]) == 0
        assert Path(out).read_bytes() == first  # rewritten, byte-identical


def test_train_head_names_the_command_that_makes_a_missing_store(tmp_path, pretrained_dir):
    for block, head in (("qc", "linear"), ("qq", "cv")):
        p = _params(block, tmp_path, pretrained_dir)
        assert p.train.head == head and not Path(p.features_path).exists()
        with pytest.raises(FeatureStoreError, match="is missing; make it first") as missing:
            run_train_head(p)
        command = shlex.split(str(missing.value).splitlines()[-1])
        assert command[:4] == ["python", "-m", "pipeline.datasets", block]
        assert datasets.main(command[3:]) == 0  # the printed command makes that very store
        assert not (tmp_path / f"run-{block}").exists()
        result = run_train_head(p)
        assert (tmp_path / f"run-{block}" / "model.pt").is_file()
        assert result.metrics["n_train"] == (28 if block == "qc" else 32)
        # the stored order: train accuracy comes from the batches in the notebook's order
        again = fit(p.train, load_data(p.features_path), on_epoch=lambda row: None)
        assert again.history == result.history
        model, ckpt = load_checkpoint(tmp_path / f"run-{block}" / "model.pt")  # rebuilt
        x = inputs.as_tensor(load_data(p.features_path).val.features, "cpu", torch.float64)
        with torch.no_grad():
            assert torch.equal(model(x), result.model(x))
        assert ckpt["in_features"] == (16 if block == "qc" else 15)


def test_heads_that_do_not_fit_the_store_are_refused(tmp_path, pretrained_dir, capsys):
    qq = _params("qq", tmp_path, pretrained_dir, "train.head=linear")
    qc = _params("qc", tmp_path, pretrained_dir, "train.head=cv")
    extract(QQSource(qq.qq), qq.qq_out)
    extract(QCSource(qc.qc), qc.qc_out)
    with pytest.raises(ConfigError, match=r"train.head 'linear' needs real features; .*qq.h5 holds "
                       r"complex128 features of width 15 .*use train.head cv"):  # fmt: skip
        run_train_head(qq)
    with pytest.raises(ConfigError, match=r"train.head 'cv' \(train.cv_layers 3\) needs a store of "
                       r"complex kets.*qc.h5 holds float32 features of width 16"):  # fmt: skip
        run_train_head(qc)
    argv = ["--params", str(REPO / "params-qc.yaml"), *_set(qc), "--set", "train.head=cv"]
    assert train_head.main(argv) == 1
    assert "needs a store of complex kets" in capsys.readouterr().err
