from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.heads.photonic import EPS, CVHead, as_kets, cv_logits
from pipeline.simulators import fock
from pipeline.simulators.fock_layers import one_mode_layers


def random_kets(n: int, cutoff: int, seed: int = 0) -> torch.Tensor:
    """Random normalised one-mode kets (n, cutoff), complex128."""
    g = torch.Generator().manual_seed(seed)
    kets = torch.randn(n, cutoff, dtype=torch.complex128, generator=g)
    return kets / torch.linalg.vector_norm(kets, dim=1, keepdim=True)


def test_shape_and_initialisation():
    assert CVHead.shape(4) == (4, 6)
    torch.manual_seed(0)
    head = CVHead()
    assert head.params.shape == (3, 6) and head.params.dtype == torch.float64
    assert [name for name, _ in head.named_parameters()] == ["params"]
    torch.manual_seed(0)
    assert torch.equal(CVHead().params, head.params)
    torch.manual_seed(1)
    assert not torch.equal(CVHead().params, head.params)
    torch.manual_seed(0)
    wide = CVHead(n_layers=2000).params.detach()
    assert abs(float(wide.std()) - 0.001) < 5e-5 and abs(float(wide.mean())) < 5e-5


def test_logits_are_the_papers_loss_and_decision():
    torch.manual_seed(0)
    head = CVHead(n_layers=2, cutoff=10)
    kets = random_kets(6, 10)
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    logits = head(kets)
    assert logits.shape == (6, 2) and logits.dtype == torch.float64
    circuit = one_mode_layers(head.params.detach(), 10)
    p0 = (kets @ circuit.T)[:, 0].abs().square()
    y = labels.double()
    paper = (-y * torch.log(p0 + EPS) - (1 - y) * torch.log(1 - p0 + EPS)).mean()
    torch.testing.assert_close(nn.functional.cross_entropy(logits, labels), paper)
    assert torch.equal(logits.argmax(1), (p0 > 0.5).long())


def test_readout_is_not_renormalised():
    head = CVHead(n_layers=1, cutoff=6)
    with torch.no_grad():
        head.params.zero_()  # identity circuit
    kets = torch.zeros(2, 6, dtype=torch.complex128)
    kets[0, 0] = 0.5  # norm 0.5 (lost to truncation): p0 = 0.25, not 1
    kets[1, 0], kets[1, 3] = 0.6j, 0.8
    p0 = head.vacuum_probability(kets)
    torch.testing.assert_close(p0, torch.tensor([0.25, 0.36], dtype=torch.float64))
    torch.testing.assert_close(head(kets)[:, 1], torch.log(p0 + EPS))


def test_layers_act_in_the_notebooks_order():
    head = CVHead(n_layers=1, cutoff=12)
    sq, d, r1, r2, r3, kappa = 0.3, 0.5, 0.2, -0.7, 1.1, 0.4
    with torch.no_grad():
        head.params.copy_(torch.tensor([[sq, d, r1, r2, r3, kappa]]))
    ket = fock.coherent_state(0.8, 0.3, 12)[None]  # (1, 12)
    for gate in (
        fock.rotation(r1, 12),
        fock.squeezing(sq, 0.0, 12),
        fock.rotation(r2, 12),
        fock.displacement(d, 0.0, 12),
        fock.rotation(r3, 12),
        fock.cubic_phase(kappa, 12),
    ):
        ket = fock.apply_one_mode(gate, ket)
    expected = ket[:, 0].abs().square()
    torch.testing.assert_close(
        head.vacuum_probability(fock.coherent_state(0.8, 0.3, 12)[None]), expected
    )


def test_real_imaginary_pairs_and_complex64():
    torch.manual_seed(0)
    head = CVHead(n_layers=2, cutoff=8)
    kets = random_kets(5, 8)
    pairs = torch.cat([kets.real, kets.imag], dim=1)  # (5, 16) float64
    torch.testing.assert_close(head(pairs), head(kets))
    low = head(kets.to(torch.complex64))
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, head(kets).float(), rtol=1e-4, atol=1e-5)


