"""Scoring a trained head under shots and noise: exact row = metrics, seeded, bad input refused."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline import evaluate as command
from pipeline.common.config import EvaluateConfig, Params, TrainConfig
from pipeline.common.errors import PipelineError
from pipeline.inference import evaluate as ev
from pipeline.inference.robustness import score_setting
from pipeline.simulators.noise import NoiseModel
from pipeline.simulators.shots import expectations
from pipeline.store import hdf5
from pipeline.training.run import train_head

LEADING_COLUMNS = [
    "shots",
    "depolarizing",
    "accuracy",
    "ci_low",
    "ci_high",
    "agreement",
    "mean_abs_logit_shift",
    "seconds",
]
OUTPUTS = ("robustness.csv", "robustness.json", "plots/robustness.png")
SMALL = EvaluateConfig(shots=(None, 50, 500), depolarizing=(0.0, 0.02, 0.2))


def _blobs(path: Path, *, seed: int = 0, n_train: int = 40, n_val: int = 30, dim: int = 8):
    """A store of two overlapping Gaussian blobs (some val rows near the boundary)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2, dim))

    def split(name: str, n: int) -> hdf5.SplitArrays:
        labels = np.arange(n) % 2
        feats = centres[labels] + rng.standard_normal((n, dim))
        return hdf5.SplitArrays(
            feats.astype(np.float32), labels, [f"{name}/{i}.jpg" for i in range(n)]
        )

    hdf5.write(
        path,
        {"train": split("train", n_train), "val": split("val", n_val)},
        class_names=["ants", "bees"],
        source="synthetic",
        backbone="none",
        weights="none",
        weights_sha256="",
        transform="none",
        dataset_fingerprint=f"blobs-{seed}",
    )
    return path


def _train(root: Path, store: Path, **train) -> Path:
    """Train a head on ``store`` into ``root/run``; return the run folder."""
    settings = {"epochs": 3, "lr": 0.02, "batch_size": 8, **train}
    out = root / "run"
    train_head(Params(train=TrainConfig(features=str(store), out_dir=str(out), **settings)))
    return out


@pytest.fixture(scope="module")
def quantum_run(tmp_path_factory) -> Path:
    """A quantum head (4 qubits, depth 6) on blobs: do not modify."""
    root = tmp_path_factory.mktemp("evaluate-quantum")
    return _train(root, _blobs(root / "blobs.h5"))


def _evaluate(run: Path, cfg: EvaluateConfig = SMALL, **kwargs) -> ev.EvaluationResult:
    return ev.evaluate(Params(evaluate=cfg), run / "model.pt", **kwargs)


def _read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _without_seconds(path: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in _read_csv(path)]


def _write_params(path: Path, run: Path, **evaluate) -> Path:
    path.write_text(yaml.safe_dump({"train": {"out_dir": str(run)}, "evaluate": evaluate}))
    return path


# ----------------------------------------------------------------------------- outputs


