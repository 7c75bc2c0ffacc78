"""Orthant probabilities and ReLU expectations of phasekit.core.orthant.

Three kinds of reference, each independent of the path-integral derivation
used by the module:

* Monte Carlo (10^7 samples per covariance, 5 standard errors), on random and
  on singular covariances built from explicit linear maps of independent
  normals, so coinciding arguments are exactly equal in every sample;
* deterministic adaptive quadrature: conditioning on the ReLU arguments
  ``(c, d)`` leaves ``P(a > 0, b > 0 | c, d)``, a bivariate normal CDF given by
  Owen's T function, integrated over the quadrant ``c, d > 0`` in polar
  coordinates with nested ``scipy.integrate.quad``;
* closed forms: independent blocks, equicorrelation 1/2, and rank-2
  covariances, where ``x = G z`` with ``z`` in the plane and the orthant is an
  arc of directions.

In addition: the two-step Stein reduction agrees with relu_I4; continuity and
the square-root law near singular matrices; the automatically chosen
quadrature agrees with a very fine rule on nearly singular matrices; batch,
scalar, zero-variance and invalid inputs.
"""

from functools import lru_cache

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr, owens_t

import phasekit as pk
from phasekit.core import orthant
from phasekit.core.orthant import orthant2, orthant3, orthant4, relu_I4
from phasekit.core.rules import gauss_legendre_interval

RELU = pk.activation("relu")


def relu_I2(C):
    """``E[relu(a) relu(b)]`` from the arc-cosine kernel (phasekit.core.closed_forms)."""
    return RELU.I2(np.asarray(C, dtype=float))


def relu_I3(C):
    """``E[theta(a) b relu(c)]`` by Stein's lemma on the arc-cosine kernels."""
    return RELU.I3(np.asarray(C, dtype=float))

N_MC = 10_000_000
CHUNK = 1_000_000


# --- covariances --------------------------------------------------------------------


def random_factor(rng, d=4, k=5):
    """Rows = linear maps of k independent normals, with unequal scales."""
    return rng.normal(size=(d, k)) * rng.uniform(0.5, 1.5, size=(d, 1))


def well_conditioned(rng, d=4):
    """Covariance whose correlation matrix has smallest eigenvalue >= 0.05."""
    while True:
        G = random_factor(rng, d, d + 2)
        C = G @ G.T
        s = np.sqrt(np.diag(C))
        if np.linalg.eigvalsh(C / np.outer(s, s))[0] >= 0.05:
            return C


def singular_factors():
    """Singular patterns met in the dynamics, as rows of G (C = G G^T)."""
    rng = np.random.default_rng(20240611)
    g = rng.normal(size=(4, 6))
    y = rng.normal(size=(2, 6))  # two teacher vectors
    cases = {}
    for name, rows in {
        "a==b": [0, 0, 2, 3],
        "c==a": [0, 1, 0, 3],
        "c==d": [0, 1, 2, 2],
        "d==b": [0, 1, 2, 1],
    }.items():
        cases[name] = g[rows]
    cases["d==-b"] = np.array([g[0], g[1], g[2], -g[1]])
    cases["c==-a"] = np.array([g[0], g[1], -0.7 * g[0], g[3]])
    # Perfect solution x1 = y1, x2 = y2: blocks (x1, x1, y1, x2) and (x1, x2, y1, y2).
    cases["x1,x1,y1,x2"] = np.array([y[0], y[0], y[0], y[1]])
    cases["x1,x2,y1,y2"] = np.array([y[0], y[1], y[0], y[1]])
    # Symmetric plateau: both students at (y1 + y2) / 2.
    cases["plateau"] = np.array([0.5 * (y[0] + y[1]), 0.5 * (y[0] + y[1]), y[0], y[1]])
    # Three students in the span of two teachers: rank 2, no collinear pair.
    cases["rank2"] = np.array([y[0] + 0.3 * y[1], 0.5 * y[0] - y[1], -0.2 * y[0] + y[1],
                               y[0] + 0.8 * y[1]])
    # One exact linear relation among all four.
    cases["rank3"] = np.array([g[0], g[1], g[2], g[0] - 0.5 * g[1] + 0.7 * g[2]])
    return cases


# --- Monte Carlo --------------------------------------------------------------------


MC_SINGULAR = ["a==b", "c==a", "c==d", "d==-b", "x1,x1,y1,x2", "rank3"]
MC_RANDOM_SEEDS = [1, 2, 3]


def mc_random_factor(seed):
    """Random 4x6 factor (a latent dimension shared with singular_factors)."""
    return random_factor(np.random.default_rng(seed), 4, 6)


