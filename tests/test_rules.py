"""Quadrature rules and the expectations that apply them directly (phasekit.core.rules)."""

import math

import numpy as np
import pytest
from scipy import integrate, special

from phasekit.core.quadrature import gaussian_expectation
from phasekit.core.rules import (
    gauss_from_measure,
    gauss_hermite,
    gauss_hermite_pairs,
    gauss_legendre,
    gauss_legendre_interval,
    half_line_rule,
    logistic_scale_rule,
    normal_composite_rule,
    normal_expectation,
    polar_pair_expectation,
    radial_rule,
    relu_conditional_expectations,
    tensor_gauss_hermite,
)


def test_elementary_rules_integrate_polynomials_exactly():
    x, w = gauss_legendre(7)
    assert w.sum() == pytest.approx(2.0, rel=1e-15)
    assert np.sum(w * x**12) == pytest.approx(2 / 13, rel=1e-14)
    t, wt = gauss_legendre_interval(1.0, 3.0, 5)
    assert np.sum(wt * t**9) == pytest.approx((3**10 - 1) / 10, rel=1e-14)
    z, wz = gauss_hermite(10)
    moments = [np.sum(wz * z**k) for k in (0, 2, 4, 6, 18)]
    assert moments == pytest.approx([1, 1, 3, 15, float(np.prod(np.arange(1, 18, 2)))], rel=1e-13)
    nodes, weights = tensor_gauss_hermite(6, 3)
    assert nodes.shape == (216, 3) and weights.sum() == pytest.approx(1.0, rel=1e-14)
    assert np.sum(weights * nodes[:, 0] ** 2 * nodes[:, 2] ** 4) == pytest.approx(3.0, rel=1e-13)
    for arr in (x, w, z, wz, nodes, weights):
        assert not arr.flags.writeable


def test_composite_and_radial_rules_for_the_gaussian():
    z, w = normal_composite_rule()
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    # a kink at the origin and tanh's poles at large variance: |x| and tanh(sqrt(20) z)^2
    assert np.sum(w * np.abs(z)) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-14)
    ref = integrate.quad(lambda s: np.tanh(math.sqrt(20) * s) ** 2 * math.exp(-s * s / 2) / math.sqrt(2 * math.pi),
                         -12, 12, points=[0.0], limit=400, epsabs=1e-15)[0]
    assert np.sum(w * np.tanh(math.sqrt(20) * z) ** 2) == pytest.approx(ref, abs=1e-14)
    np.testing.assert_allclose(normal_expectation(lambda x: x**4, np.array([[1.0, 2.0]])), [[3.0, 12.0]], rtol=1e-13)
    r, wr = radial_rule()
    assert wr.sum() == pytest.approx(1.0, abs=1e-14)            # int r exp(-r^2/2) dr = 1
    assert np.sum(wr * r**2) == pytest.approx(2.0, rel=1e-13)   # E[|z|^2] in 2-D


def test_gauss_rule_of_a_discrete_measure_and_half_lines():
    # the Gauss rule of Gauss-Legendre's own measure is Gauss-Legendre
    x, w = np.polynomial.legendre.leggauss(30)
    nodes, weights = gauss_from_measure(x, w, 6)
    x6, w6 = np.polynomial.legendre.leggauss(6)
    np.testing.assert_allclose(nodes, x6, atol=1e-13)
    np.testing.assert_allclose(weights, w6, atol=1e-13)
    # int_c^oo phi(z) z^k dz against closed forms
    c = np.array([-2.0, 0.3, 1.7])
    t, wt = half_line_rule(c, 12)
    phi = np.exp(-c * c / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(np.sum(wt, -1), special.ndtr(-c), rtol=1e-13)
    np.testing.assert_allclose(np.sum(wt * t, -1), phi, rtol=1e-13)
    np.testing.assert_allclose(np.sum(wt * t**2, -1), c * phi + special.ndtr(-c), rtol=1e-13)


def test_logistic_scale_mixture_reproduces_sigmoid():
    omega, w = logistic_scale_rule(16)
    x = np.linspace(-40, 40, 4001)
    err = np.max(np.abs(special.ndtr(x[:, None] / omega) @ w - special.expit(x)))
    assert err < 2e-9
    # the logistic distribution has variance pi^2 / 3 = E[omega^2]
    assert abs(w @ omega**2 - np.pi**2 / 3) < 1e-10
    assert w.sum() == pytest.approx(1.0, abs=1e-15) and np.all(omega > 0)


def _dblquad(f, h, q1, q2, c):
    """E[f(u) h(v)] by adaptive 2-D quadrature (scipy), split at the kink lines."""
    s = math.sqrt(1 - c * c)

    def inner(z1):
        u = math.sqrt(q1) * z1
        g = lambda z2: float(f(u) * h(math.sqrt(q2) * (c * z1 + s * z2))) * math.exp(-z2 * z2 / 2)  # noqa: E731
        k = -c * z1 / s
        return sum(integrate.quad(g, a, b, epsabs=1e-14, limit=200)[0] for a, b in ((-12, k), (k, 12)))

    return sum(integrate.quad(lambda z1: inner(z1) * math.exp(-z1 * z1 / 2), a, b, epsabs=1e-13, limit=200)[0]
               for a, b in ((-12, 0), (0, 12))) / (2 * math.pi)


def test_polar_pair_expectation_against_adaptive_quadrature():
    relu = lambda x: np.maximum(x, 0.0)  # noqa: E731
    elu_d = lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0)))  # noqa: E731
    for f, q1, q2, c in ((relu, 0.7, 2.0, 0.3), (elu_d, 1.5, 1.5, -0.6), (np.tanh, 8.0, 3.0, 0.9)):
        got = polar_pair_expectation(f, f, q1, q2, 1.0 - c)
        assert got == pytest.approx(_dblquad(f, f, q1, q2, c), abs=1e-10)
    # E[(f(u) - f(v))^2] is the difference form; at delta = 0 it vanishes exactly
    d = polar_pair_expectation(np.tanh, np.tanh, 2.0, 2.0, np.array([0.0, 0.5]), difference=True)
    assert d[0] == 0.0
    direct = (polar_pair_expectation(np.tanh, np.tanh, 2.0, 2.0, 0.0) * 2
              - 2 * polar_pair_expectation(np.tanh, np.tanh, 2.0, 2.0, 0.5))
    assert d[1] == pytest.approx(direct, abs=1e-10)


def test_gauss_hermite_pairs_and_relu_conditionals():
    rng = np.random.default_rng(5)
    A = rng.normal(size=(6, 2, 3)) * 0.7
    C = A @ np.swapaxes(A, -1, -2)
    c11, c22, c12 = C[:, 0, 0], C[:, 1, 1], C[:, 0, 1]
    K, J = gauss_hermite_pairs(c11, c22, c12, [(np.sin, np.cos), (np.cos, np.cos)], 40)
    np.testing.assert_allclose(K, gaussian_expectation(C, [np.sin, np.cos], 60), atol=1e-12)
    np.testing.assert_allclose(J, gaussian_expectation(C, [np.cos, np.cos], 60), atol=1e-12)
    # relu of v in closed form given u: against E[u relu(v)] = c12 / 2 and E[step(v)] = 1/2 (Stein)
    (R,), (S,) = relu_conditional_expectations(c11, c22, c12, [lambda x: x], [np.ones_like], 20)
    np.testing.assert_allclose(R, c12 / 2, atol=1e-14)
    np.testing.assert_allclose(S, 0.5, atol=1e-14)