def test_outputs_hold_one_row_per_setting_in_the_issues_columns(quantum_run):
    result = _evaluate(quantum_run)
    assert [p.relative_to(quantum_run).as_posix() for p in result.written] == list(OUTPUTS)
    rows = _read_csv(quantum_run / "robustness.csv")
    header = next(csv.reader(io.StringIO((quantum_run / "robustness.csv").read_text())))
    assert header[: len(LEADING_COLUMNS)] == LEADING_COLUMNS
    assert [(r["shots"], r["depolarizing"]) for r in rows] == [
        (s, p) for p in ("0.0", "0.02", "0.2") for s in ("", "50", "500")
    ]  # shots empty for exact
    assert all(r["n"] == "30" for r in rows)
    assert [r["backend"] for r in rows] == ["head"] + ["torch"] * 8
    doc = json.loads((quantum_run / "robustness.json").read_text())
    assert doc["columns"] == header
    for from_csv, from_json in zip(rows, doc["rows"], strict=True):
        for key, text in from_csv.items():
            value = from_json[key]
            assert text == ("" if value is None else str(value)), key
    assert doc["accuracy"]["p=0.02 50 shots"] == float(rows[4]["accuracy"])
    assert doc["exact_accuracy"] == float(rows[0]["accuracy"])
    assert doc["run"]["head"] == "quantum" and doc["run"]["random_init"] is False
    for row in doc["rows"]:
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
    assert (quantum_run / "plots" / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    leftovers = [p.name for p in quantum_run.rglob(".*.tmp")]
    assert not leftovers


def test_noise_moves_the_logits_more_as_it_grows(quantum_run):
    rows = {
        (s.setting.shots, s.setting.noise.depolarizing): s.row
        for s in _evaluate(quantum_run).scored
    }
    assert rows[(None, 0.0)].mean_abs_logit_shift == 0.0 and rows[(None, 0.0)].agreement == 1.0
    shifts = [rows[(None, p)].mean_abs_logit_shift for p in (0.0, 0.02, 0.2)]
    assert shifts[0] < shifts[1] < shifts[2]
    # 50 shots scatter the logits more than 500 do
    assert rows[(50, 0.0)].mean_abs_logit_shift > rows[(500, 0.0)].mean_abs_logit_shift > 0


@pytest.mark.parametrize(
    ("train", "which"),
    [
        ({}, "best"),
        ({"checkpoint": "last", "epochs": 2}, "last"),
        ({"head": "classical"}, "best"),
        ({"head": "linear", "dtype": "float32"}, "best"),
    ],
)
def test_the_exact_row_equals_the_heads_own_metrics(tmp_path, train, which):
    run = _train(tmp_path, _blobs(tmp_path / "blobs.h5", seed=3), **train)
    result = _evaluate(run)
    metrics = json.loads((run / "metrics.json").read_text())
    exact = result.scored[0]
    assert exact.setting.exact_noiseless
    assert exact.row.accuracy == metrics[which]["val_acc"]  # exactly, not approximately
    assert result.exact_accuracy == result.metrics_val_acc == metrics[which]["val_acc"]
    if train.get("head") in ("classical", "linear"):  # no circuit: every setting is exact
        assert {s.backend for s in result.scored} == {"head"}
        assert {(s.row.accuracy, s.row.mean_abs_logit_shift) for s in result.scored} == {
            (exact.row.accuracy, 0.0)
        }


def _kets(path: Path, *, cutoff: int = 6, n_train: int = 32, n_val: int = 24) -> Path:
    """A store of normalised one-mode kets (complex128, format 2), two classes."""
    rng = np.random.default_rng(5)

    def split(name: str, n: int) -> hdf5.SplitArrays:
        kets = rng.standard_normal((n, cutoff)) + 1j * rng.standard_normal((n, cutoff))
        kets /= np.linalg.norm(kets, axis=1, keepdims=True)
        return hdf5.SplitArrays(kets, np.arange(n) % 2, [f"{name}/{i}" for i in range(n)])

    hdf5.write(
        path,
        {"train": split("train", n_train), "val": split("val", n_val)},
        class_names=["gaussian", "non-gaussian"],
        source="qq",
        backbone="none",
        weights="none",
        weights_sha256="",
        transform="none",
        dataset_fingerprint="kets",
    )
    return path


def test_the_exact_row_of_a_cv_head_on_complex_kets_equals_its_metrics(tmp_path):
    """The kets reach the head as training gave them: [real parts | imaginary parts]."""
    store = _kets(tmp_path / "kets.h5")
    run = _train(tmp_path, store, head="cv", cv_layers=1, epochs=2, lr=0.01)
    result = _evaluate(run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert result.scored[0].row.accuracy == metrics["best"]["val_acc"]
    assert {s.backend for s in result.scored} == {"head"}


def test_the_same_seed_gives_the_same_table_and_another_seed_another(quantum_run, tmp_path):
    csv_path, png = quantum_run / "robustness.csv", quantum_run / "plots" / "robustness.png"
    _evaluate(quantum_run)
    first, first_png = _without_seconds(csv_path), png.read_bytes()
    _evaluate(quantum_run)
    assert _without_seconds(csv_path) == first
    assert png.read_bytes() == first_png
    _evaluate(quantum_run, replace(SMALL, seed=1))
    other = _without_seconds(csv_path)
    exact = [i for i, r in enumerate(first) if r["shots"] == ""]
    assert [other[i] for i in exact] == [first[i] for i in exact]  # no sampling: unchanged
    assert other != first
    # a row depends on its own setting and the seed only, not on the rest of the grid
    _evaluate(quantum_run, EvaluateConfig(shots=(500,), depolarizing=(0.02,)))
    (alone,) = _without_seconds(csv_path)
    assert alone == next(r for r in first if (r["shots"], r["depolarizing"]) == ("500", "0.02"))


def test_a_row_equals_the_head_with_its_circuit_replaced_by_hand(quantum_run):
    """The 1000-shot, p = 0.01 row, computed from the head's layers and the noise core."""
    cfg = EvaluateConfig(shots=(1000,), depolarizing=(0.01,))
    (scored,) = _evaluate(quantum_run, cfg).scored
    head = ev.load_head(quantum_run / "model.pt")
    split = ev.load_val(head)
    model = head.model
    x = torch.as_tensor(split.features).double()  # (N, D)
    with torch.no_grad():
        exact = model(x)  # (N, 2)
        angles = torch.tanh(model.pre_net(x)) * (math.pi / 2)  # (N, 4)
        seed = scored.setting.seed(cfg.seed)
        z = expectations(angles, model.q_params, NoiseModel(0.01), shots=1000, generator=seed)
        logits = model.post_net(z)  # (N, 2)
    expected = score_setting(exact, split.labels, logits, shots=1000, depolarizing=0.01)
    assert scored.row == expected


def test_default_mixed_gives_the_torch_rows(quantum_run):
    """Exact noisy values: default.mixed and the torch density matrix agree to 1e-10."""
    cfg = EvaluateConfig(
        shots=(None,),
        depolarizing=(0.0, 0.03),
        amplitude_damping=(0.0, 0.02),
        readout_error=(0.01,),
    )
    torch_rows = _evaluate(quantum_run, replace(cfg, backend="torch"))
    mixed_rows = _evaluate(quantum_run, replace(cfg, backend="default.mixed"))
    assert [s.backend for s in mixed_rows.scored] == ["default.mixed"] * 4
    for ours, theirs in zip(torch_rows.scored, mixed_rows.scored, strict=True):
        assert ours.row.accuracy == theirs.row.accuracy
        assert ours.row.agreement == theirs.row.agreement
        assert abs(ours.row.mean_abs_logit_shift - theirs.row.mean_abs_logit_shift) < 1e-10
    rows = _read_csv(quantum_run / "robustness.csv")
    assert {r["readout_error"] for r in rows} == {"0.01"}
    assert {r["amplitude_damping"] for r in rows} == {"0.0", "0.02"}


def test_one_qubit_head_shift_by_hand(tmp_path):
    """1 qubit, depth 0: <Z> = -sin(x) noiseless; a depolarizing channel after H and after
    RY(x) shrinks it twice by 1 - 4p/3, so every logit moves by |w_c| (1 - (1 - 4p/3)^2) |sin x|.
    """
    run = _train(tmp_path, _blobs(tmp_path / "blobs.h5"), n_qubits=1, q_depth=0)
    p = 0.05
    result = _evaluate(run, EvaluateConfig(shots=(None,), depolarizing=(0.0, p)))
    head = ev.load_head(run / "model.pt")
    x = torch.as_tensor(ev.load_val(head).features).double()
    with torch.no_grad():
        angle = torch.tanh(head.model.pre_net(x))[:, 0] * (math.pi / 2)  # (N,)
        exact_z = head.model.circuit(angle[:, None], head.model.q_params)[:, 0]
    torch.testing.assert_close(exact_z, -torch.sin(angle), rtol=0, atol=1e-12)
    w = head.model.post_net.weight[:, 0].detach().abs()  # (2,)
    shrink = 1 - (1 - 4 * p / 3) ** 2
    by_hand = (w[None, :] * shrink * torch.sin(angle).abs()[:, None]).mean().item()
    noisy = result.scored[1]
    assert noisy.setting.noise.depolarizing == p
    assert abs(noisy.row.mean_abs_logit_shift - by_hand) < 1e-12


def test_threads_are_restored(quantum_run):
    before = torch.get_num_threads()
    _evaluate(quantum_run, EvaluateConfig(shots=(None,), depolarizing=(0.0,), threads=1))
    assert torch.get_num_threads() == before


# ----------------------------------------------------------------------------- the command


def test_the_command_reads_the_default_model_from_train_out_dir(tmp_path, quantum_run):
    run = tmp_path / "copy"
    run.mkdir()
    for name in ("model.pt", "metrics.json"):
        (run / name).write_bytes((quantum_run / name).read_bytes())
    params = _write_params(tmp_path / "p.yaml", run, shots=[None, 10], depolarizing=[0.0])
    assert command.main(["--params", str(params)]) == 0
    assert [r["shots"] for r in _read_csv(run / "robustness.csv")] == ["", "10"]
    assert (run / "plots" / "robustness.png").is_file()


def _refused(tmp_path, caplog, run: Path, *args: str, **evaluate) -> str:
    """Run the command, expect exit code 1 and no outputs; return the error logged."""
    params = _write_params(tmp_path / "p.yaml", run, **evaluate)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("robustness*")}
    caplog.clear()
    assert command.main(["--params", str(params), *args]) == 1
    assert {p: p.stat().st_mtime_ns for p in run.rglob("robustness*")} == before
    return "\n".join(r.getMessage() for r in caplog.records if r.levelname == "ERROR")


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("bytes", "is not a readable checkpoint"),
        ("store", "is not a readable checkpoint"),
        (
            "plain dict",
            "is not a head checkpoint written by pipeline.train_head: expected the keys",
        ),
        ("state dict", "is not a head checkpoint of format_version 1"),
        ("old format", "is not a head checkpoint of format_version 1"),
    ],
)
def test_a_model_file_that_is_not_a_head_is_refused(tmp_path, caplog, quantum_run, kind, message):
    run = tmp_path / "run"
    run.mkdir()
    model = run / "model.pt"
    good = torch.load(quantum_run / "model.pt", weights_only=True)
    if kind == "bytes":
        model.write_bytes(b"not a checkpoint at all")
    elif kind == "store":
        model.write_bytes(Path(good["features"]["path"]).read_bytes())
    elif kind == "plain dict":
        torch.save({"format_version": 1, "weights": torch.zeros(3)}, model)
    elif kind == "state dict":
        torch.save(good["state_dict"], model)
    else:
        torch.save({**good, "format_version": 0}, model)
    error = _refused(tmp_path, caplog, run)
    assert f"model.pt' {message}" in error
    assert not list(run.rglob("robustness*"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"n_qubits": 3}, "size mismatch"), ({"head": "photonic"}, "train.head: expected one of")],
)
def test_a_checkpoint_whose_config_does_not_fit_is_refused(tmp_path, quantum_run, change, reason):
    good = torch.load(quantum_run / "model.pt", weights_only=True)
    torch.save({**good, "config": {**good["config"], **change}}, tmp_path / "model.pt")
    with pytest.raises(PipelineError, match=r"model\.pt' is not a head checkpoint") as err:
        ev.load_head(tmp_path / "model.pt")
    assert reason in str(err.value)


