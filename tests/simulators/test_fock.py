from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.simulators import fock, fock_layers

# Killoran et al. (2018), tetrominos_learning.py: the 4 x 4 target images, cells (n0, n1)
TETROMINOES = {
    "L": {(0, 0), (1, 0), (2, 0), (2, 1)},
    "O": {(0, 0), (1, 1), (0, 1), (1, 0)},
    "T": {(0, 0), (0, 1), (0, 2), (1, 1)},
    "I": {(0, 0), (1, 0), (2, 0), (3, 0)},
    "S": {(1, 0), (1, 1), (0, 1), (0, 2)},
    "J": {(0, 1), (1, 1), (2, 1), (2, 0)},
    "Z": {(0, 0), (0, 1), (1, 1), (1, 2)},
}


def ladder(cutoff: int) -> torch.Tensor:
    """Annihilation operator truncated to ``cutoff``, complex128."""
    return torch.diag(torch.arange(1, cutoff, dtype=torch.float64).sqrt(), 1).to(torch.complex128)


def test_coherent_state_and_displacement_closed_forms():
    r = torch.tensor([[0.0, 0.7], [-1.3, 2.0]], dtype=torch.float64)  # r < 0 allowed
    phi = torch.tensor([0.4, -2.1], dtype=torch.float64)
    alpha = r * torch.exp(1j * phi)  # (2, 2)
    expected = torch.stack(
        [alpha**n / math.sqrt(math.factorial(n)) for n in range(12)], -1
    ) * torch.exp(-(alpha.abs()[..., None] ** 2) / 2)  # (2, 2, 12)
    d = fock.displacement(r, phi, 12)  # (2, 2, 12, 12)
    assert d.shape == (2, 2, 12, 12) and d.dtype == torch.complex128
    torch.testing.assert_close(d[..., :, 0], expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fock.coherent_state(r, phi, 12), expected, rtol=1e-12, atol=1e-14)
    # D(-alpha) = D(alpha)^† exactly (also in truncation): r -> -r
    torch.testing.assert_close(fock.displacement(-r, phi, 12), d.conj().transpose(-1, -2))


def test_squeezed_vacuum_closed_form():
    r, theta = 0.8, 1.1
    column = fock.squeezing(r, theta, 14)[:, 0]
    for n in range(14):
        if n % 2:
            assert column[n] == 0
            continue
        k = n // 2
        value = (
            (1 / math.cosh(r)) ** 0.5
            * (-complex(math.cos(theta), math.sin(theta)) * math.tanh(r)) ** k
            * math.sqrt(math.factorial(n))
            / (2**k * math.factorial(k))
        )
        assert abs(complex(column[n]) - value) < 1e-14, n


def test_beamsplitter_on_single_photons_and_conservation():
    theta, phi = 0.3, 0.9
    bs = fock.beamsplitter(theta, phi, 5)  # [m, n, p, q] = <m, n|BS|p, q>
    e = complex(math.cos(phi), math.sin(phi))
    one_zero = fock.fock_state(1, 5)[:, None] * fock.fock_state(0, 5)[None, :]  # |1, 0>
    out = fock.apply_two_mode(bs, one_zero)
    expected = torch.zeros(5, 5, dtype=torch.complex128)
    expected[1, 0], expected[0, 1] = math.cos(theta), e * math.sin(theta)
    torch.testing.assert_close(out, expected)
    out = fock.apply_two_mode(bs, one_zero.T)  # |0, 1> -> cos θ |0, 1> - e^{-iφ} sin θ |1, 0>
    expected = torch.zeros(5, 5, dtype=torch.complex128)
    expected[0, 1], expected[1, 0] = math.cos(theta), -e.conjugate() * math.sin(theta)
    torch.testing.assert_close(out, expected)
    m, n, p, q = torch.meshgrid(*[torch.arange(5)] * 4, indexing="ij")
    assert (bs[m + n != p + q] == 0).all()  # photon number is conserved


