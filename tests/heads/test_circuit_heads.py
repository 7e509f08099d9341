"""Dressed heads around any circuit: built-ins and circuit files trained, stacked, saved,
rebuilt from model.pt after the file changed or moved, refused before anything is written."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pennylane as qml
import pytest
import torch

from pipeline.circuits.compiler import CircuitError
from pipeline.circuits.source import circuit_program
from pipeline.common.config import Params, TrainConfig
from pipeline.common.errors import ConfigError
from pipeline.heads.checkpoint import load_checkpoint
from pipeline.heads.stacked import StackedHeads
from pipeline.training.data import load_data
from pipeline.training.ensemble import fit_ensemble
from pipeline.training.loop import fit
from pipeline.training.run import train_head

REPO = Path(__file__).resolve().parents[2]
FAST = {"epochs": 3, "step_size": 2, "batch_size": 8, "lr": 0.01}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from tests.conftest import write_synthetic_store

    return write_synthetic_store(tmp_path_factory.mktemp("blobs") / "blobs.h5", dim=8)


def _cfg(store, **train) -> TrainConfig:
    return TrainConfig(features=str(store), **{**FAST, **train})


def test_the_paper_as_a_file_starts_and_ends_as_the_builtin(store):
    data = load_data(store)
    builtin = fit(_cfg(store), data)
    as_file = fit(_cfg(store, circuit=f"{REPO}/circuits/paper.py:paper"), data)
    assert builtin.model.state_dict().keys() == as_file.model.state_dict().keys()
    for (key, a), b in zip(builtin.history[0].items(), as_file.history[0].values(), strict=True):
        assert a == pytest.approx(b, abs=1e-7), key
    for part in ("best", "last"):
        for key in ("val_loss", "val_acc", "train_loss", "train_acc", "epoch"):
            got, want = as_file.metrics[part][key], builtin.metrics[part][key]
            assert got == pytest.approx(want, abs=1e-7), (part, key)
    for key, value in builtin.model.state_dict().items():
        torch.testing.assert_close(as_file.model.state_dict()[key], value, atol=1e-7, rtol=0)


def test_the_ring_example_equals_its_own_qnode():
    program, source = circuit_program(TrainConfig(circuit="circuits/ring.py:ring"))
    assert source.sha256 and "def ring(inputs, weights)" in source.text
    namespace: dict = {}
    exec(compile(source.text, "ring.py", "exec"), namespace)
    qnode = qml.QNode(namespace["ring"], qml.device("default.qubit", wires=4), interface="torch")
    x = torch.linspace(-1.2, 1.4, 4, dtype=torch.float64)
    w = torch.linspace(-2, 2, 48, dtype=torch.float64).reshape(program.weight_shape)
    from pipeline.simulators.program import ProgramCircuit

    out = ProgramCircuit(program)(x[None], w)[0]
    torch.testing.assert_close(out, torch.stack(qnode(x, w)), atol=1e-10, rtol=0)


def test_a_file_circuit_is_rebuilt_from_model_pt_after_the_file_changed_and_moved(
    store, tmp_path, monkeypatch
):
    circuits = tmp_path / "circuits"
    circuits.mkdir()
    shutil.copy(REPO / "circuits" / "ring.py", circuits / "ring.py")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    cfg = _cfg(store, circuit="circuits/ring.py:ring", out_dir=str(out))
    result = train_head(Params(train=cfg))
    raw = torch.load(out / "model.pt", weights_only=True)
    assert raw["circuit"]["text"] == (circuits / "ring.py").read_text()
    assert raw["circuit"]["function"] == "ring" and len(raw["circuit"]["sha256"]) == 64
    (circuits / "ring.py").write_text("raise RuntimeError('edited')\n")
    shutil.move(circuits / "ring.py", tmp_path / "elsewhere.py")
    model, _ = load_checkpoint(out / "model.pt")
    data = load_data(store)
    x = torch.as_tensor(data.val.features).double()
    with torch.no_grad():
        probs = model(x).softmax(-1).numpy()  # as training computed them
    assert (probs == result.val_probs).all()


@pytest.mark.members
@pytest.mark.parametrize(
    "circuit",
    [{"circuit": "strongly_entangling", "embedding": "iqp", "reupload": True},
     {"circuit": f"{REPO}/circuits/paper.py:paper"}],
)  # fmt: skip
def test_stack_members_equal_their_own_runs(store, circuit):
    data = load_data(store)
    cfgs = [_cfg(store, **circuit, seed=s, q_depth=2) for s in (0, 1, 2)]
    stacked = fit_ensemble(cfgs, data)
    heads = StackedHeads([m.model for m in stacked])
    assert heads.serial_reason is None  # vectorised, not one member after another
    for cfg, member in zip(cfgs, stacked, strict=True):
        alone = fit(cfg, data)
        for key, value in alone.model.state_dict().items():
            assert torch.equal(member.model.state_dict()[key], value), key
        assert (member.val_probs == alone.val_probs).all()


@pytest.mark.parametrize(
    ("text", "spec", "match"),
    [
        (None, "circuits/missing.py:ring", "circuit file 'circuits/missing.py' does not exist"),
        ("def weight_shape(n, d):\n    return (d, n)\n", "c.py:ring", "defines no function ring"),
        ("def ring(inputs, weights):\n    pass\n", "c.py:ring", "no function weight_shape"),
        (
            "import pennylane as qml\ndef weight_shape(n, d):\n    return (2,)\n"
            "def ring(inputs, weights):\n    qml.RX(weights[0, 1], wires=0)\n",
            "c.py:ring",
            r"weights of shape \(2,\) failed \(IndexError",
        ),
        (
            "import pennylane as qml\ndef weight_shape(n, d):\n    return (2,)\n"
            "def ring(inputs, weights):\n    qml.RX(inputs[0], wires=7)\n",
            "c.py:ring",
            "acts on wire 7; expected wires 0 … 3",
        ),
    ],
)
def test_a_refused_circuit_stops_train_head_before_anything_is_written(
    store, tmp_path, monkeypatch, text, spec, match
):
    monkeypatch.chdir(tmp_path)
    if text is not None:
        Path("c.py").write_text(text)
    out = tmp_path / "run"
    with pytest.raises(CircuitError, match=match):
        train_head(Params(train=_cfg(store, circuit=spec, out_dir=str(out))))
    assert not out.exists()


def test_circuit_settings_are_checked():
    with pytest.raises(ConfigError, match=r"train.embedding: expected paper, angle_x"):
        TrainConfig(embedding="amplitude")
    with pytest.raises(ConfigError, match=r"train.circuit: expected a built-in"):
        TrainConfig(circuit="ring")
    with pytest.raises(ConfigError, match=r"their defaults .* with a circuit file"):
        TrainConfig(circuit="circuits/ring.py:ring", embedding="iqp")
    with pytest.raises(ConfigError, match=r"train.backend: expected torch for a circuit"):
        TrainConfig(circuit="strongly_entangling", backend="default.qubit")


def test_default_checkpoints_do_not_record_the_circuit_keys(tiny_run):
    raw = torch.load(tiny_run / "model.pt", weights_only=True)
    assert not {"circuit", "embedding", "reupload"} & set(raw["config"]) and "circuit" not in raw


def test_predict_report_and_evaluate_take_a_file_circuit_head(
    tiny_store, tiny_root, tmp_path, monkeypatch, capsys
):
    from pipeline import evaluate as evaluate_command
    from pipeline import predict as predict_command
    from pipeline.common.config import DataConfig
    from pipeline.reports import plots

    run = tmp_path / "run"
    cfg = TrainConfig(features=str(tiny_store), out_dir=str(run), epochs=2,
                      circuit=f"{REPO}/circuits/ring.py:ring")  # fmt: skip
    train_head(Params(train=cfg))
    monkeypatch.chdir(tmp_path)  # the code's defaults, not the repository's params.yaml
    model = str(run / "model.pt")
    assert predict_command.main([str(tiny_root / "val"), "--model", model,
                                 "--set", "extract.workers=0"]) == 0  # fmt: skip
    assert len(capsys.readouterr().out.splitlines()) == 4
    result = plots.report(Params(data=DataConfig(dir=str(tiny_root))), run)
    assert result.skipped == {}
    Path("params.yaml").write_text("evaluate:\n  shots: [null]\n  depolarizing: [0.0]\n")
    assert evaluate_command.main(["--model", model]) == 0
    assert (run / "robustness.csv").is_file()
    noisy = ["--set", "evaluate.depolarizing=[0.0,0.01]", "--set", "evaluate.shots=[null,100]"]
    assert evaluate_command.main(["--model", model, *noisy]) == 0
    assert len((run / "robustness.csv").read_text().splitlines()) == 1 + 4
    exact = ["--set", "evaluate.depolarizing=[0.0,0.01]", "--set", "evaluate.readout_error=[0.02]"]
    assert evaluate_command.main(["--model", model, *exact, "--set", "evaluate.backend=torch"]) == 0
    ours = list(csv.DictReader(io.StringIO((run / "robustness.csv").read_text())))
    device = ["--set", "evaluate.backend=default.mixed"]
    assert evaluate_command.main(["--model", model, *exact, *device]) == 0
    theirs = list(csv.DictReader(io.StringIO((run / "robustness.csv").read_text())))
    assert [r["backend"] for r in theirs] == ["default.mixed"] * 2
    for a, b in zip(ours, theirs, strict=True):  # the same circuit on PennyLane's own gates
        assert (a["accuracy"], a["agreement"]) == (b["accuracy"], b["agreement"])
        assert abs(float(a["mean_abs_logit_shift"]) - float(b["mean_abs_logit_shift"])) < 1e-10
