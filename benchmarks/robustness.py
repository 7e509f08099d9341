"""Benchmark scoring a head under finite shots and depolarizing noise (not a test; run by hand).

    python benchmarks/robustness.py [--samples 153] [--repeats 3] [--plot robustness.png]

The ``evaluate`` block's default grid: shots [exact, 100, 1000, 10000] x depolarizing
[0, 0.001, 0.01, 0.05] on 153 samples (the size of the ants/bees validation split), 4 qubits,
depth 6, with random pre-computed circuit angles (the tanh * pi/2 range), random weights and a
random Linear(4 -> 2) post-net (the classical layers cost nothing next to the circuit).

Prints the scores of each setting, the median of ``--repeats`` wall times of the whole grid on
the torch path (one density matrix per noise level, then one sampling call per shot count, all
batched over the samples) for 1 and 2 torch threads, and, for one setting, the torch path
against PennyLane's ``default.mixed`` running the same op list by parameter broadcasting.
"""

from __future__ import annotations

import argparse
import math

import torch
from timing import median_seconds

from pipeline.inference.robustness import RobustnessRow, plot_robustness, score_setting
from pipeline.simulators.noise import NoiseModel, basis_probabilities
from pipeline.simulators.noisy_circuits import NoisyPennyLaneCircuit
from pipeline.simulators.shots import expectations, sample_expectations, z_expectations

SHOTS = (None, 100, 1000, 10000)
DEPOLARIZING = (0.0, 0.001, 0.01, 0.05)


def problem(samples: int, n_qubits: int, q_depth: int, seed: int = 0):
    """Angles (B, n), weights (depth, n), a post-net Linear(n -> 2) and labels (B,)."""
    torch.manual_seed(seed)
    x = torch.tanh(torch.randn(samples, n_qubits, dtype=torch.float64)) * (math.pi / 2)
    w = (torch.rand(q_depth, n_qubits, dtype=torch.float64) * 2 - 1) * math.pi
    post = torch.nn.Linear(n_qubits, 2).double()
    with torch.no_grad():
        exact = post(expectations(x, w))
    labels = exact.argmax(1)
    wrong = torch.rand(samples) < 0.1  # a head that is about 90 % right
    labels[wrong] = 1 - labels[wrong]
    return x, w, post, labels


@torch.no_grad()
def run_grid(x, w, post, labels, seed: int = 0) -> tuple[list[RobustnessRow], torch.Tensor]:
    """Score every setting of the grid; returns the rows and the exact noiseless logits."""
    exact = post(expectations(x, w))  # (B, 2)
    rows = []
    for i, p in enumerate(DEPOLARIZING):
        probs = basis_probabilities(x, w, NoiseModel(depolarizing=p))  # (B, 2^n)
        for j, shots in enumerate(SHOTS):
            if shots is None:
                z = z_expectations(probs)  # (B, n)
            else:
                z = sample_expectations(probs, shots, generator=seed + 10 * i + j)
            rows.append(score_setting(exact, labels, post(z), shots=shots, depolarizing=p))
    return rows, exact


def one_setting(x, w, p: float, shots: int | None, repeats: int) -> list[tuple[str, float]]:
    """Seconds for one setting: torch against default.mixed (built once, as a scorer would)."""
    noise = NoiseModel(depolarizing=p)
    mixed = NoisyPennyLaneCircuit("default.mixed", x.shape[1], w.shape[0], noise, shots=shots)
    if shots is None:
        diff = (mixed(x, w) - expectations(x, w, noise)).abs().max().item()
        print(f"  default.mixed vs torch, p = {p}, exact: max |difference| {diff:.1e}")
    torch_s = median_seconds(lambda: expectations(x, w, noise, shots=shots, generator=0), repeats)
    mixed_s = median_seconds(lambda: mixed(x, w), repeats)
    what = f"p = {p}, {'exact' if shots is None else f'{shots} shots'}"
    return [(f"torch, one setting ({what})", torch_s), (f"default.mixed ({what})", mixed_s)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=153)
    parser.add_argument("--qubits", type=int, default=4)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs")
    parser.add_argument("--plot", help="also write the robustness plot to this PNG")
    args = parser.parse_args()
    x, w, post, labels = problem(args.samples, args.qubits, args.depth)
    rows, exact = run_grid(x, w, post, labels)
    exact_accuracy = (exact.argmax(1) == labels).double().mean().item()
    print(
        f"{args.samples} samples, {args.qubits} qubits, depth {args.depth}, torch "
        f"{torch.__version__}; exact noiseless accuracy {exact_accuracy:.1%}"
    )
    print(f"  {'shots':>6} {'p':>6} {'accuracy':>9} {'95 % CI':>15} {'agree':>6} {'|shift|':>8}")
    for r in rows:
        shots = "exact" if r.shots is None else str(r.shots)
        print(
            f"  {shots:>6} {r.depolarizing:>6g} {r.accuracy:>9.1%} "
            f"{f'{r.ci_low:.1%}..{r.ci_high:.1%}':>15} {r.agreement:>6.1%} "
            f"{r.mean_abs_logit_shift:>8.4f}"
        )
    timings = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        grid = median_seconds(lambda: run_grid(x, w, post, labels), args.repeats)
        timings.append((f"torch, whole grid of {len(rows)} settings, {threads} thread(s)", grid))
    torch.set_num_threads(1)
    for shots in (None, 1000):
        timings += one_setting(x, w, 0.01, shots, args.repeats)
    print(f"wall seconds, median of {args.repeats}:")
    for name, seconds in timings:
        print(f"  {name:<58} {seconds:9.4f} s")
    if args.plot:
        print(f"plot: {plot_robustness(rows, exact_accuracy, args.plot)}")


if __name__ == "__main__":
    main()
