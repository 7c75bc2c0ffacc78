"""The edge of chaos and the phase at a point (phasekit.propagation.phases)."""

import functools

import numpy as np
import pytest
from scipy import integrate, optimize

import phasekit as pk
from phasekit import propagation as prop
from phasekit.propagation.maps import _Q_MAX, _Q_SCAN_MIN

from helpers_activations import ERF_QUAD, RELU_QUAD


def test_relu_edge_of_chaos_and_chi1():
    sw, qs = prop.edge_of_chaos("relu", 0.0)
    sw_quad, _ = prop.edge_of_chaos(RELU_QUAD, 0.0)
    print(f"\nrelu EOC at sigma_b2=0: sigma_w2 = {sw!r} (quadrature copy {sw_quad!r}), q* = {qs}")
    assert abs(sw - 2.0) <= 1e-12 and abs(sw_quad - 2.0) <= 1e-12
    assert np.isnan(qs)  # every q is critical at (2, 0)
    worst = 0.0
    for sigma_w2 in (0.5, 1.3, 1.99, 2.0, 2.7):
        for sigma_b2 in (0.0, 0.1, 0.7):
            for act in ("relu", RELU_QUAD):
                chi = prop.chi_1(act, sigma_w2, sigma_b2)
                worst = max(worst, abs(chi - sigma_w2 / 2))
    print(f"relu max |chi_1 - sigma_w2/2| = {worst:.2e}")
    assert worst <= 1e-12
    with pytest.raises(ValueError, match="sigma_b2: 'relu' is positively homogeneous"):
        prop.edge_of_chaos("relu", 0.1)


def erf_line(q):
    """Closed-form critical line of g(x) = erf(x / sqrt 2), parameterised by q*."""
    return q - np.sqrt(1 + 2 * q) * np.arcsin(q / (1 + q)), 0.5 * np.pi * np.sqrt(1 + 2 * q)


def test_erf_critical_line_matches_closed_form():
    worst_sw = worst_q = 0.0
    for q in (0.05, 0.3, 1.0, 3.0, 10.0):
        sb, sw_exact = erf_line(q)
        for act in ("erf", ERF_QUAD):
            sw, qs = prop.edge_of_chaos(act, sb)
            worst_sw = max(worst_sw, abs(sw - sw_exact))
            worst_q = max(worst_q, abs(qs - q) / q)
    print(f"\nerf critical line: max |sigma_w2 - (pi/2) sqrt(1+2q*)| = {worst_sw:.2e}, "
          f"max rel. |q* - q| = {worst_q:.2e}")
    assert worst_sw <= 1e-10 and worst_q <= 1e-10
    # the line starts at (0, pi/2) with sigma_b2 ~ q*^3 / 3
    assert prop.edge_of_chaos("erf", 0.0) == (pytest.approx(np.pi / 2, abs=1e-14), 0.0)
    assert erf_line(1e-3)[0] == pytest.approx(1e-9 / 3, rel=1e-2)


@pytest.mark.parametrize("act", ["erf", "tanh", ERF_QUAD])
def test_edge_of_chaos_at_the_scan_nodes(act):
    """A bias variance whose q* sits exactly on a node of the q* scan is found there.

    sigma_b2 = B(q_node) with B = q - V/E[g'^2] evaluated on the whole scan grid at
    once: the batched quadrature may round the last bit differently from one-point
    evaluations, which must not leave the root without a bracket.
    """
    act = pk.activation(act)
    grid = np.geomspace(_Q_SCAN_MIN, _Q_MAX, 201)
    b = grid - act.variance_map(grid) / act.slope_moment(grid)
    worst = 0.0
    for j in range(60, 161, 2):  # q* from 1e-2 to 1e8 (below, B ~ q^3 cancels to few digits)
        sw, qs = prop.edge_of_chaos(act, float(b[j]))
        worst = max(worst, abs(qs - grid[j]) / grid[j], abs(sw * float(act.slope_moment(grid[j])) - 1.0))
    assert worst <= 1e-10


def _tanh_B_quad(q):
    """q - V/E[g'^2] by adaptive scipy quadrature in z (split at 0)."""
    def E(f):
        h = lambda z: f(np.sqrt(q) * z) * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)  # noqa: E731
        return sum(integrate.quad(h, a, b, epsabs=0, epsrel=1e-13, limit=200)[0]
                   for a, b in ((-np.inf, 0), (0, np.inf)))
    V = E(lambda x: np.tanh(x) ** 2)
    D = E(lambda x: (1 - np.tanh(x) ** 2) ** 2)
    return q - V / D, 1 / D