def test_features_of_another_provenance_are_refused(tmp_path, caplog):
    store = _blobs(tmp_path / "blobs.h5")
    run = _train(tmp_path, store, epochs=1)
    recorded = hdf5.read_meta(store)
    _blobs(store, seed=1)  # the same path, other features
    error = _refused(tmp_path, caplog, run)
    assert str(store) in error and "is not the one" in error
    assert "dataset_fingerprint 'blobs-0' (model) against 'blobs-1' (file)" in error
    assert recorded.dataset_fingerprint == "blobs-0"
    other = _blobs(tmp_path / "other.h5", seed=2)
    error = _refused(tmp_path, caplog, run, "--features", str(other))
    assert "other.h5" in error and "'blobs-2' (file)" in error


def test_missing_features_name_the_file_and_the_option(tmp_path, caplog, quantum_run):
    error = _refused(tmp_path, caplog, quantum_run, "--features", str(tmp_path / "gone.h5"))
    assert "gone.h5" in error and "--features" in error


@pytest.mark.parametrize(
    ("evaluate", "message"),
    [
        ({"depolarizing": [0.0, -0.01]}, "evaluate.depolarizing: expected a list of probabilities"),
        ({"depolarizing": [1.5]}, "evaluate.depolarizing: expected a list of probabilities"),
        ({"amplitude_damping": [-1]}, "evaluate.amplitude_damping: expected a list of prob"),
        ({"readout_error": [2]}, "evaluate.readout_error: expected a list of probabilities"),
        ({"shots": [0]}, "evaluate.shots: expected a list of null (exact) or integers >= 1"),
        ({"shots": [None, -100]}, "evaluate.shots: expected a list of null (exact) or integers"),
        ({"shots": []}, "evaluate.shots: expected a non-empty list"),
        ({"shots": [10, 10]}, "evaluate.shots: expected distinct values"),
        ({"threads": 0}, "evaluate.threads: expected null or an integer >= 1"),
    ],
)
def test_bad_settings_are_refused(tmp_path, caplog, quantum_run, evaluate, message):
    assert message in _refused(tmp_path, caplog, quantum_run, **evaluate)


