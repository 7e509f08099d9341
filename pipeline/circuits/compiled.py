"""Compiled circuits kept on disk, under ``.cache/circuits`` of the project (in ``$DVC_ROOT``
when DVC runs the command), so that a circuit compiled once is not recorded again: on a hit
neither the circuit file nor PennyLane is loaded.

An entry is a JSON file named by the SHA-256 of all that compiling reads (the circuit's name
or file text, embedding, re-uploading, qubits, depth, the compiler's source and PennyLane's
version); it holds the program and the program's own SHA-256. An entry that does not parse,
check or match its SHA-256 is compiled again and replaced. Programs with traced expressions
(angles computed from inputs and weights) are not kept: they are code, not data.
"""

from __future__ import annotations

import functools
import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline.common.files import json_sha256, project_cache, source_digest, write_text
from pipeline.simulators.program import GATES, Gate, Program

log = logging.getLogger("pipeline")

#: The modules whose code decides what a circuit compiles to.
CODE = [
    "circuits/builtin.py",
    "circuits/compiler.py",
    "circuits/source.py",
    "simulators/program.py",
]


def default_root() -> Path:
    """``.cache/circuits`` of the project: under ``$DVC_ROOT`` when DVC runs the command."""
    return project_cache("circuits")


@functools.cache
def _code_digest() -> str:
    return source_digest(CODE)


def key(**parts: Any) -> str:
    """The entry name of a compilation of ``parts`` (plain values) by this code."""
    versions = {"code": _code_digest(), "pennylane": metadata.version("pennylane")}
    return json_sha256({**parts, **versions})


def _plain(program: Program) -> dict[str, Any]:
    return {
        "n_qubits": program.n_qubits,
        "weight_shape": list(program.weight_shape),
        "gates": [[g.name, list(g.wires), list(g.params)] for g in program.gates],
        "sources": [list(s) for s in program.sources],
        "observables": [[c, [list(p) for p in word]] for c, word in program.observables],
    }


def _program(plain: dict[str, Any]) -> Program:
    """The program of :func:`_plain`'s output; a ValueError (or Key/TypeError) if malformed."""
    n = plain["n_qubits"]
    gates = tuple(Gate(str(name), tuple(map(int, wires)), tuple(map(int, params)))
                  for name, wires, params in plain["gates"])  # fmt: skip
    if not isinstance(n, int) or any(
        g.name not in GATES or not all(0 <= w < n for w in g.wires) for g in gates
    ):
        raise ValueError("gates outside the gate set or the wires")
    sources = tuple((str(s[0]), *s[1:]) for s in plain["sources"])
    observables = tuple((float(c), tuple((int(w), str(p)) for w, p in word))
                        for c, word in plain["observables"])  # fmt: skip
    shape = tuple(int(d) for d in plain["weight_shape"])
    return Program(n, shape, gates, sources, observables)


def get(name: str, root: Path | None = None) -> Program | None:
    """The entry's program, or None when there is none or it is damaged (logged)."""
    path = (root or default_root()) / f"{name}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("compiled circuit %s unreadable (%s): compiling again", path, exc)
        return None
    try:
        if json_sha256(entry["program"]) != entry["sha256"]:
            raise ValueError("its program does not have its sha256")
        return _program(entry["program"])
    except (KeyError, TypeError, ValueError) as exc:
        why = f"no {exc}" if isinstance(exc, KeyError) else exc
        log.warning("compiled circuit %s is damaged (%s): compiling again", path, why)
        return None


def put(name: str, program: Program, root: Path | None = None) -> None:
    """Keep ``program`` as entry ``name``; a program with expressions, or a cache that cannot
    be written (a warning), is not kept."""
    if program.expressions is not None:
        return
    plain = _plain(program)
    path = (root or default_root()) / f"{name}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({"program": plain, "sha256": json_sha256(plain)}) + "\n")
    except OSError as exc:
        log.warning("compiled circuit not kept in %s: %s", path.parent, exc)
