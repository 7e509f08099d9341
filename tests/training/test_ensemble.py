"""Many heads in one pass: every member of a stack equals its own train_head run."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.common.config import SpiralConfig, TrainConfig, load_params
from pipeline.common.devices import torch_threads
from pipeline.extraction.loop import extract
from pipeline.heads.dressed import LinearHead
from pipeline.heads.stacked import StackedHeads
from pipeline.sources.photonic import QQSource
from pipeline.sources.spiral import SpiralSource
from pipeline.training import ensemble
from pipeline.training.data import load_data
from pipeline.training.loop import MemberFailure, TrainingError, epoch_totals, fit, fit_stack


def _members(base: TrainConfig, n: int) -> list[TrainConfig]:
    """n members that differ in every per-member setting."""
    return [
        dataclasses.replace(
            base,
            seed=s,
            lr=base.lr * (1 + 0.5 * (s % 3)),
            step_size=1 + s % 3,
            gamma=(1.0, 0.5, 0.1)[s % 3],
            q_delta=base.q_delta * (1 + s),
            loss_reduction=("mean", "sum")[s % 2],
            checkpoint=("best", "last")[(s // 2) % 2],
        )
        for s in range(n)
    ]


def _assert_equal_runs(together, configs, data):
    for cfg, member in zip(configs, together, strict=True):
        alone = fit(cfg, data, on_epoch=lambda row: None)
        assert member.history == alone.history  # every loss, accuracy and lr, exactly
        assert member.metrics == alone.metrics
        assert member.best_epoch == alone.best_epoch
        np.testing.assert_array_equal(member.val_probs, alone.val_probs)
        for name, value in alone.model.state_dict().items():
            assert torch.equal(member.model.state_dict()[name], value), name


@pytest.mark.members
@pytest.mark.parametrize("head", ["quantum", "classical", "linear"])
def test_members_equal_their_own_runs_on_the_real_features(real_store, head):
    data = load_data(real_store)
    configs = _members(TrainConfig(head=head, epochs=4), 4)
    _assert_equal_runs(ensemble.fit_ensemble(configs, data), configs, data)


@pytest.fixture(scope="module")
def spiral(tmp_path_factory):
    path = tmp_path_factory.mktemp("spiral") / "spiral.h5"
    extract(SpiralSource(SpiralConfig(n_per_class=300, n_train=500, n_val=100)), path)
    return load_data(path)


@pytest.mark.members
@pytest.mark.parametrize("head", ["quantum", "classical", "linear"])
@pytest.mark.parametrize("optimizer", ["adam", "pennylane_adam"])
def test_members_equal_their_own_runs_on_the_spiral(spiral, head, optimizer):
    """The paper's spiral settings: tiny initial weights and a large step make the training
    chaotic, so that any rounding difference would grow; the members still match exactly."""
    base = TrainConfig(
        head=head, n_qubits=5, q_depth=5, init_std=0.001, lr=0.07, batch_size=10, epochs=2,
        step_size=5, gamma=1.0, optimizer=optimizer,
    )  # fmt: skip
    configs = _members(base, 5)
    _assert_equal_runs(ensemble.fit_ensemble(configs, spiral), configs, spiral)


# The guard: every part of the stacked path (forward, loss, backward, optimizer, epoch totals,
# evaluation, the kept checkpoint) for stacks of 1, 2, 3, 7 and 64 members, every member
# against its own stack of one, on whatever host runs it: a kernel whose choice or summation
# order depends on the number of members fails here, not by chance elsewhere.

SIZES = (1, 2, 3, 7, 64)


@pytest.mark.members
@pytest.mark.parametrize("steps", [1, 13, 61, 62, 250])
def test_epoch_totals_of_a_member_do_not_depend_on_the_stack(steps):
    rng = np.random.default_rng(steps)
    losses = torch.from_numpy(rng.random((max(SIZES), steps)))
    sizes = torch.full((steps,), 4.0, dtype=torch.float64)
    sizes[-1] = 3.0
    mean = torch.from_numpy(rng.random(max(SIZES)) < 0.5)
    alone = [epoch_totals(losses[m : m + 1].clone(), sizes, mean[m : m + 1]) for m in range(64)]
    for size in SIZES:
        together = epoch_totals(losses[:size].clone(), sizes, mean[:size])
        for m in range(size):
            assert together[m].item() == alone[m].item(), (size, m)


@pytest.mark.members
@pytest.mark.parametrize(
    ("head", "optimizer", "dtype"),
    [
        ("quantum", "adam", "float64"),
        ("classical", "adam", "float64"),
        ("linear", "adam", "float64"),
        ("quantum", "pennylane_adam", "float64"),
        ("classical", "adam", "float32"),
    ],
)
def test_every_member_equals_its_stack_of_one_for_any_stack_size(
    synthetic_store, tmp_path, head, optimizer, dtype
):
    # 50 rows in batches of 4: 13 steps, the last one short
    data = load_data(synthetic_store(tmp_path / "blobs.h5", n_train=50, n_val=37, dim=24))
    base = TrainConfig(head=head, epochs=2, lr=0.05, optimizer=optimizer, dtype=dtype)
    configs = _members(base, max(SIZES))
    checked = {m for size in SIZES for m in _checked(size)}
    with torch_threads(base.threads):  # as train_head, sweep and compare run them
        alone = {m: fit_stack([configs[m]], data)[0] for m in checked}
        stacks = {size: fit_stack(configs[:size], data) for size in SIZES}
    for size, together in stacks.items():
        for m in _checked(size):
            member, expected = together[m], alone[m]
            assert member.history == expected.history, (size, m)
            np.testing.assert_array_equal(member.val_probs, expected.val_probs)
            state = expected.model.state_dict()
            for name, value in member.model.state_dict().items():
                assert torch.equal(value, state[name]), (size, m, name)


def _checked(size: int) -> list[int]:
    """Every member of a small stack; of a large one, both ends and some in between (their
    blocks lie at every alignment a small stack has and more)."""
    return list(range(size)) if size <= 8 else [0, 1, 2, 3, 5, size // 2 + 1, size - 2, size - 1]


def test_a_stack_is_one_vectorised_model():
    heads = [LinearHead(6, 3).double() for _ in range(4)]
    stack = StackedHeads(heads)
    x = torch.randn(4, 5, 6, dtype=torch.float64)
    logits = stack(x)  # (M, B, C) in one batched product
    assert logits.shape == (4, 5, 3)
    for m, head in enumerate(heads):
        torch.testing.assert_close(logits[m], head(x[m]), rtol=1e-12, atol=1e-12)
    shared = stack(x[0])  # (V, D) rows shared by every member
    torch.testing.assert_close(shared[2], heads[2](x[0]), rtol=1e-12, atol=1e-12)
    logits.sum().backward()  # one backward: each member's own gradient in the flat buffer
    weight_grads = stack.blocks(stack.grad)["weight"]
    torch.testing.assert_close(weight_grads[1], x[1].sum(0).expand(3, 6))
    assert weight_grads[0].abs().sum() > 0 and not torch.equal(weight_grads[0], weight_grads[1])


def test_groups_and_chunks(synthetic_store, tmp_path, caplog):
    data = load_data(synthetic_store(tmp_path / "blobs.h5"))
    configs = [
        TrainConfig(seed=0),
        TrainConfig(head="linear", seed=0),
        TrainConfig(seed=1, lr=0.01, gamma=0.5, q_delta=0.1),  # numbers only: same stack
        TrainConfig(seed=2, q_depth=3),  # another circuit: another stack
        TrainConfig(head="linear", seed=1, dtype="float32"),
    ]
    assert ensemble.plan(configs, data) == [[0, 2], [1], [3], [4]]
    caplog.set_level(logging.INFO, logger="pipeline")
    budget = 2 * ensemble.member_bytes(configs[0], data)
    many = [TrainConfig(seed=s) for s in range(5)]
    assert ensemble.plan(many, data, budget) == [[0, 1], [2, 3], [4]]
    assert "5 quantum heads: chunks of 2" in caplog.text


@pytest.mark.members
def test_chunks_and_mixed_shapes_give_the_same_runs(synthetic_store, tmp_path):
    data = load_data(synthetic_store(tmp_path / "blobs.h5"))
    configs = [TrainConfig(seed=s, epochs=3, head=("quantum", "linear")[s % 2]) for s in range(5)]
    whole = ensemble.fit_ensemble(configs, data)
    chunked = ensemble.fit_ensemble(configs, data, budget=1)  # one member per chunk
    for a, b in zip(whole, chunked, strict=True):
        assert a.history == b.history and a.config == b.config


def test_a_diverging_member_fails_alone(synthetic_store, tmp_path):
    data = load_data(synthetic_store(tmp_path / "blobs.h5"))
    configs = [TrainConfig(seed=s, epochs=2, head="linear", lr=0.01) for s in range(3)]
    configs[1] = dataclasses.replace(configs[1], lr=1e308)  # its weights overflow to inf, NaN
    results = ensemble.fit_ensemble(configs, data)
    assert isinstance(results[1], MemberFailure) and "diverged" in results[1].error
    for i in (0, 2):
        alone = fit(configs[i], data, on_epoch=lambda row: None)
        assert results[i].history == alone.history
    with pytest.raises(TrainingError, match=r"linear head, seed 1: the training loss diverged"):
        fit(configs[1], data, on_epoch=lambda row: None)


def test_pennylane_backends_stack_one_after_the_other(synthetic_store, tmp_path):
    data = load_data(synthetic_store(tmp_path / "blobs.h5", n_train=12, n_val=8))
    base = TrainConfig(epochs=1, n_qubits=2, q_depth=1, backend="default.qubit")
    configs = [dataclasses.replace(base, seed=s) for s in range(2)]
    together = ensemble.fit_ensemble(configs, data)
    torch_runs = ensemble.fit_ensemble(
        [dataclasses.replace(c, backend="torch") for c in configs], data
    )
    for a, b in zip(together, torch_runs, strict=True):
        for x, y in zip(a.history, b.history, strict=True):
            assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-9)


REPO = Path(__file__).resolve().parents[2]


def test_cv_members_match_their_own_runs_on_qq_kets(pretrained_dir, tmp_path):
    """The photonic head stacks too (its layers batched over members), on complex kets.

    Its complex kernels' backward passes round a member's gradient in the last bit depending
    on the stack's size, so members match their own runs to 1e-12 (accuracies exactly)
    rather than bitwise.
    """
    params = load_params(
        REPO / "params-qq.yaml",
        [f"qq.pretrained={pretrained_dir / 'circuit_A.npy'}", f"qq.out={tmp_path / 'qq.h5'}",
         "qq.n_train_batches=6", "qq.n_val_batches=4", f"train.features={tmp_path / 'qq.h5'}"],
    )  # fmt: skip
    extract(QQSource(params.qq), params.qq_out)
    data = load_data(params.features_path)
    configs = _members(dataclasses.replace(params.train, epochs=3, shuffle=True), 3)
    for cfg, member in zip(configs, ensemble.fit_ensemble(configs, data), strict=True):
        alone = fit(cfg, data, on_epoch=lambda row: None)
        for a, b in zip(member.history, alone.history, strict=True):
            assert (a["train_acc"], a["val_acc"], a["lr"]) == (
                b["train_acc"],
                b["val_acc"],
                b["lr"],
            )
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-12)
            assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-12)
        for name, value in alone.model.state_dict().items():
            torch.testing.assert_close(member.model.state_dict()[name], value, rtol=0, atol=1e-12)