def test_shape_errors():
    head = CVHead(n_layers=1, cutoff=6)
    with pytest.raises(
        ValueError, match=r"expected complex kets \(B, 6\).*; got torch.complex128 \(3, 7\)"
    ):
        head(torch.zeros(3, 7, dtype=torch.complex128))
    with pytest.raises(ValueError, match=r"\(B, 12\); got torch.float64 \(3, 6\)"):
        head(torch.zeros(3, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"got torch.complex128 \(6,\)"):
        head(torch.zeros(6, dtype=torch.complex128))
    with pytest.raises(ValueError, match="n_layers: expected an integer >= 1; got 0"):
        CVHead(n_layers=0)
    with pytest.raises(ValueError, match=r"cutoff: expected an integer >= 2; got 1\.5"):
        CVHead(cutoff=1.5)
    head.params = nn.Parameter(torch.zeros(2, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"expected params of shape \(1, 6\); got \(2, 6\)"):
        head(torch.zeros(3, 6, dtype=torch.complex128))


def test_gradients_match_finite_differences():
    kets = random_kets(3, 6)
    params = 0.3 * torch.randn(
        2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    head = CVHead(n_layers=2, cutoff=6)

    def logits(p: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(head, {"params": p}, (kets,))

    assert torch.autograd.gradcheck(logits, (params.requires_grad_(),), eps=1e-6, atol=1e-6)


def test_training_separates_fock_from_coherent_states():
    # class 1: |1>, class 0: coherent |1> (dataset B without its random Gaussian part)
    kets = torch.stack([fock.fock_state(1, 8), fock.coherent_state(1.0, 0.0, 8)])  # (2, 8)
    labels = torch.tensor([1, 0])
    torch.manual_seed(0)
    head = CVHead(n_layers=2, cutoff=8)
    opt = torch.optim.Adam(head.parameters(), lr=0.2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(head(kets), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert head(kets).argmax(1).tolist() == [1, 0]


def _reference_logits(params: torch.Tensor, kets: torch.Tensor) -> torch.Tensor:
    """The head's logits from the full circuit matrix (the gates multiplied one by one)."""
    circuit = one_mode_layers(params, kets.shape[-1])  # (c, c)
    p0 = (kets @ circuit[0]).abs().square()  # (B,)
    return torch.stack([torch.log(1 - p0 + EPS), torch.log(p0 + EPS)], dim=1)


@pytest.mark.parametrize("scale", [0.001, 0.5, 2.0])
def test_logits_and_gradients_equal_the_full_circuit_to_1e_12(scale):
    kets = random_kets(16, 15, seed=2)
    labels = torch.arange(16) % 2
    params = scale * torch.randn(
        3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5)
    )
    fast = params.clone().requires_grad_()
    slow = params.clone().requires_grad_()
    got, want = cv_logits(fast, kets), _reference_logits(slow, kets)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    nn.functional.cross_entropy(got, labels).backward()
    nn.functional.cross_entropy(want, labels).backward()
    torch.testing.assert_close(fast.grad, slow.grad, rtol=0, atol=1e-12)


def test_stacked_members_equal_separate_heads():
    g = torch.Generator().manual_seed(1)
    weights = 0.3 * torch.randn(5, 2, 6, dtype=torch.float64, generator=g)  # M = 5 heads
    kets = random_kets(7, 9, seed=3)  # shared (B, c)
    per_member = torch.stack([random_kets(7, 9, seed=10 + i) for i in range(5)])  # (M, B, c)
    shared, own = cv_logits(weights, kets), cv_logits(weights, per_member)
    assert shared.shape == own.shape == (5, 7, 2)
    labels = torch.arange(7) % 2
    for i in range(5):
        head = CVHead(n_layers=2, cutoff=9)
        with torch.no_grad():
            head.params.copy_(weights[i])
        torch.testing.assert_close(shared[i], head(kets), rtol=0, atol=1e-12)
        torch.testing.assert_close(own[i], head(per_member[i]), rtol=0, atol=1e-12)
        stacked = weights.clone().requires_grad_()
        loss = nn.functional.cross_entropy(cv_logits(stacked, kets)[i], labels)
        loss.backward()
        nn.functional.cross_entropy(head(kets), labels).backward()
        torch.testing.assert_close(stacked.grad[i], head.params.grad, rtol=0, atol=1e-12)
        assert stacked.grad[torch.arange(5) != i].abs().max() == 0  # members are independent
    one = cv_logits(weights[0], per_member)  # one head on (M, B, c) kets: broadcast the other way
    torch.testing.assert_close(one[3], cv_logits(weights[0], per_member[3]), rtol=0, atol=0)


def test_as_kets_and_cv_logits_input_errors():
    pairs = torch.tensor([[[0.6, 0.0, 0.0, 0.8]]], dtype=torch.float64)  # (1, 1, 2c), c = 2
    assert as_kets(pairs, 2).tolist() == [[[0.6 + 0j, 0.8j]]]
    with pytest.raises(ValueError, match=r"\(B, 3\).*\(B, 6\); got torch.float64 \(1, 1, 4\)"):
        as_kets(pairs, 3)
    with pytest.raises(ValueError, match=r"kets: expected complex \(\.\.\., B, c\); got"):
        cv_logits(torch.zeros(1, 6, dtype=torch.float64), pairs)
