"""Score a trained head on noisy and finite-shot devices: the ``evaluate`` grid of settings.

How does a head trained in seconds on the exact simulator hold up with 1,000 shots, or with
1 % depolarizing noise per gate? :func:`evaluate` answers for every combination of the
``evaluate`` block's ``shots`` x ``depolarizing`` x ``amplitude_damping`` x ``readout_error``:

1. :func:`load_head` rebuilds the head from ``model.pt`` (refusing files that are not a head
   checkpoint) and :func:`load_val` reads the val split of the features it was trained on,
   refusing a file whose sha256 differs from the one the checkpoint records (naming both and
   the provenance fields that differ).
2. :func:`score_grid` runs the head exactly as training evaluated it (same device, dtype and
   chunks): the reference logits, whose accuracy is the ``val_acc`` of ``metrics.json``
   (best or last, whichever ``model.pt`` holds). Then, for each setting, it swaps the head's
   circuit for :func:`pipeline.simulators.noisy_circuits.make_noisy_circuit` of that setting
   and runs the whole split as one batch. ``backend: auto`` keeps the head's own circuit for
   the exact noiseless setting and uses the torch density-matrix simulator for the others
   (the same op list as ``default.mixed``, to 1e-12, in a fraction of the time); ``torch``
   or a PennyLane device name runs every setting there. Classical and linear heads have no
   circuit: every setting scores as the exact one, and the rows are written all the same.
3. :func:`write_outputs` writes ``robustness.csv``, ``robustness.json`` and
   ``plots/robustness.png`` into the run folder, each atomically, after all scoring is done.

Shot sampling is seeded per setting from ``evaluate.seed`` and the setting itself
(:meth:`Setting.seed`), so a row does not depend on which other settings are in the grid; the
same params give the same table, apart from the ``seconds`` column.

Example:
    >>> result = evaluate(load_params("params.yaml"))
    >>> [round(r.row.accuracy, 3) for r in result.scored][:2]
    [0.928, 0.915]
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.common import files
from pipeline.common.config import (
    CIRCUIT_DEFAULTS,
    EvaluateConfig,
    Params,
    TrainConfig,
    build_section,
)
from pipeline.common.devices import resolve_device, torch_threads
from pipeline.common.errors import ConfigError
from pipeline.heads import inputs
from pipeline.heads.stacked import head_logits
from pipeline.inference.grid import Head, Setting, load_head, load_val, settings
from pipeline.inference.robustness import RobustnessRow, robustness_png, score_setting
from pipeline.simulators.noisy_circuits import make_noisy_circuit
from pipeline.store import hdf5

log = logging.getLogger("pipeline")

CSV_NAME, JSON_NAME, PNG_NAME = "robustness.csv", "robustness.json", "plots/robustness.png"
#: Shots, depolarizing and the scores first; the other channels and the counts after them.
CSV_COLUMNS = (
    "shots",
    "depolarizing",
    "accuracy",
    "ci_low",
    "ci_high",
    "agreement",
    "mean_abs_logit_shift",
    "seconds",
    "amplitude_damping",
    "readout_error",
    "n",
    "correct",
    "backend",
)
#: ``backend`` of a row computed by the head's own circuit (as trained).
HEAD = "head"
CHUNK = 4096  # rows per forward pass with a replaced circuit


# ----------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Scored:
    """One setting's scores, the wall time of its forward pass and what computed it."""

    setting: Setting
    row: RobustnessRow
    seconds: float
    backend: str  # HEAD, "torch" or a PennyLane device name

    def as_dict(self) -> dict[str, Any]:
        seconds = round(self.seconds, 6)
        values = {**self.row.as_dict(), "seconds": seconds, "backend": self.backend}
        return {k: values[k] for k in CSV_COLUMNS}


