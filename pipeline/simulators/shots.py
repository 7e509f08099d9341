"""Readout error and finite shots on the noisy circuit's basis probabilities, in torch."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.common.errors import ConfigError, PipelineError
from pipeline.simulators.noise import NOISELESS, SECTION, NoiseModel, basis_probabilities


def _z_signs(n_qubits: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(2^n, n): 1 - 2 bit_i(k), wire 0 the most significant bit."""
    k = torch.arange(2**n_qubits, device=device)
    bits = (k[:, None] >> torch.arange(n_qubits - 1, -1, -1, device=device)[None, :]) & 1
    return (1 - 2 * bits).to(dtype)


def _check_probabilities(probs: torch.Tensor) -> int:
    """n_qubits of a batch of basis-state distributions (B, 2^n)."""
    if not isinstance(probs, torch.Tensor) or probs.ndim != 2 or not probs.is_floating_point():
        got = (
            f"{tuple(probs.shape)} {probs.dtype}"
            if isinstance(probs, torch.Tensor)
            else type(probs).__name__
        )
        raise PipelineError(f"expected floating-point probabilities of shape (B, 2^n); got {got}")
    dim = probs.shape[1]
    if dim < 2 or dim & (dim - 1):
        raise PipelineError(f"expected probabilities of shape (B, 2^n); got {tuple(probs.shape)}")
    tol = 1e-9 if probs.dtype == torch.float64 else 1e-5
    sums = probs.sum(dim=1)
    if not bool(torch.isfinite(probs).all()) or bool((probs < -tol).any()):
        raise PipelineError("expected finite, non-negative probabilities")
    if bool(((sums - 1).abs() > tol * dim).any()):
        raise PipelineError(f"expected probabilities that sum to 1; got sums {sums.tolist()[:8]}")
    return dim.bit_length() - 1


def check_shots(shots: int | None, *, optional: bool = False) -> int | None:
    if shots is None and optional:
        return None
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        expected = "a positive integer or null" if optional else "a positive integer"
        raise ConfigError(f"{SECTION}.shots: expected {expected}; got {shots!r}")
    return int(shots)


def make_generator(generator: torch.Generator | int | None, device: torch.device):
    """A torch.Generator: as given, seeded from an int, or None for torch's global one."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, (int, np.integer)):
        raise ConfigError(f"{SECTION}.seed: expected an integer; got {generator!r}")
    return torch.Generator(device=device).manual_seed(int(generator))


def readout_probabilities(probs: torch.Tensor, readout_error: float) -> torch.Tensor:
    """Distribution (B, 2^n) of the read bits when each bit flips with probability q."""
    n = _check_probabilities(probs)
    q = NoiseModel(readout_error=readout_error).readout_error
    if q == 0.0:
        return probs
    batch, dim = probs.shape
    for wire in range(n):
        zero, one = probs.reshape(batch, 2**wire, 2, -1).unbind(2)  # (B, 2^wire, 2^(n-wire-1))
        probs = torch.stack([(1 - q) * zero + q * one, q * zero + (1 - q) * one], 2)
        probs = probs.reshape(batch, dim)
    return probs


def z_expectations(probs: torch.Tensor) -> torch.Tensor:
    """Exact ``<Z_i>`` (B, n) of basis-state distributions (B, 2^n)."""
    n = _check_probabilities(probs)
    return probs @ _z_signs(n, probs.dtype, probs.device)  # (B, n)


def sample_counts(
    probs: torch.Tensor, shots: int, *, generator: torch.Generator | int | None = None
) -> torch.Tensor:
    """Counts (B, 2^n) of ``shots`` draws per row; ``generator``: a Generator, a seed or None.

    n rounds of conditional binomials down the tree of basis states: cost independent of ``shots``.
    """
    n = _check_probabilities(probs)
    shots = check_shots(shots)
    gen = make_generator(generator, probs.device)
    probs = probs.to(torch.float64).clamp(min=0.0)
    batch = probs.shape[0]
    counts = torch.full((batch, 1), float(shots), dtype=torch.float64, device=probs.device)
    for level in range(n):
        mass = probs.reshape(batch, 2 ** (level + 1), -1).sum(-1)  # (B, 2^(level + 1))
        zero, total = mass[:, 0::2], mass[:, 0::2] + mass[:, 1::2]  # (B, 2^level)
        p_zero = torch.where(total > 0, zero / total, 0.0).clamp(0.0, 1.0)  # 0/0: no counts
        counts_zero = torch.binomial(counts, p_zero, generator=gen)  # (B, 2^level)
        counts = torch.stack([counts_zero, counts - counts_zero], -1).reshape(batch, -1)
    return counts.to(torch.int64)


def sample_expectations(
    probs: torch.Tensor,
    shots: int,
    *,
    readout_error: float = 0.0,
    generator: torch.Generator | int | None = None,
) -> torch.Tensor:
    """Finite-shot estimates (B, n) of ``<Z_i>`` after readout; variance (1 - <Z_i>²) / shots."""
    read = readout_probabilities(probs, readout_error)
    counts = sample_counts(read, shots, generator=generator)  # (B, 2^n)
    n = probs.shape[1].bit_length() - 1
    signs = _z_signs(n, torch.float64, probs.device)  # (2^n, n)
    return (counts.to(torch.float64) @ signs / shots).to(probs.dtype)  # (B, n)


def expectations(
    inputs: torch.Tensor,
    weights: torch.Tensor,
    noise: NoiseModel = NOISELESS,
    *,
    shots: int | None = None,
    generator: torch.Generator | int | None = None,
) -> torch.Tensor:
    """``<Z_i>`` (B, n) of the noisy circuit: exact for ``shots=None``, else sampled."""
    shots = check_shots(shots, optional=True)
    probs = basis_probabilities(inputs, weights, noise)  # (B, 2^n)
    if shots is None:
        return z_expectations(readout_probabilities(probs, noise.readout_error))
    return sample_expectations(probs, shots, readout_error=noise.readout_error, generator=generator)
