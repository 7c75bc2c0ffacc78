"""Gaussian expectations by quadrature (phasekit.core.quadrature): nested conditional rules and tensor Gauss-Hermite."""

import math

import numpy as np
import pytest
from scipy import integrate

import phasekit as pk
from phasekit.core.activations import expect_I4
from phasekit.core.quadrature import nested_expectation


def _quad_line(f, points):
    """Adaptive quadrature of f over the real line, split at ``points``."""
    edges = [-np.inf] + sorted(points) + [np.inf]
    return sum(integrate.quad(f, a, b, limit=200, epsabs=1e-14, epsrel=1e-12)[0]
               for a, b in zip(edges[:-1], edges[1:]) if a < b)


def reference2(C, f1, f2, kinks=(0.0,)):
    """E[f1(x1) f2(x2)] for x ~ N(0, C) by nested adaptive quadrature in x-space.

    Outer integral over x1, inner over x2 given x1 (mean b x1, standard deviation sc),
    both split at the kinks and around the conditional mean.
    """
    s1 = np.sqrt(C[0, 0])
    b = C[0, 1] / C[0, 0]
    sc = np.sqrt(max(C[1, 1] - C[0, 1] ** 2 / C[0, 0], 0.0))

    def inner(x1):
        m = b * x1
        if sc == 0:
            return f2(m)
        dens = lambda x2: f2(x2) * np.exp(-0.5 * ((x2 - m) / sc) ** 2) / (sc * np.sqrt(2 * np.pi))  # noqa: E731
        return _quad_line(dens, list(kinks) + [m - 3 * sc, m, m + 3 * sc])

    outer = lambda x1: f1(x1) * inner(x1) * np.exp(-0.5 * (x1 / s1) ** 2) / (s1 * np.sqrt(2 * np.pi))  # noqa: E731
    return _quad_line(outer, list(kinks) + [k / b for k in kinks if b != 0] + [-3 * s1, 3 * s1])


def cov2(var, rho, ratio):
    c = rho * var * np.sqrt(ratio)
    return np.array([[var, c], [c, var * ratio]])


def test_one_dimensional_levels_reach_their_accuracy_classes():
    """E[f(x)], x ~ N(0, s^2), for smooth and kinked f and s up to sqrt(10)."""
    fs = {"tanh": np.tanh, "elu": pk.activation("elu").g, "softplus": pk.activation("softplus").g}
    for s in (0.3, 1.0, 3.16):
        C = np.array([[s * s, 0.0], [0.0, 1.0]])
        for name, f in fs.items():
            shifted = lambda x, f=f: f(x + 0.37)  # noqa: E731 - moves the kink off the origin
            ref = _quad_line(lambda x: shifted(x) * np.exp(-0.5 * (x / s) ** 2) / (s * np.sqrt(2 * np.pi)),
                             [-0.37, -3 * s, 3 * s])
            for acc, tol in (("fine", 1e-12), ("coarse", 2e-9)):
                got = nested_expectation(C, [shifted, np.ones_like], kinks=[(-0.37,), ()], accuracy=acc)
                assert abs(got - ref) <= tol * max(1.0, abs(ref)), (name, s, acc, got - ref)


def test_kinks_away_from_zero():
    """A user activation with its kink at 1: declared kinks make the quadrature exact to ~1e-12."""
    g = lambda x: np.maximum(x - 1.0, 0.0) ** 2  # noqa: E731 - g'' jumps at 1
    dg = lambda x: 2.0 * np.maximum(x - 1.0, 0.0)  # noqa: E731
    C = cov2(4.0, 0.5, 0.7)
    ref = reference2(C, g, g, kinks=(1.0,))
    assert abs(nested_expectation(C, [g, g], kinks=[(1.0,), (1.0,)]) - ref) <= 1e-11 * max(1, abs(ref))
    # the same through an Activation that declares its kink
    act = pk.Activation("relu-squared-shifted", g, dg, kinks=(1.0,))
    assert act.kinks == (1.0,) and pk.Activation("plain", g, dg).kinks == (0.0,)
    assert abs(act.I2(C) - ref) <= 1e-11 * max(1, abs(ref))