@contextlib.contextmanager
def _circuit(model: nn.Module, circuit: nn.Module | None) -> Iterator[None]:
    """``model.circuit`` replaced by ``circuit`` inside the block (None: left as it is)."""
    if circuit is None:
        yield
        return
    own = model.circuit
    model.circuit = circuit
    try:
        yield
    finally:
        model.circuit = own


def logits_of(head: Head, model: nn.Module, x: torch.Tensor, circuit) -> torch.Tensor:
    """Logits (N, C) on x (N, D): the head's own as training computed them
    (:func:`pipeline.heads.stacked.head_logits`), or with ``circuit`` in place of its own."""
    if circuit is None:
        return head_logits(model, build_section("train", TrainConfig, head.ckpt["config"]), x)
    with _circuit(model, circuit), torch.no_grad():
        return torch.cat([model(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)])


def backend_of(head: Head, setting: Setting, backend: str) -> str:
    """What computes a setting: the head itself (no circuit, or auto's exact noiseless
    setting), the torch density matrix (auto's other settings, or ``torch``), or a device."""
    if not head.quantum or (backend == "auto" and setting.exact_noiseless):
        return HEAD
    return "torch" if backend == "auto" else backend


def _noisy_program(head: Head, program, backend: str, setting: Setting, seed) -> nn.Module:
    from pipeline.simulators.noisy_program import NoisyProgramCircuit

    if backend != "torch":
        custom = {k: head.ckpt["config"].get(k, v) for k, v in CIRCUIT_DEFAULTS.items()}
        raise ConfigError(
            f"evaluate.backend: {head.path} was trained with the circuit {custom}, which the "
            f"torch density matrix simulates; expected auto or torch; got {backend!r}"
        )
    return NoisyProgramCircuit(program, setting.noise, shots=setting.shots, seed=seed)


def build_circuits(head: Head, grid: Sequence[Setting], cfg: EvaluateConfig) -> list:
    """The circuit of every setting (None: the head's own), built before anything runs.

    Args:
        head: the head (its ``n_qubits`` and ``q_depth`` size the circuits).
        grid: the settings (:func:`settings`).
        cfg: ``backend`` and ``seed`` are read.

    Returns:
        One module per setting, called as ``circuit(x (B, n), w (depth, n)) -> <Z> (B, n)``,
        or None where :func:`backend_of` says the head's own circuit.

    Raises:
        ConfigError: an unknown device (the message lists the installed ones), or one that
            cannot simulate the noise (the message names one that can).
    """
    circuits = []
    for setting in grid:
        backend = backend_of(head, setting, cfg.backend)
        if backend == HEAD:
            circuits.append(None)
            continue
        seed = None if setting.shots is None else setting.seed(cfg.seed)
        program = getattr(head.model.circuit, "program", None)
        if program is not None:  # a compiled circuit: its own operation list, noisy
            circuits.append(_noisy_program(head, program, backend, setting, seed))
            continue
        n_qubits, q_depth = head.ckpt["config"]["n_qubits"], head.ckpt["config"]["q_depth"]
        circuits.append(
            make_noisy_circuit(
                backend, n_qubits, q_depth, setting.noise, shots=setting.shots, seed=seed
            )
        )
    return circuits


