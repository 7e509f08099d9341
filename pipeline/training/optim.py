"""Adam with a StepLR schedule for M stacked heads at once, without ``torch.optim.Optimizer``.

Every head trains through :class:`StackedOptimizer`, a single run being a stack of one: all
the members' parameters are one (M, P) tensor (:class:`pipeline.heads.stacked.StackedHeads`),
and one update moves all of them, each with its own learning rate and its own StepLR schedule
(``step_size``, ``gamma``: the float recurrence of ``torch.optim.lr_scheduler.StepLR``). The
update is elementwise, so a member's row moves exactly as it would in a stack of one.

Kinds (``train.optimizer``):

* ``adam``: torch's Adam (no weight decay, no amsgrad) through torch's own fused kernel
  (``torch.optim.adam.adam``), once per distinct learning rate in the stack, on buffers padded
  to whole vectors (the kernel's vector body and scalar tail round differently): a member's
  update is then the same in any stack; it equals ``torch.optim.Adam`` + ``StepLR`` to
  rounding (tested).
* ``pennylane_adam``: the Adam of PennyLane's early releases (up to v0.19), which the paper
  used for its spiral benchmark. It differs from Kingma & Ba's Adam, and from torch's, in
  three ways: the moments start at the first gradient, ``m_1 = g_1`` and ``v_1 = g_1**2``,
  instead of ``(1 - beta1) g_1`` and ``(1 - beta2) g_1**2`` (PennyLane fixed this in v0.20,
  PR #1929); the bias correction is still applied, as a step size
  ``lr * sqrt(1 - beta2**t) / (1 - beta1**t)``, so that for a steady gradient the step is
  about ``0.47 lr`` at t = 10 instead of ``lr``: a built-in warm-up; and PennyLane's default
  ``beta2`` is 0.99, not 0.999, with ``eps`` added to ``sqrt(v)``. One step counter ``t`` for
  all parameters (PennyLane optimised one flat vector).

``torch.optim.Optimizer.__init__`` is wrapped in ``torch._disable_dynamo``, which imports
``torch._dynamo`` on first use: about 1 s and 150 MiB on a 2-core machine, a quarter of a
whole 30-epoch ``train_head`` run; this class needs none of it.
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

    Args:
        flat: the members' parameters, one flat buffer (updated in place) whose length is a
            multiple of :data:`~pipeline.heads.stacked.PAD` (as :class:`StackedHeads` makes it).
        grad: their gradients, a buffer laid out as ``flat`` (read by :meth:`step`).
        member: (len(flat),) the member each element belongs to.
        kind: ``adam`` or ``pennylane_adam`` (``train.optimizer``).
        lr, step_size, gamma: per member, M each: the initial learning rate, and multiply it
            by ``gamma`` every ``step_size`` epochs.
        betas, eps: default: each kind's own (torch's (0.9, 0.999), PennyLane's (0.9, 0.99)).

    Example:
        >>> w, g = torch.zeros(64).double(), torch.full((64,), -2.0).double()
        >>> opt = StackedOptimizer(w, g, torch.arange(64) // 32, "adam",
        ...                        lr=[0.1, 0.2], step_size=[1, 1], gamma=[1.0, 1.0])
        >>> opt.step(); [round(x, 6) for x in w[[0, 32]].tolist()]
        [0.1, 0.2]
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
        """Each element's learning rate; for Adam, the elements of each distinct rate, and
        their moments gathered into padded buffers that the steps update in place until the
        rates change again (then they go back into ``exp_avg``/``exp_avg_sq``)."""
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
        """torch's fused Adam kernel on whole vectors: every element is treated alike."""
        step = self._step - 1  # t - 1; the kernel counts it up to t
        adam([p], [g], [m], [v], [], [step], **self._options(lr))

    def _options(self, lr: float) -> dict:
        fused = self.flat.device.type in ("cpu", "cuda")
        return {"foreach": False, "fused": fused, "amsgrad": False, "beta1": self.betas[0],
                "beta2": self.betas[1], "lr": lr, "weight_decay": 0.0, "eps": self.eps,
                "maximize": False}  # fmt: skip

    def _pennylane_step(self) -> None:
        """PennyLane's early Adam in exactly rounded elementwise operations (no fused
        multiply-add): an element's update does not depend on where it lies in the buffer."""
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