@lru_cache(maxsize=None)
def mc_moments_all():
    """Monte Carlo means and standard errors for every Monte Carlo case.

    All cases are linear maps x = G z of the same 6-dimensional latent normal
    z, so one stream of N_MC samples of z serves them all (each case on its
    own is an ordinary Monte Carlo estimate).  Per case: P2, P3, P4, J2, I2,
    I3, I4 for the leading arguments of (a, b, c, d).
    """
    factors = {name: singular_factors()[name] for name in MC_SINGULAR}
    factors.update({seed: mc_random_factor(seed) for seed in MC_RANDOM_SEEDS})
    rng = np.random.default_rng(2024)
    sums = {key: np.zeros((7, 2)) for key in factors}
    for _ in range(N_MC // CHUNK):
        z = rng.standard_normal((6, CHUNK))
        for key, G in factors.items():
            a, b, c, d = G @ z
            pa = a > 0
            p2 = pa & (b > 0)
            p3 = p2 & (c > 0)
            p4 = p3 & (d > 0)
            for j, p in ((0, p2), (1, p3), (2, p4), (3, p2)):
                n = np.count_nonzero(p)
                sums[key][j] += n, n  # indicator: sum of squares = sum
            for j, v in ((4, np.maximum(a, 0.0) * np.maximum(b, 0.0)),
                         (5, np.where(pa, b * np.maximum(c, 0.0), 0.0)),
                         (6, np.where(p4, c * d, 0.0))):
                sums[key][j] += v.sum(), v @ v
    out = {}
    for key, acc in sums.items():
        mean = acc[:, 0] / N_MC
        out[key] = mean, np.sqrt(np.clip(acc[:, 1] / N_MC - mean**2, 0.0, None) / N_MC)
    return out


def exact_moments(C):
    return np.array([orthant2(C[:2, :2]), orthant3(C[:3, :3]), orthant4(C),
                     RELU.J2(C[:2, :2]), relu_I2(C[:2, :2]), relu_I3(C[:3, :3]), relu_I4(C)])


NAMES = ["P2", "P3", "P4", "J2", "I2", "I3", "I4"]


def assert_within_mc(exact, mean, se, label):
    # 5 standard errors, plus round-off slack for the exactly-zero cases (se = 0).
    bad = np.abs(exact - mean) > 5.0 * se + 1e-12
    assert not bad.any(), (
        f"{label}: " + ", ".join(f"{NAMES[j]} exact {exact[j]:.6g} MC {mean[j]:.6g} +- {se[j]:.2g}"
                                 for j in np.flatnonzero(bad)))


@pytest.mark.parametrize("seed", MC_RANDOM_SEEDS)
def test_random_covariances_match_monte_carlo(seed):
    G = mc_random_factor(seed)
    mean, se = mc_moments_all()[seed]
    assert_within_mc(exact_moments(G @ G.T), mean, se, f"seed {seed}")


# The rank-2 patterns (x1,x2,y1,y2), plateau, rank2 also have exact closed forms below.
@pytest.mark.parametrize("name", MC_SINGULAR)
def test_singular_covariances_match_monte_carlo(name):
    G = singular_factors()[name]
    mean, se = mc_moments_all()[name]
    assert_within_mc(exact_moments(G @ G.T), mean, se, name)


def test_monte_carlo_comparison_has_power():
    # The 5-SE criterion must reject plausible mistakes: the wrong sign of a
    # sizeable covariance entry, or exchanged step/ReLU arguments.
    G = mc_random_factor(1)
    C = G @ G.T
    mean, se = mc_moments_all()[1]
    s = np.sqrt(np.diag(C))
    wrong = [C[np.ix_([2, 3, 0, 1], [2, 3, 0, 1])]]
    for i, j in zip(*np.triu_indices(4, 1)):
        flipped = C.copy()
        flipped[i, j] = flipped[j, i] = -C[i, j]
        if abs(C[i, j]) > 0.3 * s[i] * s[j] and np.linalg.eigvalsh(flipped)[0] > 0:
            wrong.append(flipped)
    assert len(wrong) >= 3
    for W in wrong:
        assert abs(relu_I4(W) - mean[6]) > 5.0 * se[6]
    flipped_ab = C[:2, :2] * np.array([[1, -1], [-1, 1]])
    assert abs(relu_I2(flipped_ab) - mean[4]) > 5.0 * se[4]
    assert abs(orthant2(flipped_ab) - mean[0]) > 5.0 * se[0]


# --- deterministic reference: condition on the ReLU arguments ----------------------------


def bvn_upper(mu, sd, rho):
    """P(X1 > 0, X2 > 0) for X ~ N(mu, [[sd1^2, .], [., sd2^2]]) with correlation rho.

    Owen's T representation of the bivariate normal CDF; degenerate components
    (sd = 0 or |rho| = 1) are handled exactly.
    """
    h, k = mu[0] / sd[0], mu[1] / sd[1]
    if rho >= 1.0:
        return ndtr(min(h, k))
    if rho <= -1.0:
        return max(0.0, ndtr(h) + ndtr(k) - 1.0)
    h = h if h != 0.0 else 1e-300
    k = k if k != 0.0 else 1e-300
    sq = np.sqrt(1.0 - rho * rho)
    return (0.5 * ndtr(h) + 0.5 * ndtr(k) - owens_t(h, (k - rho * h) / (h * sq))
            - owens_t(k, (h - rho * k) / (k * sq)) - (0.5 if h * k < 0 else 0.0))


def conditional_step_probability(C):
    """Function (c, d) -> P(a > 0, b > 0 | c, d) for covariance C of (a, b, c, d)."""
    B = C[:2, 2:] @ np.linalg.inv(C[2:, 2:])
    S = C[:2, :2] - B @ C[2:, :2]
    # A conditional variance at round-off level means a (or b) is a function of (c, d).
    fixed = np.diag(S) <= 1e-12 * np.diag(C[:2, :2])
    sd = np.sqrt(np.clip(np.diag(S), 0.0, None))
    rho = 0.0 if fixed.any() else np.clip(S[0, 1] / (sd[0] * sd[1]), -1.0, 1.0)

    def prob(c, d):
        mu = B @ np.array([c, d])
        if fixed.any():
            ind = [mu[i] > 0 if fixed[i] else True for i in range(2)]
            free = [i for i in range(2) if not fixed[i]]
            if not all(ind):
                return 0.0
            return ndtr(mu[free[0]] / sd[free[0]]) if free else 1.0
        return bvn_upper(mu, sd, rho)

    return prob


def quadrature_reference(C, relu=True):
    """E[theta(a) theta(b) relu(c) relu(d)] (or P4) by nested adaptive quadrature.

    (c, d) = L z with L the Cholesky factor of C[2:, 2:]; in polar coordinates
    z = r (cos t, sin t) the quadrant c, d > 0 is t in (psi - pi/2, pi/2) with
    psi the angle of the second row of L.
    """
    L = np.linalg.cholesky(C[2:, 2:])
    prob = conditional_step_probability(C)
    psi = np.arctan2(L[1, 1], L[1, 0])

    def inner(r, t):
        c, d = L @ (r * np.array([np.cos(t), np.sin(t)]))
        weight = c * d if relu else 1.0
        return weight * prob(c, d) * r * np.exp(-0.5 * r * r) / (2.0 * np.pi)

    def outer(t):
        return integrate.quad(inner, 0.0, 40.0, args=(t,), epsabs=1e-15, epsrel=1e-13,
                              limit=200)[0]

    return integrate.quad(outer, psi - 0.5 * np.pi, 0.5 * np.pi, epsabs=1e-14, epsrel=1e-13,
                          limit=200)[0]


@pytest.mark.parametrize("seed", range(4))
def test_relu_I4_and_orthant4_match_quadrature(seed):
    C = well_conditioned(np.random.default_rng(seed + 10))
    assert abs(relu_I4(C) - quadrature_reference(C)) < 1e-10
    assert abs(orthant4(C) - quadrature_reference(C, relu=False)) < 1e-11


@pytest.mark.parametrize("name", ["a==b", "c==a", "d==b", "d==-b", "c==-a"])
def test_singular_relu_I4_matches_quadrature(name):
    G = singular_factors()[name]
    C = G @ G.T
    assert abs(relu_I4(C) - quadrature_reference(C)) < 1e-9
    assert abs(orthant4(C) - quadrature_reference(C, relu=False)) < 1e-10


def test_relu_I4_c_equals_d_matches_one_dimensional_quadrature():
    # c == d: E[theta(a) theta(b) c^2 1(c > 0)], conditioning on c alone.
    G = singular_factors()["c==d"]
    C = G @ G.T
    var_c = C[2, 2]
    beta = C[:2, 2] / var_c
    S = C[:2, :2] - np.outer(beta, beta) * var_c
    sd = np.sqrt(np.diag(S))
    rho = S[0, 1] / (sd[0] * sd[1])

    def f(c):
        return c * c * bvn_upper(beta * c, sd, rho) * np.exp(-0.5 * c * c / var_c)

    ref = integrate.quad(f, 0.0, 40.0 * np.sqrt(var_c), epsabs=1e-15, epsrel=1e-13,
                         limit=200)[0] / np.sqrt(2.0 * np.pi * var_c)
    assert abs(relu_I4(C) - ref) < 1e-10


# --- closed-form special cases -------------------------------------------------------


def test_orthant4_closed_forms():
    assert abs(orthant4(np.eye(4)) - 1.0 / 16.0) < 1e-15
    equi = np.full((4, 4), 0.5) + 0.5 * np.eye(4)  # P = 1 / (n + 1)
    assert abs(orthant4(3.0 * equi) - 0.2) < 1e-13
    rng = np.random.default_rng(0)
    for _ in range(5):
        A, B = (well_conditioned(rng, 2) for _ in range(2))
        C = np.zeros((4, 4))
        C[:2, :2], C[2:, 2:] = A, B
        perm = rng.permutation(4)
        C = C[np.ix_(perm, perm)]
        assert abs(orthant4(C) - orthant2(A) * orthant2(B)) < 1e-13


def test_small_closed_forms_against_known_values():
    # Independent entries: 1/4, 1/8; E[relu(a)^2] = var / 2; E[relu(a) relu(b)] for
    # independent a, b = sd_a sd_b / (2 pi); theta(a) relu(-a) = 0.
    assert orthant2(np.diag([2.0, 3.0])) == 0.25
    assert abs(orthant3(np.diag([1.0, 2.0, 3.0])) - 0.125) < 1e-16
    assert abs(relu_I2(np.full((2, 2), 3.0)) - 1.5) < 1e-15
    assert abs(relu_I2(np.diag([4.0, 9.0])) - 6.0 / (2 * np.pi)) < 1e-15
    assert abs(relu_I2(np.array([[1.0, -1.0], [-1.0, 1.0]]))) < 1e-16
    assert abs(RELU.J2(np.array([[1.0, -1.0], [-1.0, 1.0]]))) < 1e-16
    # theta(a) a relu(a) = relu(a)^2: E = var / 2.
    assert abs(relu_I3(np.full((3, 3), 2.0)) - 1.0) < 1e-15
    # theta(a) b relu(-a) with b = a: zero.
    assert abs(relu_I3(np.array([[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]))) < 1e-16


def test_closed_forms_on_collinear_pairs_with_round_off():
    # Collinear pairs assembled as G G^T carry ~1e-16 rounding in rho, which a
    # plain asin would turn into ~1e-8 errors; the exact values are recovered.
    rng = np.random.default_rng(4)
    for _ in range(20):
        g, h = rng.normal(size=(2, 5))
        v = g @ g
        anti = np.array([g, -0.7 * g])
        assert abs(orthant2(anti @ anti.T)) < 1e-15
        same = np.array([g, 1.3 * g])
        assert abs(orthant2(same @ same.T) - 0.5) < 1e-15
        three = np.array([g, h, -0.7 * g])
        assert abs(orthant3(three @ three.T)) < 1e-15
        # the arc-cosine kernels take their inputs as exact: near collinear pairs lose only
        # the square root of the rounding of C (orthant2 snaps it away)
        assert abs(relu_I2(same @ same.T) - 0.65 * v) < 1e-14 * v


def rank2_reference(G):
    """Exact P4 and I4 for x = G z with z in the plane (G of shape (4, 2)).

    The orthant is the arc of directions u_t with g_i . u_t > 0 for all i, and
    E[r^2] = 2 for the radius, so I4 = (1/pi) int_arc (g_c . u)(g_d . u) dt.
    """
    psi = np.arctan2(G[:, 1], G[:, 0])
    rel = np.angle(np.exp(1j * (psi - psi[0])))  # in (-pi, pi]
    lo = max([-0.5 * np.pi] + [x - 0.5 * np.pi for x in rel if x >= 0])
    hi = min([0.5 * np.pi] + [x + 0.5 * np.pi for x in rel if x < 0])
    if hi <= lo:
        return 0.0, 0.0
    lo, hi = lo + psi[0], hi + psi[0]
    nc, nd = np.linalg.norm(G[2]), np.linalg.norm(G[3])
    ssum = psi[2] + psi[3]
    integral = 0.5 * nc * nd * (np.cos(psi[2] - psi[3]) * (hi - lo)
                                + 0.5 * (np.sin(2 * hi - ssum) - np.sin(2 * lo - ssum)))
    return (hi - lo) / (2 * np.pi), integral / np.pi


def test_rank2_covariances_exact():
    rng = np.random.default_rng(3)
    planar = [rng.normal(size=(4, 2)) for _ in range(20)]
    e1, e2 = np.eye(2)
    planar += [np.array([e1, e1, e1, e2]), np.array([e1, e2, e1, e2]),
               np.array([e1, e2, 0.9 * e1, 1.1 * e2]), np.array([e1, -e1, e1, e2]),
               np.array([(e1 + e2) / 2, (e1 + e2) / 2, e1, e2])]
    checked_nonzero = 0
    for G in planar:
        C = G @ G.T
        P4, I4 = rank2_reference(G)
        assert abs(orthant4(C) - P4) < 1e-12
        assert abs(relu_I4(C) - I4) < 1e-11
        checked_nonzero += I4 > 1e-3
    assert checked_nonzero >= 8


def test_stein_reduction_agrees():
    # The two-step Stein reduction (see the relu_I4 docstring): E[c d 1(x > 0)] =
    # C_cd P4 + sum_{k in a,b,c} C_ck phi(0; C_kk) E[d 1(others > 0) | x_k = 0], and
    # the conditional expectation = sum_m S_dm phi(0; S_mm) P(rest > 0 | x_k = x_m = 0).
    def cond(C, idx):
        keep = [i for i in range(C.shape[0]) if i not in idx]
        A = C[np.ix_(keep, idx)] @ np.linalg.inv(C[np.ix_(idx, idx)])
        return C[np.ix_(keep, keep)] - A @ C[np.ix_(idx, keep)], keep

    def stein(C):
        total = C[2, 3] * orthant4(C)
        for k in (0, 1, 2):
            S, keep = cond(C, [k])
            inner = 0.0
            for m in keep:
                rest = [i for i in range(4) if i not in (k, m)]
                R2, _ = cond(C, [k, m])
                P2 = 1.0 if len(rest) == 0 else orthant2(R2)
                jm = keep.index(m)
                inner += S[keep.index(3), jm] / np.sqrt(2 * np.pi * S[jm, jm]) * P2
            total += C[2, k] / np.sqrt(2 * np.pi * C[k, k]) * inner
        return total

    rng = np.random.default_rng(5)
    for _ in range(20):
        C = well_conditioned(rng)
        assert abs(relu_I4(C) - stein(C)) < 1e-12 * np.sqrt(C[2, 2] * C[3, 3])


# --- singular limits and continuity ----------------------------------------------------


def test_coinciding_arguments_reduce_to_lower_dimension():
    rng = np.random.default_rng(8)
    for _ in range(10):
        C3 = well_conditioned(rng, 3)
        # (a, a, c, d): P4 = P3(a, c, d).
        C = C3[np.ix_([0, 0, 1, 2], [0, 0, 1, 2])]
        assert abs(orthant4(C) - orthant3(C3)) < 1e-12
        # (a, a, a, a): theta(a)^2 relu(a)^2, E = C_aa / 2.
        C = C3[np.ix_([0, 0, 0, 0], [0, 0, 0, 0])]
        assert abs(relu_I4(C) - 0.5 * C3[0, 0]) < 1e-12
        # (a, b, c, -b): theta(b) relu(-b) = 0.
        G = np.linalg.cholesky(C3)
        Gm = np.array([G[0], G[1], G[2], -G[1]])
        assert abs(relu_I4(Gm @ Gm.T)) < 1e-12
        assert abs(orthant4(Gm @ Gm.T)) < 1e-12
        # (a, b, c, c) with b independent of (a, c) reduces to E[theta(a) relu(c)^2] / 2.
        C = np.zeros((4, 4))
        C[np.ix_([0, 2, 3], [0, 2, 3])] = C3[np.ix_([0, 1, 1], [0, 1, 1])]
        C[1, 1] = 1.0
        rho = C3[0, 1] / np.sqrt(C3[0, 0] * C3[1, 1])
        # E[theta(a) c^2 1(c>0)] = C_cc (1/4 + asin(rho)/(2 pi) + rho sqrt(1-rho^2)/(2 pi))
        ref = C3[1, 1] * (0.25 + (np.arcsin(rho) + rho * np.sqrt(1 - rho**2)) / (2 * np.pi))
        assert abs(relu_I4(C) - 0.5 * ref) < 1e-12


@pytest.mark.parametrize("pattern", [(0, 1), (2, 3), (0, 2), (1, 3)])
def test_near_collinear_pair_is_continuous(pattern):
    # Pair at correlation 1 - eta: the value approaches the singular one like
    # sqrt(eta) (the square-root law of asin near 1), never jumps.
    i, j = pattern
    g = np.random.default_rng(11).normal(size=(4, 6))
    noise = np.random.default_rng(12).normal(size=6)
    values, etas = [], [0.0, 1e-12, 1e-10, 1e-8, 1e-6]
    for eta in etas:
        G = g.copy()
        G[j] = g[i] + np.sqrt(eta) * noise
        values.append(float(relu_I4(G @ G.T)))
    diffs = np.abs(np.array(values[1:]) - values[0])
    bound = 10.0 * np.sqrt(np.array(etas[1:])) + 1e-9
    assert np.all(diffs < bound), diffs
    # sqrt law: diff / sqrt(eta) is the same (to 2%) at every scale, which also
    # shows that the quadrature resolves the boundary layer of width sqrt(eta).
    k = diffs / np.sqrt(etas[1:])
    assert np.all(np.abs(k - k[1]) <= 0.02 * abs(k[1]) + 1e-6), k


def test_near_singular_matches_quadrature_reference():
    # A nearly rank-3 matrix (smallest correlation eigenvalue ~1e-8): the graded
    # quadrature keeps the 1e-10 accuracy.
    g = np.random.default_rng(13).normal(size=(4, 6))
    noise = np.random.default_rng(14).normal(size=6)
    G = g.copy()
    G[3] = g[0] - 0.5 * g[1] + 0.7 * g[2] + 1e-4 * noise
    C = G @ G.T
    assert abs(relu_I4(C) - quadrature_reference(C)) < 1e-10


def fine_rule_values(monkeypatch, C):
    """orthant4 and relu_I4 with every matrix on a very fine composite rule.

    35 geometric panels from s = 1e-7 to 1 with 30 Gauss-Legendre nodes each:
    resolves boundary layers down to a correlation eigenvalue of ~1e-13.
    """
    import phasekit.core.orthant as mod

    edges = np.concatenate([[0.0], np.logspace(-7, 0, 36)])
    parts = [gauss_legendre_interval(lo, hi, 30) for lo, hi in zip(edges[:-1], edges[1:])]
    s = np.concatenate([p[0] for p in parts])
    w = np.concatenate([p[1] for p in parts])
    with monkeypatch.context() as m:
        m.setattr(mod, "_rule", lambda level: (s, 2.0 * s * w))
        m.setattr(mod, "_levels", lambda R, lam, gap: np.zeros(len(R), dtype=int))
        return orthant4(C), relu_I4(C)


def test_graded_quadrature_resolves_near_singular_matrices(monkeypatch):
    # Families approaching the singular patterns at distance eps (smallest
    # eigenvalue ~eps^2): the automatically chosen rule agrees with a very fine
    # one.  Without the graded panels the error would be ~eps (up to 1e-5).
    rng = np.random.default_rng(15)
    mats = []
    for name, G in singular_factors().items():
        for eps in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
            H = G + eps * rng.normal(size=G.shape)
            mats.append(H @ H.T)
    # Exactly rank-2 matrices with a nearly collinear pair (a singular matrix
    # hiding a nearly singular block).
    for eps in (1e-2, 1e-4, 1e-6):
        H = rng.normal(size=(4, 2))
        H[1] = H[0] + eps * rng.normal(size=2)
        mats.append(H @ H.T)
    C = np.array(mats)
    P4_fine, I4_fine = fine_rule_values(monkeypatch, C)
    scale = np.sqrt(C[:, 2, 2] * C[:, 3, 3])
    assert np.abs(orthant4(C) - P4_fine).max() < 1e-11
    assert np.abs((relu_I4(C) - I4_fine) / scale).max() < 1e-11


@pytest.mark.parametrize("name", ["rank2", "rank3", "plateau", "x1,x2,y1,y2"])
def test_rank_deficient_limit_from_inside_the_cone(name):
    # Non-pairwise rank deficiency: I4 is continuous, and the value at C is the
    # limit of C + eps diag(C); the distance shrinks like sqrt(eps) or faster.
    G = singular_factors()[name]
    C = G @ G.T
    D = np.diag(np.diag(C))
    at = float(relu_I4(C))
    diffs = [abs(float(relu_I4(C + eps * D)) - at) for eps in (1e-6, 1e-8, 1e-10)]
    assert diffs[0] < 1e-2 and diffs[1] < 1e-3 and diffs[2] < 1e-4, diffs
    assert diffs[2] <= 1e-2 * diffs[0] + 1e-14, diffs  # at least the sqrt(eps) rate


# --- exactly coinciding arguments: closed forms of three variables ---------------------

# Every way two of (a, b, c, d) can be the same variable (and some with three or four).
COINCIDING_PATTERNS = [[0, 0, 2, 3], [0, 1, 0, 3], [0, 1, 1, 3], [0, 1, 2, 0], [0, 1, 2, 1],
                       [0, 1, 2, 2], [0, 0, 2, 2], [0, 0, 0, 3], [0, 1, 0, 1], [0, 1, 0, 0],
                       [0, 0, 0, 0], [0, 1, 1, 1], [0, 0, 2, 0]]


def path_integral(C, rule=None):
    """relu_I4 by the module's path integral alone (no closed form for coinciding arguments).

    ``rule``: optional ``(s, weights)`` used for every matrix instead of the automatic choice.
    """
    import phasekit.core.orthant as mod

    C = np.asarray(C, dtype=float).reshape(-1, 4, 4)
    sd = np.sqrt(np.diagonal(C, axis1=-2, axis2=-1))
    R = C / (sd[:, :, None] * sd[:, None, :])
    R = np.clip(0.5 * (R + np.swapaxes(R, -1, -2)), -1.0, 1.0)
    R[:, range(4), range(4)] = 1.0
    if rule is None:
        return mod._path_values(R, True)[1] * sd[:, 2] * sd[:, 3]
    lam, V = np.linalg.eigh(R)
    lam = np.where(lam < mod._LAM_EXACT, 0.0, lam)
    s, w = rule
    _, F = mod._path_integrand(lam, V, mod._pair_coefficients(R), s, True)
    return (1.0 / (8.0 * np.pi) + R[:, 2, 3] / 16.0 + F @ w) * sd[:, 2] * sd[:, 3]


def fine_rule():
    """35 geometric panels from s = 1e-7 to 1, 30 Gauss-Legendre nodes each (as fine_rule_values)."""
    edges = np.concatenate([[0.0], np.logspace(-7, 0, 36)])
    parts = [gauss_legendre_interval(lo, hi, 30) for lo, hi in zip(edges[:-1], edges[1:])]
    s = np.concatenate([p[0] for p in parts])
    return s, 2.0 * s * np.concatenate([p[1] for p in parts])


def coinciding(C):
    """The coinciding pair phasekit.core.orthant finds in one covariance (-1: none)."""
    from phasekit.core.orthant import _coinciding

    iu = np.triu_indices(4, 1)
    return int(_coinciding(np.diag(C)[None], C[iu][None])[0])


def test_coinciding_arguments_are_recognised():
    C = well_conditioned(np.random.default_rng(30))
    for p in COINCIDING_PATTERNS:
        assert coinciding(C[np.ix_(p, p)]) >= 0, p
    assert coinciding(C) == -1
    # equal variances and covariance but different cross covariances: not the same variable
    D = C.copy()
    D[1, 1] = D[0, 1] = D[1, 0] = D[0, 0]
    assert coinciding(D) == -1


@pytest.mark.parametrize("seed", range(3))
def test_coinciding_arguments_closed_forms_equal_path_integral(seed):
    # The closed forms (Stein's lemma on one ReLU factor) against the path integral,
    # an independent derivation, on well-conditioned and on nearly collinear
    # covariances of the distinct variables.
    rng = np.random.default_rng(seed + 40)
    mats = []
    for k in range(8):
        G = random_factor(rng, 4, 6)
        if k >= 4:  # a nearly collinear or anti-collinear pair among the distinct variables
            i, j = rng.choice(4, 2, replace=False)
            G[j] = rng.choice([-1.0, 1.0]) * G[i] + 10.0 ** (-k + 2) * rng.normal(size=6)
        C = G @ G.T
        mats += [C[np.ix_(p, p)] for p in COINCIDING_PATTERNS]
    C = np.array(mats)
    scale = np.sqrt(C[:, 2, 2] * C[:, 3, 3])
    err = np.abs(relu_I4(C) - path_integral(C, fine_rule())) / scale
    # near collinear pairs the value moves like sqrt(1 - |r|): the rounding of r in
    # either route then shows up as ~1e-16 / sqrt(1 - |r|)
    assert err.max() < 1e-11
    well = np.arange(len(C)) < 4 * len(COINCIDING_PATTERNS)
    assert err[well].max() < 1e-14


def test_coinciding_arguments_closed_forms_at_exact_collinearity():
    # (a, b, c, c) with b = a, with b = -a and with c = a: E[theta(a) relu(c)^2], 0, E[relu(a)^2] / ...
    rng = np.random.default_rng(50)
    C3 = well_conditioned(rng, 3)
    rho = C3[0, 1] / np.sqrt(C3[0, 0] * C3[1, 1])
    ref = C3[1, 1] * (0.25 + (np.arcsin(rho) + rho * np.sqrt(1 - rho**2)) / (2 * np.pi))
    assert abs(relu_I4(C3[np.ix_([0, 0, 1, 1], [0, 0, 1, 1])]) - ref) < 1e-14
    G = np.linalg.cholesky(C3)
    anti = np.array([G[0], -G[0], G[1], G[1]])
    assert abs(relu_I4(anti @ anti.T)) < 1e-15
    # theta(a) theta(b) relu(a) relu(b) = relu(a) relu(b)
    assert abs(relu_I4(C3[np.ix_([0, 1, 0, 1], [0, 1, 0, 1])]) - relu_I2(C3[:2, :2])) < 1e-14
    # theta(b) relu(a) relu(a) for (a, b, a, a): E[theta(b) relu(a)^2]
    ref_b = C3[0, 0] * (0.25 + (np.arcsin(rho) + rho * np.sqrt(1 - rho**2)) / (2 * np.pi))
    assert abs(relu_I4(C3[np.ix_([0, 1, 0, 0], [0, 1, 0, 0])]) - ref_b) < 1e-14


def test_coinciding_arguments_indefinite_raises():
    indefinite = np.eye(3)
    indefinite[0, 1] = indefinite[1, 0] = indefinite[0, 2] = indefinite[2, 0] = 0.9
    indefinite[1, 2] = indefinite[2, 1] = -0.9
    with pytest.raises(ValueError, match="semidefinite"):
        relu_I4(indefinite[np.ix_([0, 0, 1, 2], [0, 0, 1, 2])])


def test_plain_rules_match_fine_rule_at_every_level():
    # The plain Gauss-Legendre rules (12 .. 32 nodes by the smallest eigenvalue)
    # against the fine composite rule, on random matrices spread over the levels.
    import phasekit.core.orthant as mod

    rng = np.random.default_rng(60)
    mats = []
    for _ in range(3000):
        G = rng.normal(size=(4, int(rng.integers(4, 9)))) * rng.uniform(0.3, 2.0, size=(4, 1))
        G = G + rng.uniform(0.0, 2.0) * rng.normal(size=(1, G.shape[1])) * rng.normal(size=(4, 1))
        mats.append(G @ G.T)
    C = np.array(mats)
    sd = np.sqrt(np.diagonal(C, axis1=-2, axis2=-1))
    R = C / (sd[:, :, None] * sd[:, None, :])
    lam = np.linalg.eigvalsh(R)
    level = mod._levels(R, lam, 1.0 - np.abs(R[:, [0, 0, 0, 1, 1, 2], [1, 2, 3, 2, 3, 3]]))
    assert set(range(len(mod._PLAIN))) <= set(level.tolist())
    scale = sd[:, 2] * sd[:, 3]
    assert np.abs((relu_I4(C) - path_integral(C, fine_rule())) / scale).max() < 5e-14


def test_committee_flow_with_and_without_the_closed_forms(monkeypatch):
    # The ReLU flow's eta^2 term has blocks with i = k, u = w or a student field among the
    # step arguments; with the closed forms switched off it is the same to rounding.
    import phasekit.core.orthant as mod

    rng = np.random.default_rng(70)
    model = pk.Committee(3, 2, "relu", eta=0.7, second_order=True)
    W = rng.normal(size=(3, 4)) / 2.0
    B = np.eye(2, 4)
    v = model.state_vector(pk.State(W @ B.T, W @ W.T))
    sizes = []
    path_values = mod._path_values

    def counted(R, with_relu):
        sizes.append(len(R))
        return path_values(R, with_relu)

    monkeypatch.setattr(mod, "_path_values", counted)
    fast = model.rhs_vector(v)
    monkeypatch.setattr(mod, "_coinciding", lambda var, off: np.full(var.shape[0], -1))
    # The flow finds its blocks' coincidences once, when its tables are built: a new model.
    slow = model.replace().rhs_vector(v)
    # 6 student pairs x 15 field pairs; only i < k, u < w, u, w not in {i, k} are left
    # to the path integral: 3 x 3 blocks (the third student with the two teachers and each other)
    assert sizes == [9, 90]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-14)


@pytest.mark.parametrize("K, M", [(3, 2), (8, 8)])  # all blocks in one gather; in chunks
def test_committee_flow_finds_coinciding_arguments_once(K, M):
    # The flow labels its blocks' coincidences by the positions of their entries, once per
    # model; the values then equal those of detecting them from the entries at each call, bit
    # for bit, also where fields coincide by value (the perfect solution, two equal students;
    # there a block with both kinds may take another of the closed forms: equal to rounding).
    import phasekit.core.orthant as mod

    rng = np.random.default_rng(71)
    model = pk.Committee(K, M, "relu", eta=0.7, second_order=True)
    W = rng.normal(size=(K, K + M)) / 2.0
    W2 = W.copy()
    W2[1] = W2[0]
    B = np.eye(M, K + M)
    states = [pk.State(X @ B.T, X @ X.T) for X in (W, W2)] + [pk.State(np.eye(K, M), np.eye(K))]
    plans = [model._i4_entries[2]] if model._i4_entries is not None else model._i4_chunk_which
    assert (model._i4_entries is None) == (K == 8)
    tables = model._i4_entries, model._i4_chunk_which
    for state in states:
        S = model._sigma(model.state_vector(state))
        once = model._i4_sum(S)
        model._i4_entries, model._i4_chunk_which = None, None
        each = model._i4_sum(S)
        model._i4_entries, model._i4_chunk_which = tables
        if state is states[1]:
            np.testing.assert_allclose(once, each, rtol=4e-16, atol=0)
        else:
            np.testing.assert_array_equal(once, each)
    # Left to the path integral: i < k, u < w, neither u nor w one of the students i, k.
    n_path = sum(p.path.size for p in plans)
    assert n_path == K * (K - 1) // 2 * (K + M - 2) * (K + M - 3) // 2
    S = model._sigma(model.state_vector(states[0]))
    assert n_path == sum(np.sum(mod._coinciding(
        S.reshape(-1)[var_at].reshape(-1, 4), S.reshape(-1)[off_at].reshape(-1, 6)) < 0)
        for var_at, off_at in _entry_positions(model))


def _entry_positions(model):
    """Positions in Sigma of the flow's I4 blocks' variances and covariances, per gather."""
    if model._i4_entries is not None:
        return [model._i4_entries[:2]]
    from phasekit.committee.flow import _block_entries

    return [_block_entries(ik[..., None], cross, model._uw_flat[:, None, :]) for _, _, ik, cross in model._i4_chunks]


# --- API ---------------------------------------------------------------------------


def test_batch_equals_elementwise():
    rng = np.random.default_rng(21)
    mats = [well_conditioned(rng) for _ in range(9)]
    mats += [G @ G.T for G in singular_factors().values()]
    g = rng.normal(size=(4, 5))
    for eta in (1e-3, 1e-7, 1e-11):  # near-singular: other quadrature levels
        G = g.copy()
        G[1] = g[0] + eta * rng.normal(size=5)
        mats.append(G @ G.T)
    mats.append(np.diag([1.0, 0.0, 2.0, 3.0]))  # zero variance
    stack = np.array(mats[:24]).reshape(2, 3, 4, 4, 4)
    flat = stack.reshape(-1, 4, 4)
    for f in (relu_I4, orthant4):
        batch = f(stack)
        assert batch.shape == (2, 3, 4)
        single = np.array([f(m) for m in flat]).reshape(2, 3, 4)
        np.testing.assert_allclose(batch, single, rtol=0, atol=1e-15)
    for f, d in ((orthant2, 2), (orthant3, 3)):
        sub = stack[..., :d, :d]
        single = np.array([f(m) for m in sub.reshape(-1, d, d)]).reshape(2, 3, 4)
        np.testing.assert_array_equal(f(sub), single)


def test_scalar_and_empty_inputs():
    C = well_conditioned(np.random.default_rng(0))
    assert np.ndim(relu_I4(C)) == 0 and np.ndim(orthant4(C)) == 0
    assert relu_I4(np.zeros((0, 4, 4))).shape == (0,)
    assert orthant2(np.zeros((3, 0, 2, 2))).shape == (3, 0)


def test_zero_variance_gives_zero():
    C = well_conditioned(np.random.default_rng(1))
    for k in range(4):
        Z = C.copy()
        Z[k, :] = Z[:, k] = 0.0
        assert relu_I4(Z) == 0.0 and orthant4(Z) == 0.0
    for k in range(3):
        Z = C[:3, :3].copy()
        Z[k, :] = Z[:, k] = 0.0
        assert orthant3(Z) == 0.0
    Z = C[:2, :2].copy()
    Z[1, :] = Z[:, 1] = 0.0
    assert orthant2(Z) == relu_I2(Z) == 0.0


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="shape"):
        relu_I4(np.eye(3))
    with pytest.raises(ValueError, match="shape"):
        orthant2(np.eye(3))
    with pytest.raises(ValueError, match="finite"):
        orthant4(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="non-negative"):
        orthant2(np.diag([1.0, -1.0]))
    indefinite = np.eye(4)
    indefinite[0, 1] = indefinite[1, 0] = indefinite[0, 2] = indefinite[2, 0] = 0.9
    indefinite[1, 2] = indefinite[2, 1] = -0.9
    with pytest.raises(ValueError, match="semidefinite"):
        relu_I4(indefinite)


