"""The circuit a ``train`` block names: a built-in, or ``PATH.py:NAME``, a user's file.

A circuit file is a program, run by design. ``model.pt`` keeps its text, so a trained head
is rebuilt from what it was trained with, whatever became of the file since.
"""

from __future__ import annotations

import functools
import hashlib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.circuits import compiled
from pipeline.circuits.compiler import CircuitError, check_weight_shape, compile_circuit
from pipeline.common.config import CIRCUITS, TrainConfig, is_circuit_file
from pipeline.simulators.program import Program


@dataclass(frozen=True)
class CircuitFile:
    """A circuit file as read."""

    spec: str
    path: str
    function: str
    text: str
    sha256: str

    def record(self) -> dict[str, str]:
        """Plain types for ``model.pt``."""
        return {"spec": self.spec, "path": self.path, "function": self.function,
                "text": self.text, "sha256": self.sha256}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CircuitFile:
        """The circuit a ``model.pt`` recorded; its text is checked against its sha256."""
        keys = ("spec", "path", "function", "text", "sha256")
        if not isinstance(record, dict) or any(not isinstance(record.get(k), str) for k in keys):
            raise CircuitError(f"circuit record: expected the strings {', '.join(keys)}")
        if _sha256(record["text"]) != record["sha256"]:
            raise CircuitError(
                f"circuit record of {record['spec']!r}: its text does not have its sha256"
            )
        return cls(**{k: record[k] for k in keys})


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read(spec: str) -> CircuitFile:
    """Read ``PATH.py:NAME``; a :class:`CircuitError` if malformed, missing or unreadable."""
    path, _, function = spec.rpartition(":")
    if not path.endswith(".py") or not function.isidentifier():
        raise CircuitError(
            f"train.circuit: expected a built-in ({', '.join(CIRCUITS)}) or "
            f"PATH.py:FUNCTION; got {spec!r}"
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CircuitError(f"train.circuit: circuit file {path!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CircuitError(f"train.circuit: cannot read circuit file {path!r}: {exc}") from None
    return CircuitFile(spec, path, function, text, _sha256(text))


def load(source: CircuitFile) -> tuple[Any, Any]:
    """Run the file's text; return its function and ``weight_shape``."""
    module = types.ModuleType(f"circuit_{source.sha256[:12]}")
    module.__file__ = source.path
    try:
        exec(compile(source.text, source.path, "exec"), module.__dict__)  # a program by design
    except Exception as exc:
        raise CircuitError(
            f"train.circuit: circuit file {source.path!r} failed to run "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    missing = [n for n in (source.function, "weight_shape") if not callable(getattr(module, n, 0))]
    if missing:
        raise CircuitError(
            f"train.circuit: circuit file {source.path!r} defines no function "
            f"{' and no '.join(missing)}; expected def {source.function}(inputs, weights) and "
            "def weight_shape(n_qubits, q_depth)"
        )
    return getattr(module, source.function), module.weight_shape


@functools.lru_cache(maxsize=32)
def _compiled(key: tuple, source: CircuitFile | None) -> Program:
    circuit, embedding, reupload, n_qubits, q_depth = key
    name = compiled.key(circuit=circuit, embedding=embedding, reupload=reupload,
                        n_qubits=n_qubits, q_depth=q_depth,
                        text_sha256=source.sha256 if source else None)  # fmt: skip
    program = compiled.get(name)
    if program is None:
        program = _compile(key, source)
        compiled.put(name, program)
    return program


def _compile(key: tuple, source: CircuitFile | None) -> Program:
    from pipeline.circuits import builtin  # PennyLane: only when something is compiled

    circuit, embedding, reupload, n_qubits, q_depth = key
    if source is None:
        fn, shape = builtin.builtin(circuit, embedding, reupload, n_qubits, q_depth)
        return compile_circuit(fn, shape, n_qubits, name=f"train.circuit {circuit}")
    fn, weight_shape = load(source)
    try:
        shape = weight_shape(n_qubits, q_depth)
    except Exception as exc:
        raise CircuitError(
            f"train.circuit {source.spec}: weight_shape({n_qubits}, {q_depth}) failed "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    name = f"train.circuit {source.spec}"
    return compile_circuit(fn, check_weight_shape(shape, name), n_qubits, name=name)


def circuit_program(
    cfg: TrainConfig, record: dict[str, Any] | None = None
) -> tuple[Program, CircuitFile | None]:
    """The compiled circuit of ``cfg`` and, for a file, the :class:`CircuitFile` read.

    ``record``: a ``model.pt``'s circuit record, the file's text as trained, not the file.
    """
    source = None
    if is_circuit_file(cfg.circuit):
        source = CircuitFile.from_record(record) if record is not None else read(cfg.circuit)
    key = (cfg.circuit, cfg.embedding, cfg.reupload, cfg.n_qubits, cfg.q_depth)
    return _compiled(key, source), source
