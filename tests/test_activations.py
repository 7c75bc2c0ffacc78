"""Gaussian expectations of every activation against Monte Carlo and quadrature."""

import numpy as np
import pytest

import phasekit as pk
from phasekit.core.activations import expect_I2, expect_I3, expect_I4, expect_J2
from phasekit.core.quadrature import psd_factor

N_MC = 2_000_000  # each tolerance is 5 standard errors of these samples
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
