"""Pair kernels between weight rows (phasekit.lazy_training.pair_kernels) from the activations' pair moments."""

import math

import numpy as np
import pytest
from scipy import special
from scipy.integrate import quad

import phasekit as pk
from phasekit.core.quadrature import gaussian_expectation
from phasekit.lazy_training.loss import TwoLayer
from phasekit.lazy_training.networks import init_student, make_teacher
from phasekit.lazy_training.pair_kernels import relu_gram, student_pairs, teacher_pairs, third_pairs


def _covariances(X, Y):
    C = np.empty((len(X), len(Y), 2, 2))
    C[..., 0, 0] = np.sum(X * X, 1)[:, None]
    C[..., 1, 1] = np.sum(Y * Y, 1)[None, :]
    C[..., 0, 1] = C[..., 1, 0] = X @ Y.T
    return C


def test_relu_kernels_closed_form_limits():
    rng = np.random.default_rng(12)
    a = rng.standard_normal(5)
    b = rng.standard_normal(5)
    b -= (a @ b) / (a @ a) * a  # orthogonal to a
    A = np.stack([a, a, -a, b])
    p = student_pairs(pk.activation("relu"), A[:1], A, 32)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    # identical, antiparallel, orthogonal arguments
    np.testing.assert_allclose(p.K[0], [na**2 / 2, na**2 / 2, 0.0, na * nb / (2 * np.pi)], atol=1e-14)
    np.testing.assert_allclose(p.J[0], [0.5, 0.5, 0.0, 0.25], atol=1e-14)
    np.testing.assert_allclose(p.H[0], [0.0, 0.0, 0.0, nb / (2 * np.pi * na)], atol=1e-9)
    # the teacher's Gram matrix is the same arc-cosine kernel
    np.testing.assert_allclose(relu_gram(A), student_pairs(pk.activation("relu"), A, A, 32).K, rtol=1e-15)


def test_a_unit_is_exactly_collinear_with_itself():
    """Self-pairs: J = 1/2, H = 0 and E[theta(u) x x^T] = I/2 exactly (no spurious angle from rounding)."""
    rng = np.random.default_rng(14)
    A = rng.standard_normal((40, 20)) * 0.3
    relu = pk.activation("relu")
    p = student_pairs(relu, A, A, 32)
    assert np.all(np.diag(p.J) == 0.5) and np.all(np.diag(p.H) == 0.0)
    np.testing.assert_allclose(np.diag(p.K), 0.5 * np.einsum("ij,ij->i", A, A), rtol=4e-16, atol=0)
    np.testing.assert_array_equal(p.H, p.Hb.T)
    T, D = third_pairs(relu, A, 32)
    assert np.all(np.diag(T) == 0.0) and np.all(np.diag(D) == 0.0)
    assert np.all(np.isfinite(T)) and np.all(np.isfinite(D))
    # off the diagonal: E[delta(u) delta(v)] = 1 / (2 pi sqrt(det))
    C = _covariances(A[:2], A[:2])[0, 1]
    assert D[0, 1] == pytest.approx(1 / (2 * np.pi * np.sqrt(np.linalg.det(C))), rel=1e-12)
    tm = TwoLayer(make_teacher(10, 3, 0), "relu").tangent(init_student(8, 10, 10.0, 0))
    P, d = tm.A_groups.shape
    k = 1.0 / 8
    blocks = (tm.G[P:, P:] / k**2).reshape(P, d, P, d)
    for i in range(P):
        np.testing.assert_array_equal(blocks[i, :, i, :], 0.5 * np.eye(d))


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "erf"])
def test_mixture_kernels_match_registry(act):
    """Probit-mixture closed forms against the registry's I2, H2, J2 (quadrature or closed forms)."""
    rng = np.random.default_rng(13)
    A = rng.standard_normal((4, 6)) * 0.25
    B = rng.standard_normal((3, 6)) * 0.25
    mix = pk.activation(act).probit_mixture
    reg = pk.activation(act)
    for X, Y in ((A, A), (A, B)):
        C = _covariances(X, Y)
        K, H, Hb, J = mix.pair_moments(C[..., 0, 0], C[..., 1, 1], C[..., 0, 1])
        np.testing.assert_allclose(K, reg.I2(C), atol=1e-8)
        np.testing.assert_allclose(J, reg.J2(C), atol=1e-8)
        np.testing.assert_allclose(H, reg.H2(C), atol=1e-8)
        np.testing.assert_allclose(Hb, reg.H2(C[..., ::-1, ::-1]), atol=1e-8)
        # the rows' pair kernels are the activation's pair moments
        p = student_pairs(reg, X, Y, 32)
        np.testing.assert_allclose(p.K, reg.I2(C), atol=1e-8)
    # third-order kernels of the tangent model against Gauss-Hermite with analytic derivatives
    third = {"sigmoid": lambda x: (lambda s: s * (1 - s) * (1 - 6 * s * (1 - s)))(special.expit(x)),
             "tanh": lambda x: (lambda t: -2 * (1 - t * t) * (1 - 3 * t * t))(np.tanh(x)),
             "erf": lambda x: np.sqrt(2 / np.pi) * (x * x - 1) * np.exp(-x * x / 2)}[act]
    C = _covariances(A, B)
    T, D = mix.third_moments(C[..., 0, 0], C[..., 1, 1], C[..., 0, 1])
    np.testing.assert_allclose(T, gaussian_expectation(C, [third, reg.dg], 80), atol=1e-8)
    np.testing.assert_allclose(D, gaussian_expectation(C, [reg.d2g, reg.d2g], 80), atol=1e-8)
    T2, D2 = reg.third_moments(C[..., 0, 0], C[..., 1, 1], C[..., 0, 1])
    np.testing.assert_allclose(T2, T, atol=1e-8)
    np.testing.assert_allclose(D2, D, atol=1e-8)


