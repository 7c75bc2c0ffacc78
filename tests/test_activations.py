"""Gaussian expectations of every activation against Monte Carlo and quadrature."""

import numpy as np
import pytest

import phasekit as pk
from phasekit.core.activations import expect_I2, expect_I3, expect_I4, expect_J2
from phasekit.core.quadrature import gaussian_expectation, psd_factor

N_MC = 10_000_000
CHUNK = 1_000_000


def random_cov(d, rng, scale=1.0):
    A = rng.normal(size=(d, d + 1)) * scale
    return A @ A.T / (d + 1)


def singular_covs(rng):
    """Covariances with coinciding arguments: (a, a, c, d), (a, b, a, d), (a, b, c, c), x = y patterns."""
    base = random_cov(3, rng)
    out = []
    for pattern in ([0, 0, 1, 2], [0, 1, 0, 2], [0, 1, 2, 2], [0, 1, 1, 0]):
        out.append(base[np.ix_(pattern, pattern)])
    return out


def mc_moments(C, act, seed):
    """Monte Carlo means and standard errors of I2, J2, I3, I4 (args = leading rows of C)."""
    rng = np.random.default_rng(seed)
    L = psd_factor(C)
    sums = np.zeros((4, 2))
    for _ in range(N_MC // CHUNK):
        x = rng.standard_normal((CHUNK, C.shape[0])) @ L.T
        a, b, c, d = x.T
        samples = [
            act.g(a) * act.g(b),
            act.dg(a) * act.dg(b),
            act.dg(a) * b * act.g(c),
            act.dg(a) * act.dg(b) * act.g(c) * act.g(d),
        ]
        for j, s in enumerate(samples):
            sums[j] += s.sum(), (s * s).sum()
    mean = sums[:, 0] / N_MC
    se = np.sqrt((sums[:, 1] / N_MC - mean**2) / N_MC)
    return mean, se


def exact_moments(C, act):
    return np.array([act.I2(C[:2, :2]), act.J2(C[:2, :2]), act.I3(C[:3, :3]), act.I4(C)])


# Monte Carlo checks of every route at the variances met in the dynamics (large variances
# and kinks: tests/test_gaussian.py against adaptive quadrature).
SCALE = {"erf": 1.0, "relu": 1.0, "linear": 1.0, "tanh": 1.0, "sigmoid": 1.0, "elu": 1.0}


@pytest.mark.parametrize("name", ["erf", "relu", "linear", "tanh", "sigmoid", "elu"])
def test_moments_match_monte_carlo(name):
    act = pk.activation(name)
    rng = np.random.default_rng(12)
    covs = [random_cov(4, rng), random_cov(4, rng, 1.5)] + singular_covs(rng)[:2]
    covs = [SCALE[name] * C for C in covs]
    for j, C in enumerate(covs):
        mean, se = mc_moments(C, act, seed=100 + j)
        exact = exact_moments(C, act)
        # 5 standard errors, plus a floor for quantities whose samples have zero variance
        tol = 5 * se + 1e-12
        assert np.all(np.abs(exact - mean) <= tol), (name, j, exact, mean, se)


@pytest.mark.parametrize("name", ["erf", "relu", "tanh", "sigmoid"])
def test_moments_on_more_singular_covariances(name):
    act = pk.activation(name)
    rng = np.random.default_rng(5)
    for j, C in enumerate(singular_covs(rng)[2:]):
        C = SCALE[name] * C
        mean, se = mc_moments(C, act, seed=200 + j)
        exact = exact_moments(C, act)
        assert np.all(np.abs(exact - mean) <= 5 * se + 1e-12), (name, j, exact, mean, se)


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


def test_vectorised_over_leading_axes():
    erf = pk.activation("erf")
    rng = np.random.default_rng(1)
    C = np.stack([random_cov(4, rng) for _ in range(6)]).reshape(2, 3, 4, 4)
    batch = erf.I4(C)
    assert batch.shape == (2, 3)
    assert np.allclose(batch.ravel(), [erf.I4(c) for c in C.reshape(6, 4, 4)], rtol=0, atol=1e-15)


def test_mixed_activations_reduce_to_closed_forms_when_equal():
    """Quadrature path (different objects) agrees with the closed form of the same function."""
    erf = pk.activation("erf")
    clone = pk.Activation("erf-quadrature", erf.g, erf.dg, erf.d2g)
    rng = np.random.default_rng(7)
    C = 0.6 * random_cov(4, rng)
    assert expect_I2(C[:2, :2], erf, clone) == pytest.approx(erf.I2(C[:2, :2]), abs=1e-12)
    assert expect_J2(C[:2, :2], erf, clone) == pytest.approx(erf.J2(C[:2, :2]), abs=1e-12)
    assert expect_I3(C[:3, :3], erf, clone) == pytest.approx(erf.I3(C[:3, :3]), abs=1e-12)
    # the 4-D quadrature is good to ~1e-9 (tests/test_gaussian.py)
    assert expect_I4(C, erf, clone, erf) == pytest.approx(erf.I4(C), abs=1e-9)


def test_h2_without_second_derivative_uses_stein():
    erf = pk.activation("erf")
    nod2 = pk.Activation("erf-no-d2", erf.g, erf.dg)
    C = random_cov(2, np.random.default_rng(9))
    assert nod2.H2(C) == pytest.approx(erf.H2(C), abs=1e-12)


def test_registry_user_activation_and_errors():
    act = pk.register_activation("test-cubic", lambda x: x**3, lambda x: 3 * x**2, overwrite=True)
    assert pk.activation("test-cubic") is act
    assert "test-cubic" in pk.available_activations()
    # E[a^3 b^3] = 9 C_ab + 6 C_ab^3 for unit variances (Isserlis)
    c = 0.3
    C = np.array([[1.0, c], [c, 1.0]])
    assert act.I2(C) == pytest.approx(9 * c + 6 * c**3, rel=1e-12)
    with pytest.raises(ValueError, match="already registered"):
        pk.register_activation("test-cubic", lambda x: x, lambda x: x)
    with pytest.raises(ValueError, match="activation: unknown activation 'nope'"):
        pk.activation("nope")
    with pytest.raises(ValueError, match="closed_forms: unknown key"):
        pk.Activation("bad", np.tanh, np.tanh, closed_forms={"I5": None})
    with pytest.raises(ValueError, match=r"C: I4 needs covariances of shape \(\.\.\., 4, 4\)"):
        act.I4(np.eye(3))


def test_fused_erf_h2_j2_equals_separate_forms():
    erf = pk.activation("erf")
    C = random_cov(2, np.random.default_rng(4))
    args = (C[0, 0], C[1, 1], C[0, 1])
    h, j = erf.closed_forms["H2J2"](*args)
    assert h == pytest.approx(erf.H2(C), rel=1e-14) and j == pytest.approx(erf.J2(C), rel=1e-14)


# --- closed forms used for accurate eps_g near the perfect solution -------------------


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


@pytest.mark.parametrize("kwargs,match", [
    (dict(g=3, dg=4), r"g: must be a callable mapping an ndarray to an ndarray of the same shape "
                      r"with finite values, got int 3"),
    (dict(g=np.tanh, dg=4), r"dg: must be a callable"),
    (dict(g=lambda x: 1.0, dg=np.cos), r"g: .*gave float64 of shape \(\)"),
    (dict(g=np.log, dg=np.cos), r"g: .*with finite values"),
    (dict(g=lambda x: x[0], dg=np.cos), r"g: .*of shape \(3,\)"),
    (dict(g=lambda x: x.foo, dg=np.cos), r"g: .*raised AttributeError"),
    (dict(g=np.tanh, dg=np.cos, d2g="x"), r"d2g: must be a callable"),
    (dict(g=np.tanh, dg=np.cos, closed_forms={"I2": 1.0}), r"closed_forms: values must be callables"),
    (dict(g=np.tanh, dg=np.cos, quadrature_nodes=(0, 5)), r"quadrature_nodes: must be None or a pair"),
    (dict(g=np.tanh, dg=np.cos, quadrature_nodes=(True, 5)), r"quadrature_nodes: must be None or a pair"),
    (dict(g=np.tanh, dg=np.cos, kinks=("a",)), r"kinks: must be a sequence of finite numbers"),
    (dict(g=np.tanh, dg=np.cos, kinks=(np.inf,)), r"kinks: must be a sequence of finite numbers"),
    (dict(g=np.tanh, dg=np.cos, kinks="0"), r"kinks: must be a sequence of finite numbers"),
    (dict(g=np.tanh, dg=np.cos, overwrite="no"), r"overwrite: must be True or False"),
])
def test_register_activation_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pk.register_activation("test-bad", **kwargs)
    assert "test-bad" not in pk.available_activations()


def test_register_activation_rejects_mixed_forms():
    with pytest.raises(ValueError, match=r"name: must be a non-empty string or an Activation, got 3"):
        pk.register_activation(3, np.tanh, np.cos)
    with pytest.raises(ValueError, match=r"g, kinks: not allowed together with a ready Activation"):
        pk.register_activation(pk.activation("tanh"), g=np.tanh, kinks=(1.0,), overwrite=True)
    with pytest.raises(ValueError, match=r"name: must be a non-empty string, got ''"):
        pk.Activation("", np.tanh, np.cos)
    act = pk.Activation("gh", np.tanh, np.cos, quadrature_nodes=[40, 12], kinks=[1, 0, 1])
    assert act.quadrature_nodes == (40, 12) and act.kinks == (0.0, 1.0)