def test_round_off_indefiniteness_is_tolerated():
    # A singular covariance assembled with round-off gives the singular value:
    # |rho| slightly above 1 ...
    G = singular_factors()["c==a"]
    C = G @ G.T
    bumped = C.copy()
    bumped[0, 2] = bumped[2, 0] = C[0, 2] * (1 + 1e-12)
    assert abs(relu_I4(bumped) - relu_I4(C)) < 1e-12
    assert abs(relu_I2(bumped[np.ix_([0, 2], [0, 2])]) - 0.5 * C[0, 0]) < 1e-12 * C[0, 0]
    # ... or an eigenvalue slightly below 0 (here -1e-10): the change is of the
    # order of the perturbation, not its square root.
    G = singular_factors()["rank3"]
    C = G @ G.T
    null = np.linalg.eigh(C)[1][:, 0]
    bumped = C - 1e-10 * np.outer(null, null)
    assert np.linalg.eigvalsh(bumped)[0] < 0
    assert abs(relu_I4(bumped) - relu_I4(C)) < 1e-9
    assert abs(orthant4(bumped) - orthant4(C)) < 1e-9


def test_relu_I4_of_a_matrix_does_not_depend_on_the_others_in_the_call():
    """Each matrix is rounded alone (fixed-order sums, no BLAS product over the stack): bitwise equal
    whether it is evaluated by itself or among 1..300 others, well-conditioned or near-singular."""
    rng = np.random.default_rng(7)
    A = rng.normal(size=(300, 4, 6))
    C = A @ np.swapaxes(A, -1, -2) / 6
    C[::3, 3] = C[::3, 2] * (1 + 1e-9)  # near-collinear c, d: other quadrature levels in the same call
    C[::3, :, 3] = C[::3, 3, :]
    C[::3, 3, 3] = C[::3, 2, 2] * (1 + 2e-9)
    whole = relu_I4(C)
    for n in (1, 2, 3, 5, 17, 64, 299):
        part = relu_I4(C[-n:])
        np.testing.assert_array_equal(part, whole[-n:])
    alone = np.array([relu_I4(c) for c in C[:40]])
    np.testing.assert_array_equal(alone, whole[:40])