def test_beamsplitter_moves_coherent_amplitudes():
    c, alpha, beta, theta, phi = 30, 0.8 - 0.3j, 0.5j, 0.7, -1.2
    ket = fock.coherent_state(abs(alpha), np.angle(alpha), c)[:, None] * fock.coherent_state(
        abs(beta), np.angle(beta), c
    )
    out = fock.apply_two_mode(fock.beamsplitter(theta, phi, c), ket)
    t, s = math.cos(theta), complex(math.cos(phi), math.sin(phi)) * math.sin(theta)
    a2, b2 = t * alpha - s.conjugate() * beta, t * beta + s * alpha  # BS a BS† = t a - s* b
    expected = fock.coherent_state(abs(a2), np.angle(a2), c)[:, None] * fock.coherent_state(
        abs(b2), np.angle(b2), c
    )
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_rotation_and_kerr_phases():
    n = torch.arange(6, dtype=torch.float64)
    torch.testing.assert_close(
        fock.rotation(0.7, 6), torch.diag(torch.exp(1j * 0.7 * n)), rtol=0, atol=1e-15
    )
    torch.testing.assert_close(
        fock.kerr(-0.3, 6), torch.diag(torch.exp(-0.3j * n * n)), rtol=0, atol=1e-15
    )
    batch = fock.kerr(torch.tensor([0.1, 0.2]), 4)  # (2, 4, 4)
    torch.testing.assert_close(batch[1], fock.kerr(0.2, 4))


def test_gates_are_the_exact_matrix_elements_of_the_exponential():
    big, c = 70, 8
    a = ladder(big)
    alpha = 0.9 * complex(math.cos(0.4), math.sin(0.4))
    d = torch.linalg.matrix_exp(alpha * a.mH - alpha.conjugate() * a)
    torch.testing.assert_close(fock.displacement(0.9, 0.4, c), d[:c, :c], rtol=0, atol=1e-12)
    r, theta = 0.6, -0.8
    e = complex(math.cos(theta), math.sin(theta))
    s = torch.linalg.matrix_exp(0.5 * r * (e.conjugate() * a @ a - e * a.mH @ a.mH))
    torch.testing.assert_close(fock.squeezing(r, theta, c), s[:c, :c], rtol=0, atol=1e-12)
    big, c, theta, phi = 16, 5, 0.7, 1.1
    eye = torch.eye(big, dtype=torch.complex128)
    a, b = torch.kron(ladder(big), eye), torch.kron(eye, ladder(big))  # mode 0 leading
    e = complex(math.cos(phi), math.sin(phi))
    generator = theta * (e * a @ b.mH - e.conjugate() * a.mH @ b)
    bs = torch.linalg.matrix_exp(generator).reshape(big, big, big, big)
    torch.testing.assert_close(
        fock.beamsplitter(theta, phi, c), bs[:c, :c, :c, :c], atol=1e-12, rtol=0
    )


def test_cubic_phase_is_the_truncated_exponential():
    c, gamma = 9, 0.35
    x = ladder(c) + ladder(c).mH  # ħ = 2: x = a + a†
    v = fock.cubic_phase(gamma, c)
    torch.testing.assert_close(v, torch.linalg.matrix_exp(1j * gamma / 6 * x @ x @ x))
    eye = torch.eye(c, dtype=torch.complex128)
    torch.testing.assert_close(v.mH @ v, eye)  # exactly unitary: a Hermitian truncated generator
    torch.testing.assert_close(fock.cubic_phase(0.1, c) @ fock.cubic_phase(0.25, c), v)


@pytest.mark.parametrize(
    ("name", "gate"),
    [
        ("displacement", lambda c: fock.displacement(1.1, -0.6, c)),
        ("squeezing", lambda c: fock.squeezing(-0.7, 0.3, c)),
        ("cubic_phase", lambda c: fock.cubic_phase(0.5, c)),
    ],
)
def test_one_mode_gates_are_unitary_in_the_large_cutoff_limit(name, gate):
    low = 6
    errors = []
    for c in (12, 100):
        u = gate(c)
        errors.append(float((u.mH @ u)[:low, :low].sub(torch.eye(low)).abs().max()))
    assert errors[1] < 1e-12, (name, errors)
    if name != "cubic_phase":  # exact matrix elements: truncation loses norm at small cutoff
        assert errors[0] > 1e-3, (name, errors)


