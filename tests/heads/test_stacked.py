"""A head is defined once: its own forward pass is the stacked one on a stack of one, bitwise,
and each member of a larger stack computes what its head alone computes."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch

from pipeline.common.config import TrainConfig
from pipeline.heads import kinds
from pipeline.heads.base import Head
from pipeline.heads.build import build_head
from pipeline.heads.dressed import ClassicalDressedNet, LinearHead
from pipeline.heads.stacked import StackedHeads

RING = f"{Path(__file__).resolve().parents[2] / 'circuits' / 'ring.py'}:ring"
CONFIGS = {
    "quantum": TrainConfig(n_qubits=3, q_depth=2, q_delta=0.5),
    "quantum-9-qubits": TrainConfig(n_qubits=9, q_depth=2, q_delta=0.5),  # gate by gate
    "ring": TrainConfig(n_qubits=3, q_depth=2, q_delta=0.5, circuit=RING),
    "classical": TrainConfig(head="classical", n_qubits=3),
    "linear": TrainConfig(head="linear"),
    "cv": TrainConfig(head="cv", cv_layers=2, init_std=0.3),
}


def _heads(name: str, n: int, dtype=torch.float64) -> tuple[list[Head], torch.Tensor]:
    """n heads of config ``name`` (seeds 0..n-1) and inputs (n, 7, D) for them."""
    cfg, width = CONFIGS[name], 5 if name == "cv" else 10
    heads = []
    for seed in range(n):
        torch.manual_seed(seed)
        heads.append(build_head(cfg, width, 2).to(dtype))
    x = torch.randn(n, 7, 2 * width if name == "cv" else width, dtype=dtype)
    if name == "cv":  # unit kets as real/imaginary halves, so that p0 <= 1
        x = x / x.norm(dim=-1, keepdim=True)
    return heads, x


@pytest.mark.members
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_heads_forward_is_its_stack_of_one_bitwise(name, dtype):
    (head,), x = _heads(name, 1, dtype)
    alone = head(x[0])
    logits = StackedHeads([head])(x[0])  # shared rows (V, D)
    assert logits.shape == (1, 7, 2) and torch.equal(logits[0].detach(), alone.detach())
    assert torch.equal(StackedHeads([head])(x)[0].detach(), alone.detach())  # (M, B, D)
    alone.sum().backward()  # and the gradients of the one definition agree too
    stack = StackedHeads([head])
    stack(x[0]).sum().backward()
    for key, param in head.named_parameters():
        assert torch.equal(stack.blocks(stack.grad)[key][0], param.grad), key


@pytest.mark.members
@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_member_computes_what_its_head_alone_computes(name):
    heads, x = _heads(name, 3)
    stack = StackedHeads(heads)
    assert stack.serial_reason is None  # one batched pass for every member
    together, shared = stack(x), stack(x[1])
    # the photonic layers' complex kernels round in the last bit by stack size
    tolerance = {"rtol": 0, "atol": 1e-12} if name == "cv" else {"rtol": 0, "atol": 0}
    for m, head in enumerate(heads):
        torch.testing.assert_close(together[m], head(x[m]), **tolerance)
        torch.testing.assert_close(shared[m], head(x[1]), **tolerance)


def test_a_pennylane_head_runs_its_members_one_after_another():
    cfg = TrainConfig(n_qubits=2, q_depth=1, backend="default.qubit")
    heads = [build_head(cfg, 4, 2).double() for _ in range(2)]
    stack = StackedHeads(heads)
    assert stack.serial_reason == "backend 'default.qubit' is a PennyLane device"
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    logits = stack(x)
    for m, head in enumerate(heads):
        assert torch.equal(logits[m].detach(), head(x[m]).detach()), m


def test_a_stack_takes_heads_of_one_class_and_shape():
    with pytest.raises(ValueError, match=r"heads\[1\]: expected .* \(LinearHead\); got Linear"):
        StackedHeads([LinearHead(4, 2), torch.nn.Linear(4, 2)])
    with pytest.raises(ValueError, match=r"heads\[1\]: .*ClassicalDressedNet"):
        StackedHeads([LinearHead(4, 2), ClassicalDressedNet(4, 3, 2)])
    with pytest.raises(ValueError, match=r"heads\[1\]: expected the parameters of heads\[0\]"):
        StackedHeads([LinearHead(4, 2), LinearHead(5, 2)])
    with pytest.raises(ValueError, match="at least one head"):
        StackedHeads([])


def test_every_head_name_has_one_kind_that_builds_it():
    names = typing.get_args(typing.get_type_hints(TrainConfig)["head"])
    assert tuple(kinds.KINDS) == names
    for name in names:
        cfg = TrainConfig(head=name)
        assert type(build_head(cfg, 4, 2)) is kinds.kind(cfg).load()
        assert not set(kinds.unused(cfg)) & set(kinds.kind(cfg).reads)
    assert kinds.unused(TrainConfig(head="quantum")) == ("cv_layers",)
    assert kinds.backend(TrainConfig(head="linear", backend="default.qubit")) == "torch"
    with pytest.raises(ValueError, match="expected quantum, classical, linear or cv; got 'x'"):
        kinds.kind(type("Cfg", (), {"head": "x"})())