def score_grid(
    head: Head, split: hdf5.FeatureSplit, cfg: EvaluateConfig
) -> tuple[torch.Tensor, list[Scored]]:
    """The reference logits and one :class:`Scored` per setting of :func:`settings`.

    The head runs on the device and in the dtype it was trained with (``train.device``,
    ``train.dtype``), in ``cfg.threads`` torch threads.

    Args:
        head: from :func:`load_head`; split: from :func:`load_val`; cfg: the grid.

    Returns:
        ``(exact_logits (N, C) on the CPU, rows in grid order)``.

    Raises:
        ConfigError: see :func:`build_circuits`; raised before any setting runs.

    Example:
        >>> head = load_head("runs/head/model.pt")
        >>> exact, scored = score_grid(head, load_val(head), EvaluateConfig(shots=(None, 100)))
        >>> [s.setting.label for s in scored][:2], scored[0].backend
        (['p=0 exact', 'p=0 100 shots'], 'head')
    """
    cfg_train = head.ckpt["config"]
    device = resolve_device(cfg_train.get("device", "cpu"))
    dtype = next(head.model.parameters()).dtype
    model = head.model.to(device)
    x = inputs.as_tensor(split.features, device, dtype)  # (N, D); kets (N, 2c)
    labels = split.labels  # (N,)
    grid = settings(cfg)
    circuits = build_circuits(head, grid, cfg)
    scored = []
    with torch_threads(cfg.threads):
        start = time.perf_counter()
        exact = logits_of(head, model, x, None).cpu()  # (N, C)
        exact_seconds = time.perf_counter() - start
        for setting, circuit in zip(grid, circuits, strict=True):
            if circuit is None:  # the head's own circuit: the reference itself, computed once
                logits, seconds = exact, exact_seconds
            else:
                start = time.perf_counter()
                logits = logits_of(head, model, x, circuit).cpu()  # (N, C)
                seconds = time.perf_counter() - start
            row = score_setting(
                exact,
                labels,
                logits,
                shots=setting.shots,
                depolarizing=setting.noise.depolarizing,
                amplitude_damping=setting.noise.amplitude_damping,
                readout_error=setting.noise.readout_error,
            )
            scored.append(Scored(setting, row, seconds, backend_of(head, setting, cfg.backend)))
            log.info(
                "%-28s %-8s accuracy %.4f [%.4f, %.4f]  agreement %.4f  |shift| %.2e  %.3f s",
                setting.label,
                scored[-1].backend,
                row.accuracy,
                row.ci_low,
                row.ci_high,
                row.agreement,
                row.mean_abs_logit_shift,
                seconds,
            )
    return exact, scored


# ----------------------------------------------------------------------------- outputs


