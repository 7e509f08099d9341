"""Benchmark stage two on cached features of the real set (not a test; run by hand).

    python benchmarks/train_head.py [--features features/hymenoptera-resnet18.h5]

Seconds per training epoch (244 images, paper settings) for:
  * the PennyLane demo's head, reimplemented here as the baseline: one default.qubit QNode
    call per sample in a Python loop (float32, as the demo);
  * this project's PennyLane backend: default.qubit with parameter broadcasting, and
    lightning.qubit with adjoint differentiation;
  * this project's torch backend at batch 4 (the paper's), 32 and full batch;
then the wall time and peak memory of the whole ``python -m pipeline.train_head`` process for
30 epochs at the paper's settings. If the features file is missing it is extracted first
with ``extract.weights: none`` (timing does not depend on the weight values).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from timing import peak_mib, run_module

from pipeline.common.config import TrainConfig
from pipeline.training.data import HeadData, load_data
from pipeline.training.loop import fit

REPO = Path(__file__).resolve().parents[1]


def demo_head_epoch_seconds(data: HeadData, epochs: int = 2) -> float:
    """The demo's DressedQuantumNet: a per-sample QNode loop, float32, batch 4, Adam 4e-4.

    Returns the fastest of ``epochs`` epochs, as the other rows are best-of too.
    """
    import pennylane as qml

    n_qubits, q_depth, q_delta = 4, 6, 0.01
    dev = qml.device("default.qubit", wires=n_qubits)

    @qml.qnode(dev, interface="torch")
    def quantum_net(q_input_features, q_weights_flat):
        q_weights = q_weights_flat.reshape(q_depth, n_qubits)
        for idx in range(n_qubits):
            qml.Hadamard(wires=idx)
        for idx, element in enumerate(q_input_features):
            qml.RY(element, wires=idx)
        for k in range(q_depth):
            for i in range(0, n_qubits - 1, 2):
                qml.CNOT(wires=[i, i + 1])
            for i in range(1, n_qubits - 1, 2):
                qml.CNOT(wires=[i, i + 1])
            for idx, element in enumerate(q_weights[k]):
                qml.RY(element, wires=idx)
        return tuple(qml.expval(qml.PauliZ(position)) for position in range(n_qubits))

    class DemoDressedQuantumNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pre_net = torch.nn.Linear(512, n_qubits)
            self.q_params = torch.nn.Parameter(q_delta * torch.randn(q_depth * n_qubits))
            self.post_net = torch.nn.Linear(n_qubits, 2)

        def forward(self, input_features):
            q_in = torch.tanh(self.pre_net(input_features)) * math.pi / 2.0
            q_out = torch.Tensor(0, n_qubits)
            for elem in q_in:
                q_out_elem = torch.hstack(quantum_net(elem, self.q_params)).float().unsqueeze(0)
                q_out = torch.cat((q_out, q_out_elem))
            return self.post_net(q_out)

    torch.manual_seed(42)
    model = DemoDressedQuantumNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=4e-4)
    x = torch.as_tensor(data.train.features)
    y = torch.as_tensor(data.train.labels)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(y))
        for i in range(0, len(y), 4):
            idx = order[i : i + 4]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return min(times)


def ours_epoch_seconds(data: HeadData, repeats: int, **train) -> float:
    """Best of ``repeats`` runs of pipeline.training.loop.fit: its training seconds per epoch."""
    cfg = TrainConfig(**train)
    return min(
        fit(cfg, data, on_epoch=lambda row: None).timing["train_seconds_per_epoch"]
        for _ in range(repeats)
    )


def whole_process(features: Path, out_dir: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `python -m pipeline.train_head`, 30 paper epochs."""
    cmd = [
        "pipeline.train_head",
        "--params",
        str(REPO / "params.yaml"),
        "--set",
        f"train.features={features}",
        "--set",
        f"train.out_dir={out_dir}",
        "--set",
        "train.device=cpu",
    ]
    wall, stderr = run_module(cmd, peak=True)
    return wall, peak_mib(stderr)[0]


def torch_import_baseline() -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a process that only imports torch."""
    code = "import runpy, sys, torch; print(runpy.run_path(sys.argv[1])['peak_rss_mib']())"
    script = str(REPO / "benchmarks" / "peak_rss.py")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, script], capture_output=True, text=True, check=True
    )
    return time.perf_counter() - start, float(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default=str(REPO / "features" / "hymenoptera-resnet18.h5"))
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/hymenoptera_data"))
    parser.add_argument("--repeats", type=int, default=5, help="best-of for the torch backend")
    args = parser.parse_args()
    features = Path(args.features)
    if not features.exists():
        from pipeline.common.config import DataConfig, ExtractConfig
        from pipeline.extraction.loop import extract_images as extract

        extract(DataConfig(dir=args.data), ExtractConfig(weights="none", out=str(features)))
    data = load_data(features)
    n = len(data.train)
    print(
        f"{n} train / {len(data.val)} val rows, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; seconds per training epoch:"
    )
    rows = [("demo head: per-sample default.qubit QNode loop", demo_head_epoch_seconds(data))]
    one = dict(epochs=1, device="cpu")
    rows.append(
        (
            "default.qubit, parameter broadcasting, batch 4",
            ours_epoch_seconds(data, 1, backend="default.qubit", **one),
        )
    )
    rows.append(
        (
            "lightning.qubit, adjoint, batch 4",
            ours_epoch_seconds(data, 1, backend="lightning.qubit", diff_method="adjoint", **one),
        )
    )
    for batch in (4, 32, n):
        rows.append(
            (
                f"torch backend (ours), batch {batch}",
                ours_epoch_seconds(data, args.repeats, epochs=10, batch_size=batch, device="cpu"),
            )
        )
    baseline = rows[0][1]
    for name, seconds in rows:
        print(f"  {name:<50} {seconds:9.4f} s   {baseline / seconds:7.1f}x")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        wall, peak = whole_process(features, Path(tmp) / "run")
    torch_wall, torch_peak = torch_import_baseline()
    print(
        f"python -m pipeline.train_head, 30 epochs, paper settings: {wall:.2f} s wall, "
        f"peak RSS {peak:.0f} MiB (`import torch` alone: {torch_wall:.2f} s, {torch_peak:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