def test_singular_and_degenerate_covariances():
    tanh, elu = np.tanh, pk.activation("elu").g
    # coinciding arguments: E[f(a) f(a)] is one-dimensional
    for f in (tanh, elu):
        for var in (0.5, 9.0):
            ref = _quad_line(lambda x: f(x) ** 2 * np.exp(-0.5 * x * x / var) / np.sqrt(2 * np.pi * var),
                             [0.0, -3 * np.sqrt(var), 3 * np.sqrt(var)])
            got = nested_expectation(np.full((2, 2), var), [f, f])
            assert abs(got - ref) <= 1e-11 * max(1, ref)
    # a zero-variance argument is the constant f(0); a rank-2 4x4 pattern (a, b, a, b)
    assert nested_expectation(np.diag([2.0, 0.0]), [np.cosh, lambda x: x + 3.0]) == pytest.approx(
        3.0 * np.exp(1.0), rel=1e-13)
    C2 = cov2(3.0, 0.4, 0.8)
    C4 = C2[np.ix_([0, 1, 0, 1], [0, 1, 0, 1])]
    prod = lambda x: np.tanh(x) * elu(x)  # noqa: E731
    ref = reference2(C2, prod, prod)
    assert abs(nested_expectation(C4, [tanh, tanh, elu, elu], accuracy="coarse") - ref) <= 1e-9


def test_argument_errors():
    with pytest.raises(ValueError, match="accuracy: must be one of"):
        nested_expectation(np.eye(2), [np.tanh, np.tanh], accuracy="high")
    with pytest.raises(ValueError, match="kinks: need 2 sequences of finite"):
        nested_expectation(np.eye(2), [np.tanh, np.tanh], kinks=[(0.0,)])
    with pytest.raises(ValueError, match="funcs: need 2 functions"):
        nested_expectation(np.eye(2), [np.tanh])
    with pytest.raises(ValueError, match="C: covariances must be positive semidefinite"):
        nested_expectation(np.array([[1.0, 2.0], [2.0, 1.0]]), [np.tanh, np.tanh])
    with pytest.raises(ValueError, match="C: entries must be finite"):
        nested_expectation(np.array([[1.0, np.nan], [np.nan, 1.0]]), [np.tanh, np.tanh])


# --- the registry quadrature route of phasekit.core.activations ------------------------------

def _sig(x):
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


# Scalar definitions of g, g', g'' for the references (written independently of the
# vectorised ones in phasekit.core.activations, and much faster inside scipy.integrate.quad).
SCALAR = {
    "tanh": (math.tanh, lambda x: 1.0 - math.tanh(x) ** 2,
             lambda x: -2.0 * math.tanh(x) * (1.0 - math.tanh(x) ** 2)),
    "elu": (lambda x: x if x > 0 else math.expm1(x), lambda x: 1.0 if x > 0 else math.exp(x),
            lambda x: 0.0 if x > 0 else math.exp(x)),
    "sigmoid": (_sig, lambda x: _sig(x) * (1.0 - _sig(x)),
                lambda x: _sig(x) * (1.0 - _sig(x)) * (1.0 - 2.0 * _sig(x))),
}


@pytest.mark.parametrize("name", [pytest.param("tanh", marks=pytest.mark.slow), "elu", "sigmoid"])
def test_registry_2d_expectations_at_large_variance(name):
    """I2, J2, H2, I3 to 1e-10 (relative to max(1, |value|)) for variances up to 10."""
    act = pk.activation(name)
    g, dg, d2g = SCALAR[name]
    for C in (cov2(10.0, 0.6, 0.8), cov2(10.0, -0.999, 0.5), cov2(1.0, 0.3, 0.9)):
        refs = {"I2": reference2(C, g, g), "J2": reference2(C, dg, dg), "H2": reference2(C, d2g, g)}
        got = {"I2": act.I2(C), "J2": act.J2(C), "H2": act.H2(C)}
        # I3(a, b, c) with b = (a + c) / 2 + independent noise: E[g'(a) g(c) E[b | a, c]],
        # an independent route to Stein's lemma used by the code.
        C3 = np.zeros((3, 3))
        C3[np.ix_([0, 2], [0, 2])] = C
        C3[1, [0, 2]] = C3[[0, 2], 1] = C @ [0.5, 0.5]
        C3[1, 1] = 0.25 * C.sum() + 0.3
        refs["I3"] = 0.5 * (reference2(C, lambda x: x * dg(x), g) + reference2(C, dg, lambda x: x * g(x)))
        got["I3"] = act.I3(C3)
        for q in refs:
            assert abs(got[q] - refs[q]) <= 1e-10 * max(1.0, abs(refs[q])), (q, C, got[q] - refs[q])