@dataclass
class EvaluationResult:
    """What :func:`evaluate` scored and wrote."""

    head: Head
    features: str
    exact_accuracy: float  # of the head's own exact logits
    metrics_val_acc: float | None  # metrics.json's val_acc of the kept epoch, if found
    scored: list[Scored]
    written: list[Path] = field(default_factory=list)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""  # shots: exact
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def robustness_csv(scored: Sequence[Scored]) -> str:
    """The CSV text: a header of :data:`CSV_COLUMNS`, one row per setting.

    Floats are written as Python's shortest round-trip text, exact shots as an empty cell.

    Example:
        >>> robustness_csv(result.scored).splitlines()[1]
        ',0.0,0.9281045751633987,0.8754...,...,1.0,0.0,0.000412,0.0,0.0,153,142,head'
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in scored:
        row = s.as_dict()
        writer.writerow([_csv_value(row[k]) for k in CSV_COLUMNS])
    return buf.getvalue()


def robustness_json(result: EvaluationResult, cfg: EvaluateConfig) -> dict[str, Any]:
    """The JSON document: the rows as in the CSV, and an ``accuracy`` map for DVC.

    ``dvc metrics show`` lists the values of nested mappings and skips lists, so the rows
    (a list) stay out of its table, and ``exact_accuracy``, ``accuracy`` (setting label ->
    accuracy, e.g. ``"p=0.01 1000 shots"``) and the short ``run`` facts make its columns.
    ``run.random_init`` is true for features of a random-init backbone: their accuracies
    mean nothing (the plot says so in red).
    """
    head = result.head
    return {
        "exact_accuracy": result.exact_accuracy,
        "accuracy": {s.setting.label: s.row.accuracy for s in result.scored},
        "run": {  # short values: DVC shows each in its table
            "head": head.kind,
            "checkpoint": head.which,
            "epoch": head.ckpt.get("epoch"),
            "metrics_val_acc": result.metrics_val_acc,
            "backend": cfg.backend,
            "seed": cfg.seed,
            "random_init": hdf5.is_random_init(head.ckpt["features"]),
        },
        "columns": list(CSV_COLUMNS),
        "rows": [s.as_dict() for s in result.scored],
    }


def write_outputs(result: EvaluationResult, cfg: EvaluateConfig, run_dir: Path) -> list[Path]:
    """Write robustness.csv, robustness.json and plots/robustness.png, each atomically.

    The PNG is rendered before any file is written, so a failure leaves the folder as it was.

    Returns:
        The three paths, in that order.

    Example:
        >>> write_outputs(result, params.evaluate, Path("runs/head"))[0]
        PosixPath('runs/head/robustness.csv')
    """
    note = None
    if hdf5.is_random_init(result.head.ckpt["features"]):
        note = hdf5.RANDOM_INIT_WARNING
    png = robustness_png([s.row for s in result.scored], result.exact_accuracy, cfg.dpi, note)
    doc = robustness_json(result, cfg)
    outputs = {
        run_dir / CSV_NAME: robustness_csv(result.scored).encode(),
        run_dir / JSON_NAME: files.json_text(doc).encode(),
        run_dir / PNG_NAME: png,
    }
    files.write_all(outputs)
    return list(outputs)


def _metrics_val_acc(head: Head) -> float | None:
    """``val_acc`` of the kept epoch in the ``metrics.json`` beside ``model.pt``, if any."""
    path = head.path.parent / "metrics.json"
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))[head.which]["val_acc"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_exact(result: EvaluationResult) -> None:
    acc, recorded = result.exact_accuracy, result.metrics_val_acc
    if recorded is None:
        log.warning(
            "no metrics.json with %s.val_acc beside %s", result.head.which, result.head.path
        )
    elif acc != recorded:
        log.warning(
            "exact accuracy %r differs from metrics.json's %s.val_acc %r (another device or "
            "library version than training?)",
            acc,
            result.head.which,
            recorded,
        )
    else:
        log.info("exact accuracy %.4f equals metrics.json's %s.val_acc", acc, result.head.which)


def evaluate(
    params: Params, model: str | Path | None = None, features: str | Path | None = None
) -> EvaluationResult:
    """Score the head of ``model`` over the ``evaluate`` grid; write the outputs beside it.

    Args:
        params: the ``evaluate`` block is read, and ``train.out_dir`` for the default model.
        model: a ``model.pt`` (None: ``<train.out_dir>/model.pt``, placeholders filled in).
        features: the feature store to read (None: the one ``model.pt`` records).

    Returns:
        An :class:`EvaluationResult`; ``written`` lists the three files.

    Raises:
        PipelineError: not a head checkpoint, features other than the head's, an unknown
            device or one that cannot simulate the noise; nothing is written then.
    """
    cfg = params.evaluate
    head = load_head(model if model is not None else params.model_path)
    split = load_val(head, features)
    if split.meta.random_init:
        log.warning("%s", hdf5.RANDOM_INIT_WARNING)
    grid = settings(cfg)
    log.info(
        "%s head %s (%s epoch %s) on %d val rows of %s: %d settings, backend %s",
        head.kind,
        head.path,
        head.which,
        head.ckpt.get("epoch"),
        len(split),
        split.meta.path,
        len(grid),
        cfg.backend,
    )
    if not head.quantum:
        log.info("the %s head has no quantum circuit: every setting scores exactly", head.kind)
    elif head.ckpt["config"].get("shots") is not None:
        log.warning(
            "the head samples %s shots in its own circuit (train.shots): its reference logits "
            "are not exact",
            head.ckpt["config"]["shots"],
        )
    exact, scored = score_grid(head, split, cfg)
    correct = int((exact.argmax(dim=1).numpy() == split.labels).sum())
    result = EvaluationResult(
        head, split.meta.path, correct / len(split), _metrics_val_acc(head), scored
    )
    _check_exact(result)
    result.written = write_outputs(result, cfg, head.path.parent)
    log.info("wrote %s", ", ".join(str(p) for p in result.written))
    return result
