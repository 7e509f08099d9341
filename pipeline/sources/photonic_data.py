"""The paper's photonic data sets (Mari et al. 2020, examples 4 and 5): QC and QQ features.

Exact in truncated Fock space, with the notebooks' random draws in their order, so the arrays
match the notebooks. Circuit A's squeezing never acted in the notebook (``Sgate(...)`` without
``| q``), so it has none here.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.common.devices import torch_threads
from pipeline.common.errors import DataError
from pipeline.common.files import file_sha256
from pipeline.simulators import fock, fock_layers

log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class PretrainedFile:
    """What a file of the paper's ``pre_trained/`` folder must be."""

    shape: tuple[int, ...]
    dtype: str
    sha256: str


#: The paper's pretrained parameters (XanaduAI/quantum-transfer-learning, ``pre_trained/``).
PRETRAINED = {
    # rows r1, r2, θ1, φ1, θ2, φ2, sq_r1, sq_φ1, sq_r2, sq_φ2, d_r1, d_φ1, d_r2, d_φ2, κ1, κ2
    "trained_params.npy": PretrainedFile(
        (16, 25), "float32", "f529b6ebd87111f6ed4de82df569c8d5e83c4d1dbc1b3bc04182e0ffc6f6037d"
    ),
    # rows sq, d, r1, r2, r3, κ; one column (one layer)
    "circuit_A.npy": PretrainedFile(
        (6, 1), "float32", "adcc41c80444b5ea5e3bb71f9a3533059007d3c8b788c603c10cc46cd64e0acd"
    ),
}

QC_CLASSES = ("L", "O", "T", "I", "S", "J", "Z")
QC_ALPHA = 1.4 * np.array([1, -1, 1, -1, 1j, -1j, 1j])  # mode 0 amplitude of class j
QC_BETA = 1.4 * np.array([1, 1, -1, -1, 1j, 1j, -1j])  # mode 1 amplitude of class j
QC_ALPHA.flags.writeable = QC_BETA.flags.writeable = False
QC_NOISE = 0.6
QC_IMAGE = 4  # features: the |n0, n1> amplitudes with n0, n1 < 4
QQ_CLASSES = ("gaussian", "non-gaussian")
QQ_BATCH = 8
#: Clip of squeezing, displacement and non-linear (Kerr, cubic) parameters in both notebooks.
CLIP = fock.CLIP


@dataclass(frozen=True)
class PhotonicSplit:
    """One split of a photonic data set."""

    features: np.ndarray  # (N, D): QC float32 (N, 16); QQ complex128 (N, cutoff)
    labels: np.ndarray  # (N,) int64


def load_pretrained(path: str | Path, name: str) -> np.ndarray:
    """One of the paper's pretrained files (``trained_params.npy``, ``circuit_A.npy``), checked.

    Raises:
        DataError: ``name`` is unknown, or the file is missing, altered or unreadable.
    """
    return load_pretrained_file(Path(path) / name, name)


def load_pretrained_file(file: str | Path, name: str) -> np.ndarray:
    """The file ``file``, checked as the paper's ``name`` (see :func:`load_pretrained`)."""
    if name not in PRETRAINED:
        raise DataError(f"unknown pretrained file {name!r}; expected one of {sorted(PRETRAINED)}")
    spec = PRETRAINED[name]
    file = Path(file)
    if not file.is_file():
        raise DataError(f"pretrained file {file} does not exist (expected sha256 {spec.sha256})")
    got = file_sha256(file)
    if got != spec.sha256:
        raise DataError(
            f"pretrained file {file} was altered: expected sha256 {spec.sha256}; got {got}"
        )
    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read pretrained file {file}: {exc}") from exc
    if array.shape != spec.shape or array.dtype != np.dtype(spec.dtype):
        raise DataError(
            f"pretrained file {file}: expected {spec.dtype} {spec.shape}; "
            f"got {array.dtype} {array.shape}"
        )
    return array


def _split_counts(n_train_batches: int, n_val_batches: int) -> dict[str, int]:
    counts = {"train": n_train_batches, "val": n_val_batches}
    for split, n in counts.items():
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n_{split}_batches: expected an integer >= 0; got {n!r}")
    return counts


def _check_cutoff(cutoff: int, low: int) -> None:
    if not isinstance(cutoff, int) or cutoff < low:
        raise ValueError(f"cutoff: expected an integer >= {low}; got {cutoff!r}")