def test_beamsplitter_is_unitary_on_the_low_photon_block():
    c, low = 12, 6
    bs = fock.beamsplitter(1.3, 0.2, c).reshape(c * c, c * c)
    n0, n1 = torch.meshgrid(torch.arange(c), torch.arange(c), indexing="ij")
    keep = ((n0 + n1) < low).reshape(-1)  # inputs with fewer than `low` photons in all
    block = bs[:, keep]
    torch.testing.assert_close(block.mH @ block, torch.eye(int(keep.sum()), dtype=torch.complex128))


def test_batched_parameters_match_one_by_one():
    r = torch.tensor([[0.1, -0.5, 0.9], [0.3, 0.0, -1.2]], dtype=torch.float64)  # (2, 3)
    phi = torch.tensor([0.2, 1.0, -2.0], dtype=torch.float64)  # broadcasts to (2, 3)
    for build in (fock.displacement, fock.squeezing, fock.beamsplitter):
        batch = build(r, phi, 5)
        for i in range(2):
            for j in range(3):
                torch.testing.assert_close(batch[i, j], build(float(r[i, j]), float(phi[j]), 5))
    batch = fock.cubic_phase(r, 5)
    torch.testing.assert_close(batch[1, 2], fock.cubic_phase(-1.2, 5))


def test_apply_gates_to_modes_matches_kronecker_products():
    torch.manual_seed(0)
    c = 4
    kets = torch.randn(3, c, c, dtype=torch.complex128)
    g0 = fock.displacement(torch.tensor([0.2, 0.5, -0.4]), 0.3, c)  # (3, c, c), one per ket
    g1 = fock.squeezing(0.4, 1.0, c)  # (c, c), broadcast
    eye = torch.eye(c, dtype=torch.complex128)
    for mode, gate in ((0, g0), (1, g1)):
        out = fock.apply_one_mode(gate, kets, mode)
        full = torch.kron(gate, eye) if mode == 0 else torch.kron(eye, gate)  # mode 0 leading
        expected = (full @ kets.reshape(3, c * c, 1)).reshape(3, c, c)
        torch.testing.assert_close(out, expected)
    bs = fock.beamsplitter(0.5, 0.1, c)
    out = fock.apply_two_mode(bs, kets)
    expected = torch.einsum("mnpq,bpq->bmn", bs, kets)
    torch.testing.assert_close(out, expected)
    one_mode = fock.apply_one_mode(g0, kets[:, :, 0])  # (3, c)
    torch.testing.assert_close(one_mode, (g0 @ kets[:, :, :1])[..., 0])


def test_circuit_matrix_equals_the_gates_applied_one_by_one():
    c = 5
    kets = torch.randn(4, c, c, dtype=torch.complex128)

    def circuit(k):
        k = fock.apply_two_mode(fock.beamsplitter(0.4, 0.7, c), k)
        k = fock.apply_one_mode(fock.displacement(0.6, 0.2, c), k, 1)
        return fock.apply_one_mode(fock.kerr(0.3, c), k, 0)

    gate = fock.circuit_matrix(circuit, c, 2)
    assert gate.shape == (c, c, c, c)
    torch.testing.assert_close(fock.apply_two_mode(gate, kets), circuit(kets))
    single = fock.circuit_matrix(lambda k: fock.apply_one_mode(fock.squeezing(0.2, 0, c), k), c)
    torch.testing.assert_close(single, fock.squeezing(0.2, 0.0, c))