def test_an_unknown_device_lists_the_installed_ones(tmp_path, caplog, quantum_run):
    import pennylane as qml

    error = _refused(tmp_path, caplog, quantum_run, backend="no.such.device", shots=[100])
    assert "unknown backend 'no.such.device'" in error
    assert ", ".join(sorted(qml.plugin_devices)) in error


def test_a_device_that_cannot_simulate_noise_is_refused_naming_one_that_can(
    tmp_path, caplog, quantum_run
):
    error = _refused(
        tmp_path, caplog, quantum_run, backend="default.qubit", depolarizing=[0.0, 0.01]
    )
    assert "'default.qubit' cannot simulate noise" in error and "'default.mixed'" in error


def test_a_noiseless_device_with_shots_scores(quantum_run):
    """As on hardware: a plain qubit device with shots and no noise."""
    cfg = EvaluateConfig(backend="default.qubit", shots=(200,), depolarizing=(0.0,))
    (scored,) = _evaluate(quantum_run, cfg).scored
    assert scored.backend == "default.qubit" and scored.row.mean_abs_logit_shift > 0
    again = _evaluate(quantum_run, cfg).scored[0]
    assert again.row == scored.row  # seeded


@pytest.mark.slow
def test_the_default_grid_on_the_real_set(real_store, tmp_path):
    """The default grid (4 shot settings x 4 noise levels) on the 153 real val rows."""
    run = _train(tmp_path, real_store, epochs=2, lr=0.01, batch_size=4)
    result = _evaluate(run, EvaluateConfig())
    metrics = json.loads((run / "metrics.json").read_text())
    rows = _read_csv(run / "robustness.csv")
    assert len(rows) == 16 and {r["n"] for r in rows} == {"153"}
    assert float(rows[0]["accuracy"]) == metrics["best"]["val_acc"] == result.exact_accuracy
    doc = json.loads((run / "robustness.json").read_text())
    assert doc["run"]["random_init"] is True  # extract.weights: none, and the plot says so