def qc_amplitudes(
    n_train_batches: int = 1000, n_val_batches: int = 1000, *, seed: int = 100
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The noisy QC displacements: split -> ``(alpha, beta, labels)``, each (7 n_batches,).

    Drawn per batch as in the notebook; val batches follow train batches in the same stream.
    """
    counts = _split_counts(n_train_batches, n_val_batches)
    rng = np.random.RandomState(seed)
    out = {}
    for split, n_batches in counts.items():
        noise = np.empty((n_batches, 4, len(QC_CLASSES)))  # δ.real, δ.imag, ε.real, ε.imag
        for b in range(n_batches):  # the notebook's draws, one batch of the 7 classes at a time
            for k in range(4):
                noise[b, k] = rng.normal(scale=QC_NOISE, size=len(QC_CLASSES))
        alpha = (QC_ALPHA + noise[:, 0] + 1j * noise[:, 1]).reshape(-1)  # (N,)
        beta = (QC_BETA + noise[:, 2] + 1j * noise[:, 3]).reshape(-1)  # (N,)
        labels = np.tile(np.arange(len(QC_CLASSES), dtype=np.int64), n_batches)
        out[split] = (alpha, beta, labels)
    return out


def qc_input_states(alpha: np.ndarray, beta: np.ndarray, cutoff: int = 11) -> torch.Tensor:
    """Two-mode coherent states ``|alpha> ⊗ |beta>``, truncated: complex128 (N, c, c)."""
    alpha, beta = np.asarray(alpha, np.complex128), np.asarray(beta, np.complex128)
    mode0 = fock.coherent_state(np.abs(alpha), np.angle(alpha), cutoff)  # (N, c)
    mode1 = fock.coherent_state(np.abs(beta), np.angle(beta), cutoff)  # (N, c)
    return mode0[:, :, None] * mode1[:, None, :]  # (N, c, c)


def qc_layers(ket: torch.Tensor, params: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Apply Killoran et al.'s two-mode layers (columns of ``params`` (16, L)) to ``ket``.

    Per layer: BS, R, S, S, BS, R, D, D, K, K; S, D and K clipped to ±1 as in the notebook.
    """
    p = torch.as_tensor(params, dtype=torch.float64)  # (16, L)
    if p.ndim != 2 or p.shape[0] != 16:
        raise ValueError(f"params: expected shape (16, L); got {tuple(p.shape)}")
    c = ket.shape[-1]
    clip = p.clamp(-CLIP, CLIP)
    bs1, bs2 = fock.beamsplitter(p[2], p[3], c), fock.beamsplitter(p[4], p[5], c)  # (L, c⁴)
    r1, r2 = fock.rotation(p[0], c), fock.rotation(p[1], c)  # (L, c, c)
    s1, s2 = fock.squeezing(clip[6], p[7], c), fock.squeezing(clip[8], p[9], c)
    d1, d2 = fock.displacement(clip[10], p[11], c), fock.displacement(clip[12], p[13], c)
    k1, k2 = fock.kerr(clip[14], c), fock.kerr(clip[15], c)
    for i in range(p.shape[1]):
        ket = fock.apply_two_mode(bs1[i], ket)
        ket = fock.apply_one_mode(r1[i], ket, 0)
        ket = fock.apply_one_mode(s1[i], ket, 0)
        ket = fock.apply_one_mode(s2[i], ket, 1)
        ket = fock.apply_two_mode(bs2[i], ket)
        ket = fock.apply_one_mode(r2[i], ket, 0)
        ket = fock.apply_one_mode(d1[i], ket, 0)
        ket = fock.apply_one_mode(d2[i], ket, 1)
        ket = fock.apply_one_mode(k1[i], ket, 0)
        ket = fock.apply_one_mode(k2[i], ket, 1)
    return ket


def qc_image(ket: torch.Tensor) -> torch.Tensor:
    """The renormalised 4 x 4 corner of two-mode kets (..., c, c)."""
    corner = ket[..., :QC_IMAGE, :QC_IMAGE]
    norm = torch.linalg.vector_norm(corner, dim=(-2, -1), keepdim=True)
    return corner / norm


def _qc_kets(
    alpha: np.ndarray, beta: np.ndarray, params: np.ndarray, n_layers: int, cutoff: int
) -> torch.Tensor:
    """The states after A': complex128 (N, c, c)."""
    _check_cutoff(cutoff, QC_IMAGE)
    if not 0 <= n_layers <= params.shape[1]:
        raise ValueError(f"n_layers: expected 0..{params.shape[1]}; got {n_layers!r}")
    gate = fock.circuit_matrix(lambda k: qc_layers(k, params[:, :n_layers]), cutoff, 2)
    return fock.apply_two_mode(gate, qc_input_states(alpha, beta, cutoff))  # (N, c, c)


def _qc_image_features(kets: torch.Tensor) -> np.ndarray:
    image = qc_image(kets).abs()  # (N, 4, 4)
    return image.reshape(len(image), QC_IMAGE**2).numpy().astype(np.float32)


def warn_truncation(kept: torch.Tensor, cutoff: int, min_norm: float) -> None:
    """Log one warning when some squared norms ``kept`` are below ``min_norm``."""
    low = kept < min_norm
    if bool(low.any()):
        log.warning(
            "QC states at cutoff %d: %d of %d (%.1f %%) keep a squared norm below %.2f "
            "(min %.3f, mean %.3f); the paper's notebook truncated the same way at cutoff 11, "
            "a larger cutoff gives untruncated states",
            cutoff,
            int(low.sum()),
            len(kept),
            100 * float(low.double().mean()),
            min_norm,
            float(kept.min()),
            float(kept.mean()),
        )


def qc_dataset(
    params: np.ndarray,
    *,
    n_layers: int = 15,
    cutoff: int = 11,
    n_train_batches: int = 1000,
    n_val_batches: int = 1000,
    seed: int = 100,
    min_norm: float = 0.99,
    threads: int | None = 1,
) -> dict[str, PhotonicSplit]:
    """The QC data set: split -> features float32 (7 n_batches, 16), labels 0..6.

    Args:
        params: ``trained_params.npy``; its first ``n_layers`` layers are multiplied into one gate.
        min_norm: warn when a state keeps less norm² than this below the cutoff.
    """
    amplitudes = qc_amplitudes(n_train_batches, n_val_batches, seed=seed)
    out, kept = {}, []
    with torch_threads(threads):
        for split, (alpha, beta, labels) in amplitudes.items():
            kets = _qc_kets(alpha, beta, params, n_layers, cutoff)  # (N, c, c)
            kept.append(kets.abs().square().sum(dim=(-2, -1)))  # (N,)
            out[split] = PhotonicSplit(_qc_image_features(kets), labels)
    warn_truncation(torch.cat(kept), cutoff, min_norm)  # one line for all splits
    return out


@dataclass(frozen=True)
class QQDraws:
    """The random parameters of one QQ split, as the notebook draws them."""

    labels: np.ndarray  # (N,) int64: 0 Gaussian (coherent |1>), 1 non-Gaussian (Fock |1>)
    sq: np.ndarray  # (N,) squeezing magnitude, U(-0.5, 0.5)
    r1: np.ndarray  # (N,) first rotation, U(-2π, 2π)
    r2: np.ndarray  # (N,) second rotation, U(-2π, 2π)


def qq_draws(
    n_train_batches: int = 500, n_val_batches: int = 500, *, seed: int = 1
) -> dict[str, QQDraws]:
    """The QQ state parameters, drawn per batch of 8 in the notebook's order."""
    counts = _split_counts(n_train_batches, n_val_batches)
    rng = np.random.RandomState(seed)
    rot = 2 * math.pi
    out = {}
    for split, n_batches in counts.items():
        draws = np.empty((n_batches, 5, QQ_BATCH))  # label, sq, r1, r2, r3
        for b in range(n_batches):
            draws[b, 0] = rng.randint(2, size=QQ_BATCH)
            draws[b, 1] = rng.uniform(-0.5, 0.5, [QQ_BATCH, 1])[:, 0]
            for k in (2, 3, 4):  # r1, r2 and r3 (drawn, never used)
                draws[b, k] = rng.uniform(-rot, rot, [QQ_BATCH, 1])[:, 0]
        flat = draws.transpose(1, 0, 2).reshape(5, -1)  # (5, N)
        out[split] = QQDraws(flat[0].astype(np.int64), flat[1], flat[2], flat[3])
    return out


def qq_input_states(draws: QQDraws, cutoff: int = 15) -> torch.Tensor:
    """``R(r2) S(sq, 0) R(r1) D(1 - label, 0) |label>`` truncated: complex128 (N, c)."""
    _check_cutoff(cutoff, 2)
    labels = torch.as_tensor(draws.labels)
    ket = fock.fock_state(labels, cutoff)  # (N, c)
    ket = fock.apply_one_mode(fock.displacement(1.0 - labels.double(), 0.0, cutoff), ket)
    ket = fock.apply_one_mode(fock.rotation(torch.as_tensor(draws.r1), cutoff), ket)
    ket = fock.apply_one_mode(fock.squeezing(torch.as_tensor(draws.sq), 0.0, cutoff), ket)
    return fock.apply_one_mode(fock.rotation(torch.as_tensor(draws.r2), cutoff), ket)


def circuit_a_matrix(circuit_a: np.ndarray, cutoff: int = 15) -> torch.Tensor:
    """The frozen circuit A (``circuit_A.npy``) as a complex128 gate (c, c), without squeezing."""
    params = torch.as_tensor(np.asarray(circuit_a), dtype=torch.float64).T  # (1, 6)
    return fock_layers.one_mode_layers(params, cutoff, squeeze=False)


def qq_dataset(
    circuit_a: np.ndarray,
    *,
    cutoff: int = 15,
    n_train_batches: int = 500,
    n_val_batches: int = 500,
    seed: int = 1,
    threads: int | None = 1,
) -> dict[str, PhotonicSplit]:
    """The QQ data set: split -> circuit A's output kets (8 n_batches, c), not renormalised."""
    _check_cutoff(cutoff, 2)
    splits = qq_draws(n_train_batches, n_val_batches, seed=seed)
    out = {}
    with torch_threads(threads):
        gate = circuit_a_matrix(circuit_a, cutoff)  # (c, c)
        for split, draws in splits.items():
            kets = fock.apply_one_mode(gate, qq_input_states(draws, cutoff))  # (N, c)
            out[split] = PhotonicSplit(kets.numpy(), draws.labels)
    return out
