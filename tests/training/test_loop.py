from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline.common.config import Params, TrainConfig, load_params
from pipeline.common.errors import ConfigError, FeatureStoreError
from pipeline.common.files import file_sha256
from pipeline.heads.checkpoint import load_checkpoint
from pipeline.training.data import load_data
from pipeline.training.loop import fit, train_one_epoch
from pipeline.training.run import train_head

REPO = Path(__file__).resolve().parents[2]


def _params(features: Path, out_dir: Path, **train) -> Params:
    return Params(train=TrainConfig(features=str(features), out_dir=str(out_dir), **train))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_quantum_head_learns_separable_features(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5", dim=16, separation=2.0)
    result = train_head(
        _params(store, tmp_path / "run", epochs=8, lr=0.02, batch_size=8, step_size=4)
    )
    assert result.metrics["best"]["val_acc"] >= 0.9
    assert result.metrics["last"]["val_acc"] >= 0.9
    assert result.history[0]["train_loss"] > result.history[-1]["train_loss"]


def test_outputs_and_their_contents(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5", n_classes=3, class_names=["a", "b", "c"])
    out = tmp_path / "run"
    result = train_head(_params(store, out, epochs=5, step_size=2, gamma=0.5))
    assert sorted(p.name for p in out.iterdir()) == [
        "history.csv",
        "metrics.json",
        "model.pt",
        "run.json",
        "val_predictions.csv",
    ]
    history = _read_csv(out / "history.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2, 3, 4, 5]
    assert [float(r["lr"]) for r in history] == pytest.approx([4e-4, 4e-4, 2e-4, 2e-4, 1e-4])
    metrics = json.loads((out / "metrics.json").read_text())
    best_acc = max(float(r["val_acc"]) for r in history)
    assert metrics["best"]["val_acc"] == pytest.approx(best_acc)
    first_best = next(int(r["epoch"]) for r in history if float(r["val_acc"]) == best_acc)
    assert metrics["best"]["epoch"] == first_best == result.best_epoch
    assert metrics["last"]["epoch"] == 5
    assert metrics["last"]["val_acc"] == pytest.approx(float(history[-1]["val_acc"]))
    assert set(metrics["best"]["per_class_acc"]) == {"a", "b", "c"}
    confusion = np.array(metrics["best"]["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == 32
    assert np.trace(confusion) / 32 == pytest.approx(metrics["best"]["val_acc"])
    assert metrics["n_params"] == 16 * 4 + 4 + 6 * 4 + 4 * 3 + 3
    assert {"wall_time_s", "train_seconds_per_epoch", "stacked_heads"} == set(metrics["timing"])

    # model.pt: the best checkpoint, its config, classes, and where its features came from
    model, ckpt = load_checkpoint(out / "model.pt")
    assert ckpt["class_names"] == ["a", "b", "c"] and ckpt["best_epoch"] == first_best
    assert TrainConfig(**ckpt["config"]) == TrainConfig(
        features=str(store), out_dir=str(out), epochs=5, step_size=2, gamma=0.5
    )
    assert ckpt["features"]["sha256"] == file_sha256(store)
    assert ckpt["features"]["dataset_fingerprint"] == "blobs-0"
    data = load_data(store)
    with torch.no_grad():
        probs = model(torch.as_tensor(data.val.features, dtype=torch.float64)).softmax(1)
    preds = _read_csv(out / "val_predictions.csv")
    assert [r["path"] for r in preds] == data.val.paths
    assert [r["predicted"] for r in preds] == [["a", "b", "c"][i] for i in probs.argmax(1)]
    np.testing.assert_allclose(
        [float(r["probability"]) for r in preds], probs.max(1).values.numpy(), atol=1e-6
    )


@pytest.mark.parametrize("head", ["classical", "linear"])
def test_classical_baselines_train(synthetic_store, tmp_path, head):
    store = synthetic_store(tmp_path / "blobs.h5")
    result = train_head(_params(store, tmp_path / head, head=head, epochs=5, lr=0.01, batch_size=8))
    assert result.metrics["head"] == head and result.metrics["backend"] == "torch"
    assert result.metrics["best"]["val_acc"] >= 0.9


def test_pennylane_backend_trains_the_same_model(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5", n_train=16, n_val=8)
    common = dict(epochs=2, batch_size=4)
    a = train_head(_params(store, tmp_path / "t", **common))
    b = train_head(_params(store, tmp_path / "p", backend="default.qubit", **common))
    assert b.metrics["backend"] == "default.qubit"
    for x, y in zip(a.history, b.history, strict=True):
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-9)
        assert x["val_loss"] == pytest.approx(y["val_loss"], abs=1e-9)


def _run_cli(params_file: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline.train_head", "--params", str(params_file)]
    for o in overrides:
        cmd += ["--set", o]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)


def test_same_params_same_bytes_across_processes(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    params = tmp_path / "params.yaml"
    params.write_text(f"train:\n  features: {store}\n  epochs: 4\n")
    runs = {}
    for name, seed in (("a", 42), ("b", 42), ("c", 7)):
        proc = _run_cli(params, f"train.out_dir={tmp_path / name}", f"train.seed={seed}")
        assert proc.returncode == 0, proc.stderr
        out = tmp_path / name
        metrics = json.loads((out / "metrics.json").read_text())
        metrics.pop("timing")
        # the digest of its own model.pt, whose config records out_dir
        assert metrics.pop("model_sha256") == file_sha256(out / "model.pt")
        runs[name] = (
            (out / "model.pt").read_bytes(),
            metrics,
            (out / "history.csv").read_bytes(),
        )
    # out_dir differs between a and b and is part of the saved config: compare the weights too
    a_model, _ = load_checkpoint(tmp_path / "a" / "model.pt")
    b_model, _ = load_checkpoint(tmp_path / "b" / "model.pt")
    assert all(
        torch.equal(x, y)
        for x, y in zip(a_model.state_dict().values(), b_model.state_dict().values(), strict=True)
    )
    assert runs["a"][1:] == runs["b"][1:]
    assert runs["a"][1] != runs["c"][1]


def test_rerun_in_the_same_place_gives_identical_model_bytes(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    p = _params(store, tmp_path / "run", epochs=3)
    train_head(p)
    first = (tmp_path / "run" / "model.pt").read_bytes()
    train_head(p)
    assert (tmp_path / "run" / "model.pt").read_bytes() == first


def test_cli_reads_extract_out_by_default(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    params = tmp_path / "params.yaml"
    params.write_text(f"extract:\n  out: {store}\ntrain:\n  out_dir: {tmp_path / 'run'}\n")
    assert load_params(params).features_path == str(store)
    proc = _run_cli(params, "train.epochs=2")
    assert proc.returncode == 0, proc.stderr
    assert "epoch 2/2" in proc.stderr and "val loss" in proc.stderr
    assert (tmp_path / "run" / "model.pt").is_file()


# ----------------------------------------------------------------------------- refusals


def test_missing_features_file(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(f"train:\n  features: {tmp_path / 'nope.h5'}\n")
    proc = _run_cli(params)
    assert proc.returncode != 0
    assert "nope.h5' does not exist; run `python -m pipeline.extract`" in proc.stderr


def test_incomplete_features_file(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    with h5py.File(store, "a") as f:
        del f.attrs["complete"]
    with pytest.raises(FeatureStoreError, match="incomplete"):
        load_data(store)


def test_nan_features(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    with h5py.File(store, "a") as f:
        f["train/features"][3, 0] = np.inf
    with pytest.raises(FeatureStoreError, match=r"train/features has NaN or inf in 1 rows"):
        load_data(store)


def test_feature_dimension_mismatch(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5", dim=16)
    with h5py.File(store, "a") as f:
        del f["val/features"]
        f["val/features"] = np.zeros((32, 8), np.float32)
    with pytest.raises(
        FeatureStoreError,
        match=r"val/features: expected float32 of shape "
        r"\(32, 16\); got float32 \(32, 8\)",
    ):
        load_data(store)


def test_class_count_mismatch(synthetic_store, tmp_path):
    one = synthetic_store(tmp_path / "one.h5", n_classes=1, class_names=["only"])
    with pytest.raises(FeatureStoreError, match=r"has 1 class \['only'\]; expected at least 2"):
        load_data(one)
    store = synthetic_store(tmp_path / "three.h5", n_classes=3)
    with h5py.File(store, "a") as f:
        labels = f["train/labels"][()]
        labels[labels == 2] = 0
        f["train/labels"][...] = labels
    with pytest.raises(
        FeatureStoreError,
        match=r"expected training rows for all 3 classes; "
        r"got none for \['c2'\]",
    ):
        load_data(store)


def test_unknown_backend_lists_devices(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    with pytest.raises(ConfigError, match=r"unknown backend 'qiskit.fake'.*lightning\.qubit"):
        train_head(_params(store, tmp_path / "r", backend="qiskit.fake"))
    assert not (tmp_path / "r").exists()


def test_shots_with_the_torch_backend_is_refused(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    with pytest.raises(ConfigError, match="torch backend is exact"):
        train_head(_params(store, tmp_path / "r", shots=100))


# ------------------------------------------------------------------------ the real data set


def test_paper_settings_on_real_features(real_store, tmp_path):
    result = train_head(_params(real_store, tmp_path / "run"))
    assert len(result.history) == 30
    assert [r["lr"] for r in result.history[::10]] == pytest.approx([4e-4, 4e-5, 4e-6])
    assert result.metrics["n_train"] == 244 and result.metrics["n_val"] == 153
    assert (
        result.metrics["best"]["confusion"][0][0] + result.metrics["best"]["confusion"][0][1] == 70
    )


# ------------------------------------------------------ options of the spiral benchmark


def test_checkpoint_last_keeps_the_final_iterate(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5", separation=0.7)
    common = dict(epochs=6, lr=0.05, batch_size=8, step_size=100, gamma=1.0)
    best = train_head(_params(store, tmp_path / "best", **common))
    last = train_head(_params(store, tmp_path / "last", checkpoint="last", **common))
    assert best.history == last.history  # the same training
    assert best.metrics["best"]["epoch"] != 6  # so that the two checkpoints differ
    model, ckpt = load_checkpoint(tmp_path / "last" / "model.pt")
    assert ckpt["checkpoint"] == "last" and ckpt["epoch"] == 6
    data = load_data(store)
    with torch.no_grad():
        acc = (model(torch.as_tensor(data.val.features).double()).argmax(1).numpy()
               == data.val.labels).mean()  # fmt: skip
    assert acc == pytest.approx(last.metrics["last"]["val_acc"])
    assert acc != pytest.approx(best.metrics["best"]["val_acc"])
    preds = _read_csv(tmp_path / "last" / "val_predictions.csv")
    assert np.mean([r["actual"] == r["predicted"] for r in preds]) == pytest.approx(acc)
    assert load_checkpoint(tmp_path / "best" / "model.pt")[1]["checkpoint"] == "best"


def test_summed_loss_and_pennylane_adam(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    data = load_data(store)
    quiet = dict(on_epoch=lambda row: None)
    base = TrainConfig(features=str(store), epochs=2, lr=0.01, batch_size=8, init_std=0.001)
    mean = fit(base, data, **quiet)
    summed = fit(replace(base, loss_reduction="sum"), data, **quiet)
    # Adam is nearly blind to the scale of the loss, not quite: eps = 1e-8 matters when the
    # gradients are as tiny as an init of 0.001 makes them
    for a, b in zip(mean.history, summed.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=0.05)  # per sample in both
        assert a["train_loss"] != b["train_loss"]
    pl = fit(replace(base, optimizer="pennylane_adam"), data, **quiet)
    assert pl.history[0]["train_loss"] != mean.history[0]["train_loss"]
    assert pl.metrics["best"]["val_acc"] >= 0.9


def test_out_dir_placeholders(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    params = tmp_path / "params.yaml"
    params.write_text(
        f"train:\n  features: {store}\n  epochs: 1\n"
        f"  out_dir: {tmp_path}/runs/{{train.head}}-seed{{train.seed}}\n"
    )
    proc = _run_cli(params, "train.head=linear", "train.seed=3")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "runs" / "linear-seed3" / "model.pt").is_file()


def _orders(monkeypatch, cfg: TrainConfig, data) -> list[list[int]]:
    """The row order of every epoch ``fit`` trains in (recorded from the orders it passes)."""
    from pipeline.training import loop

    seen = []

    def record(heads, optimizer, x, y, orders, batch_size, mean):
        seen.append(orders[0].tolist())  # the one member's order of the rows
        return train_one_epoch(heads, optimizer, x, y, orders, batch_size, mean)  # the real one

    monkeypatch.setattr(loop, "train_one_epoch", record)
    loop.fit(cfg, data, on_epoch=lambda row: None)
    return seen


def test_shuffle_default_uses_the_seeded_permutations_and_false_the_stored_order(
    synthetic_store, tmp_path, monkeypatch
):
    store = synthetic_store(tmp_path / "blobs.h5", n_train=20)
    data = load_data(store)
    cfg = TrainConfig(features=str(store), head="linear", epochs=3, seed=5)
    assert cfg.shuffle is True
    generator = torch.Generator().manual_seed(5)  # the order fit has always used
    expected = [torch.randperm(20, generator=generator).tolist() for _ in range(3)]
    assert _orders(monkeypatch, cfg, data) == expected
    stored = _orders(monkeypatch, replace(cfg, shuffle=False), data)
    assert stored == [list(range(20))] * 3
    # shuffle false: seeds change only the initialisation
    a = fit(replace(cfg, shuffle=False), data, on_epoch=lambda row: None)
    b = fit(replace(cfg, shuffle=False, seed=6), data, on_epoch=lambda row: None)
    c = fit(replace(cfg, shuffle=False), data, on_epoch=lambda row: None)
    assert a.history == c.history and a.history != b.history