def test_levels_sharing_a_pass_keep_each_matrix_s_own_rule(monkeypatch):
    """The adjugate route's levels merged into one pass (rules padded by zero-weight nodes) give, bit for bit,
    what separate passes give; the eigen route keeps a pass per level."""
    rng = np.random.default_rng(11)
    A = rng.normal(size=(60, 4, 6))
    C = A @ np.swapaxes(A, -1, -2) / 6
    C[::2, 3] = C[::2, 2] * (1 + 10.0 ** -rng.integers(3, 12, 30))[:, None]  # near-collinear: eigen levels
    C[::2, :, 3] = C[::2, 3, :]
    C[::2, 3, 3] = C[::2, 2, 2]
    R = orthant._correlations(C)[0]
    well = np.linalg.eigvalsh(R)[:, 0] > 0.01
    assert 5 < well.sum() < 55
    values = {}
    for elements in (0, 10 ** 9):
        monkeypatch.setattr(orthant, "_PASS_ELEMENTS", elements)
        values[elements] = np.stack(orthant._path_values(R, True))
    np.testing.assert_array_equal(values[0], values[10 ** 9])
    # Four adjugate levels (even keys): four passes, or one; eigen levels 6, 7 and 13: a pass each.
    key = np.array([0, 0, 2, 2, 4, 6, 6, 13, 15, 27])
    for elements, n_adjugate in ((0, 4), (10 ** 9, 1)):
        monkeypatch.setattr(orthant, "_PASS_ELEMENTS", elements)
        passes = orthant._passes(key)
        assert sum(k % 2 == 0 for k, *_ in passes) == n_adjugate
        assert sorted(s.shape[-1] for k, _, s, _ in passes if k % 2) == [29, 35, 72]
        for k, members, s, w in passes:  # each matrix's own rule, then zero weights
            for j, sj, wj in zip(members, np.broadcast_to(s, (members.size, s.shape[-1])),
                                 np.broadcast_to(w, (members.size, w.shape[-1]))):
                own = orthant._rule(int(key[j]) // 2)
                np.testing.assert_array_equal(sj[:own[0].size], own[0])
                np.testing.assert_array_equal(wj, np.r_[own[1], np.zeros(sj.size - own[0].size)])
        assert sorted(np.concatenate([m for _, m, *_ in passes])) == list(range(key.size))


def test_adjugate_route_equals_eigen_route_and_picks_the_same_rule():
    # Well-conditioned matrices take the closed-form adjugate of R_t and a rule
    # from Sylvester's criterion; against the eigen-decomposition route on the
    # same nodes and the levels from the eigenvalues, on matrices whose smallest
    # eigenvalue straddles each plain rule's threshold (0.5 .. 0.01) by 1e-6 .. 1e-2.
    import phasekit.core.orthant as mod

    rng = np.random.default_rng(61)
    A = rng.normal(size=(600, 4, 6))
    R = A @ np.swapaxes(A, -1, -2)
    sd = np.sqrt(np.diagonal(R, axis1=-2, axis2=-1))
    R = R / (sd[:, :, None] * sd[:, None, :])
    # Unit diagonal kept: (R - m I) / (1 - m) has smallest eigenvalue 0, and c I + (1 - c) of it exactly c.
    m = np.linalg.eigvalsh(R)[:, :1, None]
    thresholds = np.array([lam for lam, _ in mod._PLAIN])
    target = np.repeat(thresholds, 100) * (1.0 + rng.choice([-1, 1], 600) * 10.0 ** rng.uniform(-6, -2, 600))
    c = target[:, None, None]
    R = c * np.eye(4) + (1.0 - c) * (R - m * np.eye(4)) / (1.0 - m)
    R = 0.5 * (R + np.swapaxes(R, -1, -2))
    R[:, range(4), range(4)] = 1.0
    lam, V = np.linalg.eigh(R)
    coef = mod._pair_coefficients(R)
    poly = mod._adjugate_polynomials(np.ascontiguousarray(coef["r"].T))
    exceeds = mod._exceeds(poly, coef["r"][:, 0], thresholds[:, None])
    np.testing.assert_array_equal(exceeds, lam[:, 0] > thresholds[:, None])
    for thr, row in zip(thresholds, exceeds):  # both sides of every threshold, some very close
        assert 20 < row.sum() < 590 and np.abs(lam[:, 0] - thr).min() < 1e-5
    well = exceeds[-1]
    np.testing.assert_array_equal(len(thresholds) - exceeds[:, well].sum(axis=0),
                                  mod._levels(R[well], lam[well], coef["gap"][well]))
    s, _ = mod._rule(len(thresholds) - 1)
    c = {k: v[well] for k, v in coef.items()}
    h, F = mod._adjugate_integrand(tuple(x[..., well] for x in poly), c, s, True, mod._MATRICES_INNER)
    h_e, F_e = mod._path_integrand(lam[well], V[well], c, s, True)
    assert np.abs(h.T - h_e).max() < 1e-14 and np.abs(F.T - F_e).max() < 1e-14
    assert np.abs(F_e).max() > 0.1
