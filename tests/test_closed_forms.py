"""Closed forms of erf, relu, linear and of probit mixtures (phasekit.core.closed_forms)."""

import numpy as np
import pytest

import phasekit as pk
from phasekit.core.closed_forms import ProbitMixture, erf_mixture, relu_H2, relu_I2, relu_J2
from phasekit.core.quadrature import gaussian_expectation


def random_cov(d, rng, scale=1.0):
    A = rng.normal(size=(d, d + 1)) * scale
    return A @ A.T / (d + 1)


def test_erf_closed_forms_match_quadrature():
    """Closed forms against tensor Gauss-Hermite on smooth erf (an independent deterministic route)."""
    erf = pk.activation("erf")
    rng = np.random.default_rng(3)
    # variances ~0.6: the 4-D tensor rule converges to 1e-12 at 40 nodes per axis
    C = 0.6 * np.stack([random_cov(4, rng) for _ in range(5)])
    g, dg = erf.g, erf.dg
    assert np.allclose(erf.I2(C[:, :2, :2]), gaussian_expectation(C[:, :2, :2], [g, g], 80), atol=1e-12)
    assert np.allclose(erf.J2(C[:, :2, :2]), gaussian_expectation(C[:, :2, :2], [dg, dg], 80), atol=1e-12)
    assert np.allclose(erf.I3(C[:, :3, :3]),
                       gaussian_expectation(C[:, :3, :3], [dg, lambda x: x, g], 40), atol=1e-11)
    assert np.allclose(erf.I4(C), gaussian_expectation(C, [dg, dg, g, g], 40), atol=1e-11)


def test_linear_moments_are_covariance_entries():
    lin = pk.activation("linear")
    C = random_cov(4, np.random.default_rng(0))
    assert lin.I2(C[:2, :2]) == C[0, 1]
    assert lin.I3(C[:3, :3]) == pytest.approx(C[1, 2], abs=1e-15)
    assert lin.I4(C) == C[2, 3]
    assert lin.J2(C[:2, :2]) == 1.0


def test_fused_erf_h2_j2_equals_separate_forms():
    erf = pk.activation("erf")
    C = random_cov(2, np.random.default_rng(4))
    args = (C[0, 0], C[1, 1], C[0, 1])
    h, j = erf.closed_forms["H2J2"](*args)
    assert h == pytest.approx(erf.H2(C), rel=1e-14) and j == pytest.approx(erf.J2(C), rel=1e-14)


def test_erf_I4_of_many_blocks_equals_the_blockwise_form():
    """``I4_blocks`` (per-field determinants shared by the blocks) against ``I4`` block by block and quadrature."""
    erf = pk.activation("erf")
    rng = np.random.default_rng(7)
    L, B = 5, 3
    S = 0.6 * np.stack([random_cov(L, rng) for _ in range(B)], axis=-1)  # (L, L, batch last)
    si, sk = np.triu_indices(2)
    pu, pw = np.triu_indices(L)
    got = erf.closed_forms["I4_blocks"](S[si, si], S[sk, sk], S[si, sk], S[np.arange(L), np.arange(L)], S[si],
                                        S[sk], S[pu, pw], pu, pw)
    assert got.shape == (len(si), len(pu), B)
    for b, (i, k) in enumerate(zip(si, sk)):
        for p, (u, w) in enumerate(zip(pu, pw)):
            idx = [i, k, u, w]
            C = np.moveaxis(S[np.ix_(idx, idx)], -1, 0)  # (B, 4, 4)
            np.testing.assert_array_equal(got[b, p], erf.I4(C))  # the same operations
    idx = [0, 1, 2, 4]
    C = np.moveaxis(S[np.ix_(idx, idx)], -1, 0)
    np.testing.assert_allclose(got[1, list(zip(pu, pw)).index((2, 4))],
                               gaussian_expectation(C, [erf.dg, erf.dg, erf.g, erf.g], 40), atol=1e-11)


def _mp_relu(mp, c11, c22, c12):
    """relu I2, J2, H2 at the working precision of mpmath (references)."""
    det = c11 * c22 - c12 * c12
    a = mp.asin(c12 / mp.sqrt(c11 * c22))
    return (c12 / 4 + (mp.sqrt(det) + c12 * a) / (2 * mp.pi), mp.mpf(1) / 4 + a / (2 * mp.pi),
            mp.sqrt(det) / (2 * mp.pi * c11))


