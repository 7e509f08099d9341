"""Score a trained head over the ``evaluate`` grid of shots and noise settings.

The reference is the head run as training evaluated it (matching ``metrics.json``); each
setting swaps in a noisy or sampled circuit, seeded by the setting alone.
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
    EvaluateConfig,
    Params,
)
from pipeline.common.devices import resolve_device, torch_threads
from pipeline.heads import inputs
from pipeline.inference.grid import Head, Setting, load_head, load_val, settings
from pipeline.inference.robustness import RobustnessRow, robustness_png, score_setting
from pipeline.simulators.noisy_circuits import make_noisy_circuit
from pipeline.store import hdf5

log = logging.getLogger("pipeline")

CSV_NAME, JSON_NAME, PNG_NAME = "robustness.csv", "robustness.json", "plots/robustness.png"
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
HEAD = "head"
CHUNK = 4096  # rows per forward pass with a replaced circuit


@dataclass(frozen=True)
class Scored:
    """One setting's scores, seconds and backend."""

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
    if circuit is None:
        yield
        return
    own = model.circuit
    model.circuit = circuit
    try:
        yield
    finally:
        model.circuit = own


def logits_of(model: nn.Module, x: torch.Tensor, circuit) -> torch.Tensor:
    """Logits (N, C): the head's own (as training computed them), or with ``circuit``."""
    with torch.no_grad():
        if circuit is None:  # in one batch, as training evaluated it
            return model(x)
        with _circuit(model, circuit):
            return torch.cat([model(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)])


def backend_of(head: Head, setting: Setting, backend: str) -> str:
    """What computes a setting: the head itself, ``torch`` or a PennyLane device."""
    if not head.quantum or (backend == "auto" and setting.exact_noiseless):
        return HEAD
    return "torch" if backend == "auto" else backend


def _noisy_program(program, backend: str, setting: Setting, seed) -> nn.Module:
    if backend == "torch":
        from pipeline.simulators.noisy_program import NoisyProgramCircuit

        return NoisyProgramCircuit(program, setting.noise, shots=setting.shots, seed=seed)
    from pipeline.simulators.pennylane_program import PennyLaneProgramCircuit

    return PennyLaneProgramCircuit(backend, program, setting.noise, shots=setting.shots, seed=seed)


def build_circuits(head: Head, grid: Sequence[Setting], cfg: EvaluateConfig) -> list:
    """The circuit of every setting (None: the head's own), built before anything runs."""
    circuits = []
    for setting in grid:
        backend = backend_of(head, setting, cfg.backend)
        if backend == HEAD:
            circuits.append(None)
            continue
        seed = None if setting.shots is None else setting.seed(cfg.seed)
        program = getattr(head.model.circuit, "program", None)
        if program is not None:
            circuits.append(_noisy_program(program, backend, setting, seed))
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
    """The reference logits (N, C) and one :class:`Scored` per setting, in grid order."""
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
        exact = logits_of(model, x, None).cpu()  # (N, C)
        exact_seconds = time.perf_counter() - start
        for setting, circuit in zip(grid, circuits, strict=True):
            if circuit is None:
                logits, seconds = exact, exact_seconds
            else:
                start = time.perf_counter()
                logits = logits_of(model, x, circuit).cpu()  # (N, C)
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


@dataclass
class EvaluationResult:
    """What :func:`evaluate` scored and wrote."""

    head: Head
    features: str
    exact_accuracy: float
    metrics_val_acc: float | None
    scored: list[Scored]
    written: list[Path] = field(default_factory=list)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""  # shots: exact
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def robustness_csv(scored: Sequence[Scored]) -> str:
    """The CSV text: floats as shortest round-trip text, exact shots as an empty cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in scored:
        row = s.as_dict()
        writer.writerow([_csv_value(row[k]) for k in CSV_COLUMNS])
    return buf.getvalue()


def robustness_json(result: EvaluationResult, cfg: EvaluateConfig) -> dict[str, Any]:
    """The JSON document; ``dvc metrics show`` tabulates the mappings and skips ``rows``."""
    head = result.head
    return {
        "exact_accuracy": result.exact_accuracy,
        "accuracy": {s.setting.label: s.row.accuracy for s in result.scored},
        "run": {
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
    """Write robustness.csv, .json and plots/robustness.png; nothing if rendering fails."""
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
        model: a ``model.pt`` (None: ``<train.out_dir>/model.pt``).
        features: the feature store (None: the one ``model.pt`` records).

    Raises:
        PipelineError: not a head checkpoint, other features, or an unusable device;
            nothing is written then.
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