def _copies():
    relu, erf = pk.activation("relu"), pk.activation("erf")
    return [(relu, pk.Activation("relu-nested", relu.g, relu.dg)),
            (erf, pk.Activation("erf-nested", erf.g, erf.dg, erf.d2g))]


def test_I4_quadrature_matches_closed_forms_of_relu_and_erf():
    """Generic and singular 4x4 covariances at variances up to 10: copies without closed forms
    (relu: a kink in g and a jump in g') against the orthant and arcsine closed forms."""
    rng = np.random.default_rng(11)
    covs = []
    for scale in (1.0, 10.0):
        for _ in range(3):
            A = rng.normal(size=(4, 5))
            C = A @ A.T
            covs.append(scale * C / np.max(np.diag(C)))
    base = covs[-1][:3, :3]
    covs += [base[np.ix_(p, p)] for p in ([0, 0, 1, 2], [0, 1, 0, 2], [0, 1, 2, 2], [0, 1, 1, 0])]
    C = np.stack(covs)
    for closed, quad in _copies():
        assert np.allclose(expect_I4(C, quad, quad, quad), closed.I4(C), rtol=0, atol=1e-8), closed.name


@pytest.mark.parametrize("name", ["tanh", "elu", "sigmoid"])
def test_I4_factorising_covariance(name):
    """(a, b) independent of (c, d): I4 = J2(a, b) I2(c, d), each by adaptive quadrature."""
    act = pk.activation(name)
    g, dg, _ = SCALAR[name]
    Cab, Ccd = cov2(9.0, 0.7, 0.6), cov2(10.0, -0.5, 0.8)
    C = np.zeros((4, 4))
    C[:2, :2], C[2:, 2:] = Cab, Ccd
    ref = reference2(Cab, dg, dg) * reference2(Ccd, g, g)
    got = act.I4(C)
    assert abs(got - ref) <= 1e-8 * max(1.0, abs(ref))


@pytest.mark.parametrize("name", ["tanh", "elu"])
def test_I4_monte_carlo_at_large_variance(name):
    act = pk.activation(name)
    rng = np.random.default_rng(3)
    A = rng.normal(size=(4, 6))
    C = A @ A.T
    C *= 10.0 / np.max(np.diag(C))
    x = rng.standard_normal((4_000_000, 4)) @ np.linalg.cholesky(C).T
    s = act.dg(x[:, 0]) * act.dg(x[:, 1]) * act.g(x[:, 2]) * act.g(x[:, 3])
    assert abs(act.I4(C) - s.mean()) <= 5 * s.std() / np.sqrt(len(s))


def test_gauss_hermite_argument_errors():
    from phasekit.core.quadrature import gaussian_expectation

    with pytest.raises(ValueError, match=r"n_nodes: must be an integer >= 1, got 0"):
        gaussian_expectation(np.eye(2), [np.tanh, np.tanh], 0)
    with pytest.raises(ValueError, match=r"n_nodes: must be an integer >= 1, got 2.5"):
        gaussian_expectation(np.eye(2), [np.tanh, np.tanh], 2.5)
    with pytest.raises(ValueError, match=r"C: need covariances of shape \(\.\.\., d, d\), got \(2, 3\)"):
        gaussian_expectation(np.ones((2, 3)), [np.tanh, np.tanh], 8)