def test_relu_closed_forms_accurate_for_nearly_collinear_arguments():
    """rho = +-(1 - eps): I2, J2, H2 to a few ulps of their size (asin(rho) loses ~sqrt(eps))."""
    import mpmath as mp

    mp.mp.dps = 60
    relu = pk.activation("relu")
    rng = np.random.default_rng(1)
    worst = 0.0
    for eps in (1e-4, 1e-8, 1e-12, 1e-14):
        for sign in (1.0, -1.0):
            for _ in range(10):
                c11, c22 = rng.uniform(0.2, 3.0, 2)
                c12 = sign * np.sqrt(c11 * c22) * (1.0 - eps * rng.uniform(0.5, 1.0))
                refs = _mp_relu(mp, *(mp.mpf(x) for x in (c11, c22, c12)))
                C = np.array([[c11, c12], [c12, c22]])
                for got, ref in zip((relu.I2(C), relu.J2(C), relu.H2(C)), refs):
                    worst = max(worst, float(abs(got - ref) / ref))
    assert worst <= 2e-15, worst


def test_relu_D2_matches_mpmath():
    """< (relu(a) - relu(b))^2 > from (c22, dq, dr) to a few ulps, near and far from a = b."""
    import mpmath as mp

    mp.mp.dps = 60
    D2 = pk.activation("relu").closed_forms["D2"]
    I2 = lambda a, b, c: _mp_relu(mp, a, b, c)[0]  # noqa: E731
    rng = np.random.default_rng(2)
    for scale in (1e-1, 1e-4, 1e-8, 1e-12):
        for _ in range(10):
            c22 = rng.uniform(0.3, 3.0)
            dr = scale * rng.normal()
            dq = 2 * dr + scale * rng.uniform(0.0, 1.0) + dr * dr / c22  # inside the cone
            t, q, r = mp.mpf(c22), mp.mpf(dq), mp.mpf(dr)
            ref = I2(t + q, t + q, t + q) - 2 * I2(t + q, t, t + r) + I2(t, t, t)
            assert float(abs(D2(c22, dq, dr) - ref) / ref) <= 2e-15, (scale, c22, dq, dr)


@pytest.mark.parametrize("name", ["relu", "erf"])
def test_J2grad_are_derivatives_of_J2(name):
    """(J2, dJ2/dc12, 2 dJ2/dc11, 2 dJ2/dc22) against mpmath derivatives of the J2 closed form."""
    import mpmath as mp

    mp.mp.dps = 40
    if name == "relu":
        J2 = lambda a, b, c: mp.mpf(1) / 4 + mp.asin(c / mp.sqrt(a * b)) / (2 * mp.pi)  # noqa: E731
    else:
        J2 = lambda a, b, c: 2 / mp.pi / mp.sqrt((1 + a) * (1 + b) - c * c)  # noqa: E731
    f = pk.activation(name).closed_forms["J2grad"]
    rng = np.random.default_rng(3)
    for _ in range(10):
        C = random_cov(2, rng)
        a, b, c = (mp.mpf(float(x)) for x in (C[0, 0], C[1, 1], C[0, 1]))
        want = (J2(a, b, c), mp.diff(lambda x: J2(a, b, x), c),
                2 * mp.diff(lambda x: J2(x, b, c), a), 2 * mp.diff(lambda x: J2(a, x, c), b))
        got = f(C[0, 0], C[1, 1], C[0, 1])
        for g_, w_ in zip(got, want):
            assert float(abs(g_ - w_)) <= 1e-15 * float(abs(w_)) + 1e-16


def test_erf_J2grad_matches_quadrature_of_the_derivatives():
    """Price's theorem checked directly: < g'' g'' > and < g''' g' > by Gauss-Hermite quadrature."""
    erf = pk.activation("erf")
    d3g = lambda x: (x * x - 1.0) * erf.dg(x)  # noqa: E731
    rng = np.random.default_rng(4)
    C = np.stack([random_cov(2, rng) for _ in range(4)])
    _, j_uw, j_uu, j_ww = erf.closed_forms["J2grad"](C[:, 0, 0], C[:, 1, 1], C[:, 0, 1])
    assert np.allclose(j_uw, gaussian_expectation(C, [erf.d2g, erf.d2g], 80), rtol=0, atol=1e-13)
    assert np.allclose(j_uu, gaussian_expectation(C, [d3g, erf.dg], 80), rtol=0, atol=1e-13)
    assert np.allclose(j_ww, gaussian_expectation(C, [erf.dg, d3g], 80), rtol=0, atol=1e-13)


