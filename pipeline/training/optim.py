"""Adam with a StepLR schedule for M stacked heads, as one elementwise update of one flat tensor.

Each member has its own rate and schedule and moves exactly as in a stack of one; no
``torch.optim.Optimizer``, whose constructor imports ``torch._dynamo``. ``adam`` is torch's fused
kernel on buffers padded to whole vectors (its vector body and scalar tail round differently);
``pennylane_adam`` is PennyLane's Adam up to v0.19 (moments start at ``g_1`` and ``g_1**2``,
``beta2`` 0.99), as the paper's spiral benchmark used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.optim.adam import adam

from pipeline.heads.stacked import PAD

KINDS = ("adam", "pennylane_adam")


class StackedOptimizer:
    """Adam (``adam`` or ``pennylane_adam``) for M stacked members, with StepLR per member.

    ``flat`` holds all members' parameters (updated in place, length a multiple of
    :data:`~pipeline.heads.stacked.PAD`), ``grad`` their gradients alike, ``member`` each element's
    member; ``lr``, ``step_size``, ``gamma`` are per member.
    """

    def __init__(
        self,
        flat: torch.Tensor,
        grad: torch.Tensor,
        member: torch.Tensor,
        kind: str,
        *,
        lr: Sequence[float],
        step_size: Sequence[int],
        gamma: Sequence[float],
        betas: tuple[float, float] | None = None,
        eps: float = 1e-8,
    ):
        if kind not in KINDS:
            raise ValueError(f"train.optimizer: expected adam or pennylane_adam; got {kind!r}")
        if len(flat) % PAD or len(grad) != len(flat) or len(member) != len(flat):
            raise ValueError(
                f"expected flat, grad and member buffers of one length, a multiple of {PAD}; "
                f"got {len(flat)}, {len(grad)}, {len(member)}"
            )
        if not len(lr) == len(step_size) == len(gamma):
            raise ValueError(
                f"expected lr, step_size and gamma for every member; got {len(lr)}, "
                f"{len(step_size)}, {len(gamma)}"
            )
        self.flat, self.grad, self.member, self.kind, self.eps = flat, grad, member, kind, eps
        self.betas = betas or ((0.9, 0.999) if kind == "adam" else (0.9, 0.99))
        options = {"dtype": torch.float64, "device": flat.device}
        self.lr = torch.tensor(list(lr), **options)  # (M,) this epoch's learning rates
        self.gamma = torch.tensor(list(gamma), **options)
        self.step_size = torch.tensor(list(step_size), device=flat.device)
        self.epoch, self.t = 0, 0
        self.exp_avg = torch.zeros_like(flat)
        self.exp_avg_sq = torch.zeros_like(flat)
        self._step = torch.zeros((), dtype=torch.float32, device=flat.device)  # the kernel's t
        self._groups: list[tuple[float, torch.Tensor | None, int]] = []
        self._moments: list[tuple[torch.Tensor, torch.Tensor]] = []  # per group, padded
        self._rates()

    def zero_grad(self) -> None:
        self.grad.zero_()

    def end_epoch(self) -> None:
        """Advance every member's StepLR schedule by one epoch."""
        self.epoch += 1
        due = self.epoch % self.step_size == 0  # (M,): StepLR's own recurrence
        if bool(due.any()):
            self.lr = torch.where(due, self.lr * self.gamma, self.lr)
            self._rates()

    def _rates(self) -> None:
        """Each element's rate; for Adam, each rate's elements and moments in padded buffers."""
        groups = self._groups if self._moments else []  # one rate: the moments are in place
        for (_, idx, _), moments in zip(groups, self._moments, strict=True):
            for target, value in zip((self.exp_avg, self.exp_avg_sq), moments, strict=True):
                target.index_copy_(0, idx, value[: len(idx)])
        self._element_lr = self.lr[self.member].to(self.flat.dtype)  # (len(flat),)
        rates = self.lr.unique().tolist()
        self._groups, self._moments = [], []
        if len(rates) > 1 and self.kind == "adam":  # PennyLane's step is elementwise
            for rate in rates:
                idx = (self._element_lr == rate).nonzero().squeeze(1)
                size = -(-len(idx) // PAD) * PAD
                self._groups.append((rate, idx, size))
                moments = (self.exp_avg, self.exp_avg_sq)
                self._moments.append(tuple(self._padded(t, idx, size) for t in moments))
        else:
            self._groups.append((rates[0], None, len(self.flat)))

    @torch.no_grad()
    def step(self) -> None:
        """One update of every member."""
        self.t += 1
        if self.kind == "pennylane_adam":
            self._pennylane_step()
            return
        if len(self._groups) == 1:  # one rate: the whole (padded) buffer at once
            adam([self.flat], [self.grad], [self.exp_avg], [self.exp_avg_sq], [], [self._step],
                 **self._options(self._groups[0][0]))  # fmt: skip
            return
        self._step += 1
        for (rate, idx, size), moments in zip(self._groups, self._moments, strict=True):
            # each rate's elements, padded to whole vectors (the padding stays zero throughout)
            param, grad = (self._padded(t, idx, size) for t in (self.flat, self.grad))
            self._adam(param, grad, *moments, rate)
            self.flat.index_copy_(0, idx, param[: len(idx)])

    @staticmethod
    def _padded(t: torch.Tensor, idx: torch.Tensor, size: int) -> torch.Tensor:
        out = t.new_zeros(size)
        out[: len(idx)] = t.index_select(0, idx)
        return out

    def _adam(self, p, g, m, v, lr: float) -> None:
        step = self._step - 1  # t - 1; the kernel counts it up to t
        adam([p], [g], [m], [v], [], [step], **self._options(lr))

    def _options(self, lr: float) -> dict:
        fused = self.flat.device.type in ("cpu", "cuda")
        return {"foreach": False, "fused": fused, "amsgrad": False, "beta1": self.betas[0],
                "beta2": self.betas[1], "lr": lr, "weight_decay": 0.0, "eps": self.eps,
                "maximize": False}  # fmt: skip

    def _pennylane_step(self) -> None:
        """PennyLane's early Adam, elementwise without fused multiply-add: position-independent."""
        g, m, v, t = self.grad, self.exp_avg, self.exp_avg_sq, self.t
        beta1, beta2 = self.betas
        if t == 1:  # the moments start at the first gradient
            m.copy_(g)
            v.copy_(g * g)
        else:
            m.mul_(beta1).add_(g * (1 - beta1))
            v.mul_(beta2).add_(g * g * (1 - beta2))
        lr_t = self._element_lr.mul(math.sqrt(1 - beta2**t)).div_(1 - beta1**t)
        self.flat.sub_(lr_t.mul_(m.div(v.sqrt().add_(self.eps))))