@pytest.mark.parametrize("act,var", [("sigmoid", 30.0), ("tanh", 9.0)])
def test_mixture_kernels_wide_preactivations(act, var):
    """Large variances, where fixed-node quadrature degrades: adaptive 1-D integration of E[g(u)^2]."""
    g = pk.activation(act).g
    exact = quad(lambda z: g(math.sqrt(var) * z) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                 -40, 40, epsabs=1e-13, limit=400)[0]
    a = np.array([[math.sqrt(var), 0.0]])
    assert student_pairs(pk.activation(act), a, a, 32).K[0, 0] == pytest.approx(exact, abs=3e-9)


@pytest.mark.parametrize("name", ["sigmoid", "erf"])
def test_teacher_kernels_against_quadrature(name):
    """E[g(u) relu(v)], E[g''(u) relu(v)], E[g'(u) step(v)] from the mixture against the Gauss-Hermite
    route of an unregistered copy (no closed form, no mixture); relu's are its arc-cosine kernels."""
    act = pk.activation(name)
    copy = pk.Activation(f"{name}-copy", act.g, act.dg, act.d2g)
    rng = np.random.default_rng(15)
    A = rng.standard_normal((5, 4)) * 0.6
    B = rng.standard_normal((3, 4))
    exact = teacher_pairs(act, A, B, 32)
    approx = teacher_pairs(copy, A, B, 64)
    for x, y in ((exact.K, approx.K), (exact.H, approx.H), (exact.J, approx.J)):
        np.testing.assert_allclose(x, y, atol=1e-7)
    relu = pk.activation("relu")
    t, s_ = teacher_pairs(relu, A, B, 32), student_pairs(relu, A, B, 32)
    for x, y in ((t.K, s_.K), (t.H, s_.H), (t.J, s_.J)):
        np.testing.assert_array_equal(x, y)


def test_quadrature_route_against_the_mixture():
    """A sigmoid without its mixture representation goes through Gauss-Hermite on the Cholesky factor."""
    sig = pk.activation("sigmoid")
    plain = pk.Activation("sigmoid-quadrature", sig.g, sig.dg, sig.d2g)
    rng = np.random.default_rng(16)
    A = rng.standard_normal((4, 5)) * 0.5
    for f_exact, f_quad in ((student_pairs(sig, A, A, 32), student_pairs(plain, A, A, 48)),):
        for x, y in zip((f_exact.K, f_exact.H, f_exact.Hb, f_exact.J), (f_quad.K, f_quad.H, f_quad.Hb, f_quad.J)):
            np.testing.assert_allclose(x, y, atol=5e-9)
    T1, D1 = third_pairs(sig, A, 32)
    T2, D2 = third_pairs(plain, A, 48)
    np.testing.assert_allclose(T1, T2, atol=1e-7)  # g''' by central differences of g''
    np.testing.assert_allclose(D1, D2, atol=5e-9)
