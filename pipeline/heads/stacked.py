"""M heads of one shape as one model: every parameter gets a leading member dimension.

Parameters and gradients live in flat buffers, so one optimizer step updates every member.
Members never mix, so each equals its own single run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pipeline.common.config import CIRCUIT_DEFAULTS, TrainConfig
from pipeline.heads.photonic import as_kets, cv_logits
from pipeline.simulators.qubit import MATRIX_MAX_QUBITS, TorchCircuit

STACKABLE = ("linear", "classical", "quantum", "cv")
#: Flat buffers are padded to a multiple of this, so no element falls in a kernel's scalar tail.
PAD = 64


def unstackable_reason(cfg: TrainConfig) -> str | None:
    """Why heads of ``cfg`` have no vectorised stacked form, or None."""
    if cfg.head not in STACKABLE:
        return f"head {cfg.head!r} has no vectorised stacked form"
    if cfg.head == "quantum" and cfg.backend != "torch":
        return f"backend {cfg.backend!r} is a PennyLane device"
    custom = {k: getattr(cfg, k) for k in CIRCUIT_DEFAULTS} != CIRCUIT_DEFAULTS
    if cfg.head == "quantum" and cfg.n_qubits > MATRIX_MAX_QUBITS and not custom:
        return f"{cfg.n_qubits} qubits: the stacked circuit takes at most {MATRIX_MAX_QUBITS}"
    return None


def stack_kind(cfg: TrainConfig) -> str | None:
    """The ``kind`` of :class:`StackedHeads` for heads of ``cfg`` (None: not vectorised)."""
    return cfg.head if unstackable_reason(cfg) is None else None


class StackedHeads:
    """M heads of one kind and shape, trained as one model.

    Call with (M, B, D), each member's rows, or (V, D) shared; returns (M, B, C) or (M, V, C).
    """

    def __init__(self, heads: Sequence[nn.Module], kind: str | None):
        if kind is not None and kind not in STACKABLE:
            raise ValueError(f"kind: expected one of {', '.join(STACKABLE)} or None; got {kind!r}")
        if not heads:
            raise ValueError("heads: expected at least one head; got none")
        states = [h.state_dict() for h in heads]
        self.kind, self.members, self.heads = kind, len(heads), list(heads)
        self.layout: list[tuple[str, torch.Size, int, int]] = []  # name, shape, start, stop
        start = 0
        for name, value in states[0].items():
            self.layout.append((name, value.shape, start, start + len(heads) * value.numel()))
            start = self.layout[-1][3]
        for i, state in enumerate(states):
            shapes = [(k, tuple(v.shape)) for k, v in state.items()]
            if shapes != [(k, tuple(s)) for k, s, _, _ in self.layout]:
                raise ValueError(f"heads[{i}]: expected the parameters of heads[0]; got {shapes}")
        size = -(-start // PAD) * PAD
        self.flat = states[0][next(iter(states[0]))].new_zeros(size)
        for name, _, a, b in self.layout:
            self.flat[a:b] = torch.stack([s[name] for s in states]).reshape(-1)
        self.grad = torch.zeros_like(self.flat)
        self.params = self.blocks(self.flat)
        for name, block in self.params.items():  # leaves whose gradients land in self.grad
            block.requires_grad_(True)
            block.grad = self.blocks(self.grad)[name]
        # padding belongs to member 0: zeros with zero gradients stay zero
        members = torch.arange(self.members, device=self.flat.device)
        self.member_index = torch.zeros(size, dtype=torch.long, device=self.flat.device)
        for _, shape, a, b in self.layout:
            self.member_index[a:b] = members.repeat_interleave(shape.numel())
        self.circuit = None
        if kind == "quantum" and not isinstance(heads[0].circuit, TorchCircuit):
            self.circuit = heads[0].circuit  # a compiled circuit runs stacked as it is
        elif kind == "quantum":
            q_depth, n_qubits = states[0]["q_params"].shape
            circuit = TorchCircuit(n_qubits, q_depth, method="matrix")
            self.circuit = circuit.to(device=self.flat.device, dtype=self.flat.dtype)

    @property
    def n_params(self) -> int:
        """Parameters per member."""
        return self.layout[-1][3] // self.members

    def blocks(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every parameter's block (M, *shape) of a buffer laid out as :attr:`flat`."""
        return {name: flat[a:b].view(self.members, *shape) for name, shape, a, b in self.layout}

    def per_element(self, values: torch.Tensor) -> torch.Tensor:
        """Per-member values (M,) spread over the elements of :attr:`flat`."""
        return values[self.member_index]

    def member_state(self, member: int, flat: torch.Tensor | None = None) -> dict:
        """Member ``member``'s state dict (of ``flat``, default: the current weights)."""
        blocks = self.blocks(self.flat if flat is None else flat)
        return {name: block[member].detach().clone() for name, block in blocks.items()}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        if self.kind is None:  # each member's own module on its own blocks
            return torch.stack(
                [
                    torch.func.functional_call(
                        head, {k: v[m] for k, v in p.items()}, (x if x.ndim == 2 else x[m],)
                    )
                    for m, head in enumerate(self.heads)
                ]
            )  # (M, B, C)
        if self.kind == "linear":
            return _linear(x, p["weight"], p["bias"])  # (M, B, C)
        if self.kind == "cv":  # kets as real/imaginary pairs (M, B, 2c) or shared (V, 2c)
            x = x.expand(self.members, *x.shape) if x.ndim == 2 else x
            return cv_logits(p["params"], as_kets(x, x.shape[-1] // 2))  # (M, B, 2)
        h = torch.tanh(_linear(x, p["pre_net.weight"], p["pre_net.bias"]))  # (M, B, n)
        if self.kind == "classical":
            h = torch.tanh(_linear(h, p["hidden.weight"], p["hidden.bias"]))  # (M, B, n)
        else:
            h = self.circuit(h * (math.pi / 2), p["q_params"])  # (M, B, n)
        return _linear(h, p["post_net.weight"], p["post_net.bias"])  # (M, B, C)


def head_logits(model: nn.Module, cfg: TrainConfig, x: torch.Tensor) -> torch.Tensor:
    """One head's logits (N, C) as training computed them: as a stack of one, whose last
    bits may differ from the module's own forward pass."""
    with torch.no_grad():
        return StackedHeads([model], stack_kind(cfg))(x)[0]


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Each member's Linear: x (M, B, D) or shared (V, D), weight (M, K, D), bias (M, K).

    A batched product keeps a member's result independent of M; a gemm over M K rows would not.
    """
    if x.ndim == 2:
        x = x.expand(weight.shape[0], *x.shape)  # (M, V, D), a view
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))  # (M, B, K)