def test_relu_arc_cosine_kernels_against_monte_carlo_and_limits():
    rng = np.random.default_rng(8)
    G = rng.normal(size=(2, 3)) * [[1.0], [1.7]]
    C = G @ G.T
    z = rng.standard_normal((3, 4_000_000))
    a, b = G @ z
    for exact, s in ((relu_I2(C[0, 0], C[1, 1], C[0, 1]), np.maximum(a, 0) * np.maximum(b, 0)),
                     (relu_J2(C[0, 0], C[1, 1], C[0, 1]), ((a > 0) & (b > 0)).astype(float))):
        assert abs(exact - s.mean()) < 5 * s.std() / np.sqrt(s.size)
    # independent arguments, coinciding, antiparallel, a zero-variance argument
    assert relu_I2(4.0, 9.0, 0.0) == pytest.approx(6.0 / (2 * np.pi), rel=1e-15)
    assert relu_I2(3.0, 3.0, 3.0) == pytest.approx(1.5, rel=1e-15) and relu_J2(3.0, 3.0, 3.0) == 0.5
    assert relu_I2(1.0, 1.0, -1.0) == 0.0 and relu_J2(1.0, 1.0, -1.0) == 0.0 and relu_H2(1.0, 1.0, -1.0) == 0.0
    assert relu_H2(0.0, 2.0, 0.0) == 0.0
    # I3 by Stein on the linear argument: theta(a) a relu(a) = relu(a)^2, theta(a) b relu(-a) = 0 for b = a
    relu = pk.activation("relu")
    assert relu.I3(np.full((3, 3), 2.0)) == pytest.approx(1.0, rel=1e-15)
    assert relu.I3(np.array([[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])) == 0.0


def test_propagation_closed_forms():
    """Variance and correlation kernels at (q, delta) against the committee forms at the same covariance,
    and the precision-keeping delta kernels against mpmath far into c -> 1."""
    import mpmath as mp

    mp.mp.dps = 50
    q1, q2 = 0.7, 1.9
    for name in ("erf", "relu", "linear"):
        act = pk.activation(name)
        for c in (-0.8, 0.1, 0.6):
            c12 = c * np.sqrt(q1 * q2)
            C = np.array([[q1, c12], [c12, q2]])
            assert act.correlation_kernel(q1, q2, c) == pytest.approx(act.I2(C), rel=1e-14, abs=1e-16)
        Cq = np.full((2, 2), q1)
        assert act.variance_map(q1) == pytest.approx(act.I2(Cq), rel=1e-14)
        assert act.slope_moment(q1) == pytest.approx(act.J2(Cq), rel=1e-14)
        h = 1e-6
        fd = (act.variance_map(q1 + h) - act.variance_map(q1 - h)) / (2 * h)
        assert act.variance_map_slope(q1) == pytest.approx(fd, rel=1e-8)
    for delta in (1e-300, 1e-20, 1e-6, 0.4, 1.7):
        d = mp.mpf(delta)
        theta = 2 * mp.asin(mp.sqrt(d / 2))
        w_relu = d / 2 - (mp.sin(theta) - theta * mp.cos(theta)) / (2 * mp.pi)
        assert pk.activation("relu").delta_kernel(2.0, delta) == pytest.approx(float(w_relu), rel=4e-16)
        q = mp.mpf(2)
        a = q / (1 + q)
        w_erf = 2 / (mp.pi * q) * (mp.asin(a) - mp.asin(a * (1 - d)))
        assert pk.activation("erf").delta_kernel(2.0, delta) == pytest.approx(float(w_erf), rel=1e-15)
        assert pk.activation("linear").delta_kernel(2.0, delta) == delta


def test_probit_mixtures():
    x = np.linspace(-6, 6, 101)
    np.testing.assert_allclose(erf_mixture()(x), pk.activation("erf").g(x), atol=1e-15)
    for name, tol in (("sigmoid", 2e-9), ("tanh", 4e-9)):
        act = pk.activation(name)
        assert np.max(np.abs(act.probit_mixture(x) - act.g(x))) < tol
    with pytest.raises(ValueError, match="omega, weights: scales and weights must be finite and > 0"):
        ProbitMixture(0.0, 1.0, [1.0, -1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="omega, weights: need two arrays of the same length"):
        ProbitMixture(0.0, 1.0, [1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="mean: must be a finite number"):
        ProbitMixture(np.nan, 1.0, [1.0], [1.0])
    with pytest.raises(ValueError, match="probit_mixture: differs from g"):
        pk.Activation("wrong", np.tanh, lambda x: 1 - np.tanh(x) ** 2, probit_mixture=erf_mixture())
