"""The paper's variational qubit circuit (Mari et al. 2020) and its simulators.

H on every wire, ``RY(x_i)``, then ``q_depth`` layers of CNOTs on (0,1), (2,3), …, on (1,2),
(3,4), … and ``RY(w[k, i])``; outputs ``<Z_i>``; wire 0 is the most significant bit.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from pipeline.common.errors import ConfigError

Method = Literal["auto", "matrix", "gates"]

#: Largest qubit count for which ``method="auto"`` builds the 2^n x 2^n circuit matrix.
MATRIX_MAX_QUBITS = 8


def shape(n_qubits: int, q_depth: int) -> tuple[int, int]:
    """Shape of the circuit weights: one RY angle per layer and wire."""
    return (q_depth, n_qubits)


def _bits(n_qubits: int) -> torch.Tensor:
    k = torch.arange(2**n_qubits)
    return (k[:, None] >> torch.arange(n_qubits - 1, -1, -1)[None, :]) & 1


def cnot_permutation(n_qubits: int) -> torch.Tensor:
    """Basis permutation ``pi`` of one entangling layer: ``C|k> = |pi[k]>``."""
    bits = _bits(n_qubits).clone()  # (2^n, n)
    for first in (0, 1):
        for control in range(first, n_qubits - 1, 2):
            bits[:, control + 1] ^= bits[:, control]
    weights = 2 ** torch.arange(n_qubits - 1, -1, -1)
    return (bits * weights).sum(dim=1)


class TorchCircuit(nn.Module):
    """Exact batched statevector simulation in torch: ``circuit(x, w)`` -> ``<Z_i>`` (B, n).

    ``method="matrix"`` builds the weights-only part as one 2^n x 2^n matrix with analytic
    gradients, for small circuits; ``"gates"`` applies gate by gate, memory linear in 2^n.
    """

    def __init__(self, n_qubits: int, q_depth: int, method: Method = "auto"):
        super().__init__()
        if n_qubits < 1 or q_depth < 0:
            raise ValueError(f"expected n_qubits >= 1 and q_depth >= 0; got {n_qubits}, {q_depth}")
        if method not in ("auto", "matrix", "gates"):
            raise ValueError(f"expected method 'auto', 'matrix' or 'gates'; got {method!r}")
        self.n_qubits, self.q_depth = n_qubits, q_depth
        self.method = (
            ("matrix" if n_qubits <= MATRIX_MAX_QUBITS else "gates") if method == "auto" else method
        )
        n, dim = n_qubits, 2**n_qubits
        bits = _bits(n)  # (2^n, n)
        perm = cnot_permutation(n)
        # <Z_i> = sum_k |psi_k|^2 (1 - 2 bit_i(k))
        self.register_buffer("z_signs", (1.0 - 2 * bits), persistent=False)  # (2^n, n)
        # RY(x) H|0> = cos(x/2 + pi/4)|0> + cos(x/2 - pi/4)|1>
        self.register_buffer(
            "input_phases",
            torch.tensor([math.pi / 4, -math.pi / 4], dtype=torch.float64),
            persistent=False,
        )
        # RY(t) = [[cos t/2, -sin t/2], [sin t/2, cos t/2]] row-major, each as cos(t/2 + phase)
        self.register_buffer(
            "ry_phases",
            torch.tensor([0.0, math.pi / 2, -math.pi / 2, 0.0], dtype=torch.float64),
            persistent=False,
        )
        if self.method == "matrix":
            # RY(pi) on each wire as a signed bit flip, stacked: (n * 2^n, 2^n)
            flip = torch.arange(dim)[None, :] ^ (1 << torch.arange(n - 1, -1, -1))[:, None]
            signed_flips = torch.zeros(n * dim, dim)
            signed_flips[torch.arange(n * dim), flip.reshape(-1)] = (2.0 * bits.T - 1).reshape(-1)
            self.register_buffer("flips", signed_flips, persistent=False)
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inverse_perm", torch.argsort(perm), persistent=False)

    def extra_repr(self) -> str:
        return f"n_qubits={self.n_qubits}, q_depth={self.q_depth}, method={self.method!r}"

    def product_state(self, angles: torch.Tensor) -> torch.Tensor:
        """Encoded input states (..., 2^n) for angles (..., n)."""
        phases = self.input_phases.to(angles.dtype)
        amp = torch.cos(angles.unsqueeze(-1) * 0.5 + phases)  # (..., n, 2)
        return _kron(amp.unsqueeze(-2)).squeeze(-2)  # (..., 2^n)

    def _ry_entries(self, weights: torch.Tensor) -> torch.Tensor:
        phases = self.ry_phases.to(weights.dtype)
        return torch.cos(weights.unsqueeze(-1) * 0.5 + phases)  # (..., n, 4)

    def layer_matrices(self, weights: torch.Tensor) -> torch.Tensor:
        """Matrices (..., 2^n, 2^n) of the RY(weights) layers, for weights (..., n)."""
        return _kron(self._ry_entries(weights).unflatten(-1, (2, 2)))

    def unitary(self, weights: torch.Tensor) -> torch.Tensor:
        """The weights-only part of the circuit as a (2^n, 2^n) real orthogonal matrix."""
        eye = torch.eye(2**self.n_qubits, dtype=weights.dtype, device=weights.device)
        rows = self._apply_layers(eye.unsqueeze(0), weights.unsqueeze(0))[0]  # rows are U|k>
        return rows.T

    def _apply_layers(self, state: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The layers of M circuits on states (M, B, 2^n), weights (M, d, n), as elementwise
        products and sums only, so a member's numbers do not depend on M."""
        n = self.n_qubits
        ry = self._ry_entries(weights)[:, :, :, None, None, None, :]  # (M, d, n, 1, 1, 1, 4)
        for layer in range(self.q_depth):
            state = state.index_select(-1, self.inverse_perm)  # CNOTs: new[pi[k]] = old[k]
            for wire in range(n):
                s0, s1 = state.unflatten(-1, (2**wire, 2, 2 ** (n - wire - 1))).unbind(-2)
                e = ry[:, layer, wire].unbind(-1)  # each (M, 1, 1, 1)
                pair = (s0 * e[0] + s1 * e[1], s0 * e[2] + s1 * e[3])
                state = torch.stack(pair, dim=-2).flatten(-3)
        return state

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``<Z_i>`` (B, n), or (M, B, n) for M stacked circuits (inputs (M, B, n), weights
        (M, d, n))."""
        d, n = shape(self.n_qubits, self.q_depth)
        if weights.ndim < 2 or tuple(weights.shape[-2:]) != (d, n):
            raise ValueError(f"expected weights of shape {(d, n)}; got {tuple(weights.shape)}")
        lead = tuple(weights.shape[:-2])  # () for one circuit, (M,) for a stack
        if x.ndim != len(lead) + 2 or x.shape[-1] != n or tuple(x.shape[:-2]) != lead:
            expected = ", ".join([*map(str, lead), "B", str(n)])
            raise ValueError(f"expected inputs of shape ({expected}); got {tuple(x.shape)}")
        if not lead:  # one circuit: a stack of one
            return self(x.unsqueeze(0), weights.unsqueeze(0))[0]
        if self.method == "matrix":
            return _MatrixCircuit.apply(x, weights, self)
        state = self._apply_layers(self.product_state(x), weights)  # (M, B, 2^n)
        probs = (state * state).unsqueeze(-2)  # (M, B, 1, 2^n)
        return (probs * self.z_signs.to(state.dtype).T).sum(-1)  # (M, B, n)


def _kron(factors: torch.Tensor) -> torch.Tensor:
    """Kronecker product over dim -3: (..., n, r, c) -> (..., r^n, c^n), factor 0 leading."""
    *lead, n, r, c = factors.shape
    out = None
    for i, factor in enumerate(factors.unbind(-3)):
        placed = [1] * (2 * n)
        placed[i], placed[n + i] = r, c
        factor = factor.reshape(*lead, *placed)  # broadcasts over the other wires
        out = factor if out is None else out * factor
    return out.reshape(*lead, r**n, c**n)


class _MatrixCircuit(torch.autograd.Function):
    """<Z> of M stacked circuits with adjoint gradients, for ``method="matrix"``.

    ``dRY(t)/dt = RY(t) RY(pi) / 2`` makes each derivative a gather of a forward state; batched
    products and gathers keep a member's numbers independent of the stack size.
    """

    @staticmethod
    def forward(ctx, x, weights, circuit: TorchCircuit):
        m = x.shape[0]
        state = circuit.product_state(x)  # (M, B, N)
        first, before = state, []
        ry_layers = circuit.layer_matrices(weights) if circuit.q_depth else x.new_empty(0)
        for layer in range(circuit.q_depth):  # ry_layers: (M, d, N, N)
            state = state.index_select(-1, circuit.inverse_perm)  # CNOTs: u = s C^T
            before.append(state)
            state = torch.bmm(state, ry_layers[:, layer].transpose(1, 2))  # (M, B, N)
        ctx.circuit = circuit
        stacked = torch.stack(before, dim=1) if before else x.new_empty(0)  # (M, d, B, N)
        ctx.save_for_backward(first, state, stacked, ry_layers)
        z = circuit.z_signs.to(state.dtype)  # (N, n)
        return torch.bmm(state * state, z.expand(m, *z.shape))  # (M, B, n)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # grad: (M, B, n)
        first, last, before, ry_layers = ctx.saved_tensors
        c: TorchCircuit = ctx.circuit
        n, dim, depth = c.n_qubits, 2**c.n_qubits, c.q_depth
        m, batch = first.shape[0], first.shape[1]
        z_t = c.z_signs.to(first.dtype).T  # (n, N)
        lam = 2 * last * torch.bmm(grad, z_t.expand(m, *z_t.shape))  # dE/ds_d (M, B, N)
        afters = [None] * depth
        for layer in range(depth - 1, -1, -1):
            afters[layer] = torch.bmm(lam, ry_layers[:, layer])  # a_l = dE/du_l (M, B, N)
            lam = afters[layer].index_select(-1, c.perm)  # dE/ds_l = a_l C
        flips = c.flips.to(first.dtype).T  # (N, n N): v -> [flip_i(v) for each wire i]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            flipped = torch.bmm(first, flips.expand(m, *flips.shape))  # (M, B, n N)
            grad_x = 0.5 * (flipped.view(m, batch, n, dim) * lam.unsqueeze(2)).sum(-1)  # (M,B,n)
        if ctx.needs_input_grad[1] and depth:
            u = before.reshape(m, depth * batch, dim)  # (M, d B, N)
            flipped = torch.bmm(u, flips.expand(m, *flips.shape)).view(m, depth, batch, n, dim)
            after = torch.stack(afters, dim=1).unsqueeze(3)  # (M, d, B, 1, N)
            grad_w = 0.5 * (flipped * after).sum((2, 4))  # (M, d, n)
        elif ctx.needs_input_grad[1]:
            grad_w = torch.zeros(m, 0, n, dtype=first.dtype, device=first.device)
        return grad_x, grad_w, None


def installed_pennylane_devices() -> list[str]:
    import pennylane as qml  # lazily: torch paths never need it

    return sorted(qml.plugin_devices)


class PennyLaneCircuit(nn.Module):
    """The same circuit as a PennyLane QNode, batched by parameter broadcasting.

    Shots and shift-rule gradients cannot use broadcast tapes: those batches are split per sample.
    """

    def __init__(
        self,
        device: str,
        n_qubits: int,
        q_depth: int,
        *,
        diff_method: str = "best",
        shots: int | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        import pennylane as qml  # lazily: torch paths never need it

        if device not in qml.plugin_devices:
            raise ConfigError(
                f"train.backend: unknown backend {device!r}; expected 'torch' or an installed "
                f"PennyLane device: {', '.join(installed_pennylane_devices())}"
            )
        self.n_qubits, self.q_depth, self.device_name = n_qubits, q_depth, device
        dev = (
            qml.device(device, wires=n_qubits)
            if shots is None
            else qml.device(device, wires=n_qubits, seed=seed)
        )

        def circuit(inputs, weights):
            for wire in range(n_qubits):
                qml.Hadamard(wires=wire)
            for wire in range(n_qubits):
                qml.RY(inputs[..., wire], wires=wire)
            for layer in range(q_depth):
                for first in (0, 1):
                    for control in range(first, n_qubits - 1, 2):
                        qml.CNOT(wires=[control, control + 1])
                for wire in range(n_qubits):
                    qml.RY(weights[layer, wire], wires=wire)
            return [qml.expval(qml.PauliZ(wire)) for wire in range(n_qubits)]

        qnode = qml.QNode(circuit, dev, interface="torch", diff_method=diff_method)
        if shots is not None:
            qnode = qml.set_shots(qnode, shots=shots)
        if shots is not None or diff_method not in ("best", "backprop", "adjoint", "device"):
            qnode = qml.transforms.broadcast_expand(qnode)
        self.qnode = qnode

    def extra_repr(self) -> str:
        return f"device={self.device_name!r}, n_qubits={self.n_qubits}, q_depth={self.q_depth}"

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # PennyLane's torch interface builds results in torch's default dtype
        previous = torch.get_default_dtype()
        torch.set_default_dtype(x.dtype)
        try:
            out = self.qnode(x, weights)  # n tensors of shape (B,)
        finally:
            torch.set_default_dtype(previous)
        return torch.stack([torch.as_tensor(o) for o in out], dim=-1).to(x.dtype)  # (B, n)


def make_circuit(
    backend: str,
    n_qubits: int,
    q_depth: int,
    *,
    diff_method: str = "best",
    shots: int | None = None,
    seed: int | None = None,
    method: Method = "auto",
) -> nn.Module:
    """``TorchCircuit`` for ``backend="torch"``, else a ``PennyLaneCircuit`` on that device."""
    if backend == "torch":
        if shots is not None:
            raise ConfigError("train.shots: the torch backend is exact; expected null")
        return TorchCircuit(n_qubits, q_depth, method)
    return PennyLaneCircuit(
        backend, n_qubits, q_depth, diff_method=diff_method, shots=shots, seed=seed
    )
