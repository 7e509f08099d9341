"""M heads of one shape as one model: every parameter gets a leading member dimension.

Parameters and gradients live in flat buffers, so one optimizer step updates every member.
The forward pass is the heads' own :meth:`pipeline.heads.base.Head.forward_stacked`; members
never mix, so each equals its own single run.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pipeline.heads.base import Head

#: Flat buffers are padded to a multiple of this, so no element falls in a kernel's scalar tail.
PAD = 64


class StackedHeads:
    """M heads of one class and shape, trained as one model.

    Call with (M, B, D), each member's rows, or (V, D) shared; returns (M, B, C) or (M, V, C).
    """

    def __init__(self, heads: Sequence[Head]):
        if not heads:
            raise ValueError("heads: expected at least one head; got none")
        for i, head in enumerate(heads):
            if not isinstance(head, Head) or type(head) is not type(heads[0]):
                raise ValueError(
                    f"heads[{i}]: expected a pipeline.heads.base.Head of the class of "
                    f"heads[0] ({type(heads[0]).__name__}); got {type(head).__name__}"
                )
        states = [h.state_dict() for h in heads]
        self.members, self.heads = len(heads), list(heads)
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

    @property
    def n_params(self) -> int:
        """Parameters per member."""
        return self.layout[-1][3] // self.members

    @property
    def serial_reason(self) -> str | None:
        """Why the members run one after another (None: as one batch)."""
        return self.heads[0].serial_reason()

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
        return self.heads[0].forward_stacked(self.params, x)  # (M, B, C)