@functools.lru_cache(maxsize=None)
def _hermite_rule(n):
    # hermgauss(300) costs 0.2 s; the root search below calls the route dozens of times.
    return np.polynomial.hermite.hermgauss(n)


def _tanh_B_hermite(q, n=300):
    """Same with a 300-node Gauss-Hermite rule in the substitution z = sqrt(2) y."""
    y, w = _hermite_rule(n)
    x = np.sqrt(2 * q) * y
    V = w @ np.tanh(x) ** 2 / np.sqrt(np.pi)
    D = w @ (1 - np.tanh(x) ** 2) ** 2 / np.sqrt(np.pi)
    return q - V / D, 1 / D


def test_tanh_edge_of_chaos_two_independent_quadratures():
    for sb in (0.01, 0.05, 0.2):
        sw, qs = prop.edge_of_chaos("tanh", sb)
        results = []
        for route in (_tanh_B_quad, _tanh_B_hermite):
            q_ref = optimize.brentq(lambda q: route(q)[0] - sb, 0.05, 3.0, xtol=1e-15, rtol=1e-15)
            results.append((route(q_ref)[1], q_ref))
        print(f"\ntanh sigma_b2={sb}: phasekit sigma_w2={sw:.12f} q*={qs:.12f}; "
              f"scipy.quad {results[0][0]:.12f} {results[0][1]:.12f}; "
              f"Gauss-Hermite(300) {results[1][0]:.12f} {results[1][1]:.12f}")
        for sw_ref, q_ref in results:
            assert abs(sw - sw_ref) <= 1e-8 and abs(qs - q_ref) <= 1e-8


def test_eoc_asymptote_from_the_kink_of_a_homogeneous_activation():
    """9 pi^2 / 2 for relu, from its kink alone (a quadrature copy gives the same), and the
    general 18 pi^2 E[g'^2]^2 / Delta^4 for a leaky relu against its iterated delta map."""
    assert prop.eoc_asymptote("relu", 2.0, 0.0) == 4.5 * np.pi**2
    assert prop.eoc_asymptote(RELU_QUAD, 2.0, 0.0) == pytest.approx(4.5 * np.pi**2, rel=1e-13)
    leaky = pk.Activation("leaky", lambda x: np.where(x > 0, x, 0.2 * x), lambda x: np.where(x > 0, 1.0, 0.2))
    d2 = leaky.slope_moment(1.0)  # (1 + 0.04) / 2
    assert d2 == pytest.approx(0.52, rel=1e-13)
    predicted = prop.eoc_asymptote(leaky, 1.0 / d2, 0.0)
    assert predicted == pytest.approx(18 * np.pi**2 * 0.52**2 / 0.8**4, rel=1e-12)
    ds = prop.correlation_depth_profile(leaky, 1.0 / d2, 0.0, 2000, q=1.0)
    layers = np.array([200, 2000])
    deviation = layers**2 * ds["one_minus_c"].values[layers] / predicted - 1  # ~ -ln(l) / l, from below
    assert -0.2 < deviation[0] < deviation[1] < 0 and deviation[1] > -0.02
    # a smooth activation without g'' (and linear, whose delta map is the identity) has none
    assert np.isnan(prop.eoc_asymptote("linear", 1.0, 0.0))


def test_phase_point_orders_and_chaos():
    ordered = prop.phase_point("tanh", 1.2, 0.3)
    chaotic = prop.phase_point("tanh", 3.0, 0.1)
    assert ordered["phase"] == prop.PHASE_ORDERED and ordered["c_star"] == 1.0 and ordered["chi_1"] < 1
    assert chaotic["phase"] == prop.PHASE_CHAOTIC and 0 < chaotic["c_star"] < 1 < chaotic["chi_1"]
    assert chaotic["q_star"] == prop.q_star("tanh", 3.0, 0.1)
    assert chaotic["xi_c"] == pytest.approx(prop.xi_c("tanh", 3.0, 0.1), rel=1e-14)
    assert prop.phase_point("relu", 3.0, 0.2)["phase"] == prop.PHASE_UNBOUNDED
    line = prop.edge_of_chaos_line("tanh", [0.05, 0.2])
    assert line["sigma_w2"][0] == pytest.approx(prop.edge_of_chaos("tanh", 0.05)[0], rel=1e-14)
    assert line["attracting"].tolist() == [1, 1]


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="sigma_b2: no edge of chaos for 'softplus'"):
        prop.edge_of_chaos("softplus", 0.1)
    with pytest.raises(ValueError, match="sigma_b2: must be finite and >= 0"):
        prop.edge_of_chaos("tanh", -0.1)
