"""Compiled circuits kept on disk: a hit is the program a fresh compilation makes, loads
neither the circuit file nor PennyLane, and a damaged entry is compiled again."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.circuits import compiled
from pipeline.circuits.compiler import compile_circuit
from pipeline.circuits.source import _compile, circuit_program
from pipeline.common.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
CONFIGS = [
    TrainConfig(circuit=f"{REPO}/circuits/paper.py:paper"),
    TrainConfig(circuit=f"{REPO}/circuits/ring.py:ring", n_qubits=3, q_depth=2),
    TrainConfig(circuit="strongly_entangling", embedding="iqp", reupload=True),
    TrainConfig(circuit="simplified_two_design", embedding="angle_x", n_qubits=3),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{Path(c.circuit).name}-{c.embedding}")
def test_an_entry_holds_the_program_a_fresh_compilation_makes(cfg, tmp_path):
    program, source = circuit_program(cfg)
    key = (cfg.circuit, cfg.embedding, cfg.reupload, cfg.n_qubits, cfg.q_depth)
    fresh = _compile(key, source)
    compiled.put("k", fresh, tmp_path)
    assert compiled.get("k", tmp_path) == fresh == program


def test_a_hit_loads_neither_the_file_nor_pennylane(tmp_path):
    circuit = tmp_path / "mine.py"
    circuit.write_text((REPO / "circuits" / "ring.py").read_text() + "\nprint('RAN')\n")
    code = (
        "import sys\n"
        "from pipeline.common.config import TrainConfig\n"
        "from pipeline.circuits.source import circuit_program\n"
        f"circuit_program(TrainConfig(circuit={str(circuit) + ':ring'!r}))\n"
        "print('pennylane' in sys.modules)\n"
    )
    env = {"DVC_ROOT": str(tmp_path), "PATH": ""}
    runs = [subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, text=True,
                           capture_output=True, check=True).stdout for _ in range(2)]  # fmt: skip
    assert runs == ["RAN\nTrue\n", "False\n"]
    assert len(list((tmp_path / ".cache" / "circuits").glob("*.json"))) == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: e["program"]["gates"].append(["RX", [0], [0]]),  # not its sha256
        lambda e: e.update(sha256="0" * 64),
        lambda e: e.pop("program"),
        lambda e: e.update(program={"gates": 1}, sha256=compiled.json_sha256({"gates": 1})),
    ],
)
def test_a_damaged_entry_is_not_used(damage, tmp_path, caplog):
    program, _ = circuit_program(CONFIGS[0])
    compiled.put("k", program, tmp_path)
    path = tmp_path / "k.json"
    entry = json.loads(path.read_text())
    damage(entry)
    path.write_text(json.dumps(entry))
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        assert compiled.get("k", tmp_path) is None
    assert "damaged" in caplog.text
    path.write_text("{not json")
    assert compiled.get("k", tmp_path) is None


def test_a_program_with_expressions_is_not_kept(tmp_path):
    import pennylane as qml

    def fn(inputs, weights):
        qml.RY(2 * inputs[0] + weights[0], wires=0)

    program = compile_circuit(fn, (1,), 1, name="fn")
    assert program.expressions is not None
    compiled.put("k", program, tmp_path)
    assert not (tmp_path / "k.json").exists()