def test_shape_and_argument_errors():
    with pytest.raises(ValueError, match=r"expected one-mode kets \(\.\.\., 4\); got \(3, 5\)"):
        fock.apply_one_mode(fock.rotation(0.1, 4), torch.zeros(3, 5, dtype=torch.complex128))
    with pytest.raises(ValueError, match=r"expected two-mode kets \(\.\.\., 4, 4\); got \(4,\)"):
        fock.apply_one_mode(fock.rotation(0.1, 4), torch.zeros(4, dtype=torch.complex128), 0)
    with pytest.raises(ValueError, match="mode: expected None, 0 or 1; got 2"):
        fock.apply_one_mode(fock.rotation(0.1, 4), torch.zeros(4, 4, dtype=torch.complex128), 2)
    with pytest.raises(ValueError, match=r"expected a 2-mode gate \(\.\.\., c, c, c, c\)"):
        fock.apply_two_mode(fock.rotation(0.1, 4), torch.zeros(4, 4, dtype=torch.complex128))
    with pytest.raises(ValueError, match="cutoff: expected an integer >= 1; got 0"):
        fock.squeezing(0.1, 0.0, 0)
    with pytest.raises(ValueError, match=r"n: expected photon numbers in \[0, 3\)"):
        fock.fock_state(3, 3)
    with pytest.raises(ValueError, match=r"dtype: expected torch\.complex128 or torch\.complex64"):
        fock.rotation(0.1, 3, dtype=torch.float64)


def test_complex64_on_request():
    gate = fock.displacement(torch.tensor(0.5, dtype=torch.float64), 0.1, 6, dtype=torch.complex64)
    assert gate.dtype == torch.complex64
    torch.testing.assert_close(gate, fock.displacement(0.5, 0.1, 6).to(torch.complex64))


@pytest.mark.parametrize(
    "gate",
    [
        lambda a, b: fock.displacement(a, b, 5),
        lambda a, b: fock.squeezing(a, b, 5),
        lambda a, b: fock.beamsplitter(a, b, 4),
        lambda a, b: fock.cubic_phase(a * b, 5),
        lambda a, b: fock.rotation(a, 4) @ fock.kerr(b, 4),
    ],
    ids=["displacement", "squeezing", "beamsplitter", "cubic_phase", "rotation_kerr"],
)
def test_gradients_match_finite_differences(gate):
    a = torch.tensor([0.3, -0.8], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([1.1, 0.4], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gate, (a, b), eps=1e-6, atol=1e-6)


def _tetromino_images(pretrained_dir: Path, layers: int) -> np.ndarray:
    from pipeline.sources import photonic_data

    params = photonic_data.load_pretrained(pretrained_dir, "trained_params.npy")
    kets = photonic_data.qc_input_states(
        photonic_data.QC_ALPHA, photonic_data.QC_BETA, 11
    )  # clean: δ = ε = 0
    kets = photonic_data.qc_layers(kets, params[:, :layers])  # (7, 11, 11)
    return photonic_data.qc_image(kets).abs().square().numpy()  # (7, 4, 4), each sums to 1


def _top4(image: np.ndarray) -> set[tuple[int, int]]:
    order = np.argsort(image.ravel())[::-1][:4]
    return {divmod(int(k), image.shape[1]) for k in order}


def test_pretrained_network_draws_the_tetrominoes(pretrained_dir):
    images = _tetromino_images(pretrained_dir, 25)
    for image, name in zip(images, TETROMINOES, strict=True):
        assert _top4(image) == TETROMINOES[name], name
        assert image.ravel()[np.argsort(image.ravel())[-4:]].sum() > 0.85, name  # the 4 cells


def test_the_tetromino_check_catches_a_transposed_beamsplitter(pretrained_dir, monkeypatch):
    original = fock.beamsplitter

    def sf_layout(*args, **kwargs):  # (m, p, n, q): Strawberry Fields' einsum order
        return original(*args, **kwargs).transpose(-3, -2)

    monkeypatch.setattr(fock, "beamsplitter", sf_layout)
    images = _tetromino_images(pretrained_dir, 25)
    matches = [
        _top4(image) == cells for image, cells in zip(images, TETROMINOES.values(), strict=True)
    ]
    assert not any(matches)


def test_one_mode_layers_order_and_clipping():
    c = 8
    params = torch.tensor([[1.5, -2.0, 0.1, 0.2, 0.3, 3.0], [0.2, 0.4, -0.1, 0.5, 0.0, -0.2]])
    params = params.double()
    expected = torch.eye(c, dtype=torch.complex128)

    def clip(x: float) -> float:
        return max(-1.0, min(1.0, x))

    for sq, d, r1, r2, r3, kappa in params.tolist():
        for gate in (
            fock.rotation(r1, c),
            fock.squeezing(clip(sq), 0.0, c),
            fock.rotation(r2, c),
            fock.displacement(clip(d), 0.0, c),
            fock.rotation(r3, c),
            fock.cubic_phase(clip(kappa), c),
        ):
            expected = gate @ expected
    torch.testing.assert_close(fock_layers.one_mode_layers(params, c), expected)
    identity = fock_layers.one_mode_layers(torch.zeros(2, 6, dtype=torch.float64), c)
    torch.testing.assert_close(identity, torch.eye(c, dtype=torch.complex128))
    assert fock_layers.one_mode_layers(params.float(), c).dtype == torch.complex64
    batched = torch.stack([params, 0.5 * params, torch.zeros_like(params)])  # (3, 2, 6)
    torch.testing.assert_close(fock_layers.one_mode_layers(batched, c)[0], expected, rtol=0, atol=0)
    torch.testing.assert_close(fock_layers.one_mode_layers(batched, c)[2], identity)


@pytest.mark.parametrize("cutoff", [2, 6, 15, 20])
def test_real_gates_from_tables_equal_the_recurrences(cutoff):
    r = torch.linspace(-1.0, 1.0, 21, dtype=torch.float64)
    torch.testing.assert_close(
        fock_layers.displacement_real(r, cutoff),
        fock.displacement(r, 0.0, cutoff).real,
        rtol=0,
        atol=1e-13,
    )
    torch.testing.assert_close(
        fock_layers.squeezing_real(r, cutoff),
        fock.squeezing(r, 0.0, cutoff).real,
        rtol=0,
        atol=1e-13,
    )
    assert fock.displacement(r, 0.0, cutoff).imag.abs().max() == 0  # real for φ = 0
    assert fock_layers.displacement_real(r[3], cutoff).shape == (cutoff, cutoff)


@pytest.mark.parametrize("cutoff", [4, 15])
def test_vacuum_row_is_row_zero_of_the_layers(cutoff):
    g = torch.Generator().manual_seed(cutoff)
    params = torch.randn(4, 5, 3, 6, dtype=torch.float64, generator=g)  # clipped beyond ±1
    params[0, 0] = 0.0  # zeros: powers at 0 stay defined
    full = fock_layers.one_mode_layers(params, cutoff)  # (4, 5, c, c)
    row = fock_layers.vacuum_row(params, cutoff)  # (4, 5, c)
    assert row.shape == (4, 5, cutoff) and row.dtype == torch.complex128
    torch.testing.assert_close(row, full[..., 0, :], rtol=0, atol=1e-12)
    no_squeeze = fock_layers.one_mode_layers(params[1, 1], cutoff, squeeze=False)[0]
    torch.testing.assert_close(
        fock_layers.vacuum_row(params[1, 1], cutoff, squeeze=False), no_squeeze, rtol=0, atol=1e-12
    )
    assert fock_layers.vacuum_row(params.float(), cutoff).dtype == torch.complex128
    with pytest.raises(ValueError, match=r"params: expected shape \(\.\.\., L, 6\); got \(6,\)"):
        fock_layers.vacuum_row(params[0, 0, 0], cutoff)


def test_vacuum_row_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(0)
    params = (0.4 * torch.randn(2, 2, 6, dtype=torch.float64, generator=g)).requires_grad_()
    params.data[0, 0, :2] = 0.0  # sq = d = 0: the tables' powers at 0

    def real_view(p: torch.Tensor) -> torch.Tensor:
        return torch.view_as_real(fock_layers.vacuum_row(p, 7))

    assert torch.autograd.gradcheck(real_view, (params,), eps=1e-6, atol=1e-7)
