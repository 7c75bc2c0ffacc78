"""The variance and correlation maps of phasekit.propagation.maps: fixed points, slopes, depth scales."""

import numpy as np
import pytest

import phasekit as pk
from phasekit import propagation as prop

from helpers_activations import ERF_QUAD, RELU_QUAD


def test_relu_delta_map_keeps_precision_near_one():
    # On the EOC delta' = delta - (sin t - t cos t) / pi with t = arccos(1 - delta) =
    # 2 asin(sqrt(delta / 2)).  Reference: the Taylor series t^3/3 - t^5/30 + t^7/840 (ample
    # below delta = 1e-4).  A map written through c itself would return 0 for delta < 1e-16.
    a = 2 * np.sqrt(2) / (3 * np.pi)
    for delta in (1e-300, 1e-30, 1e-12, 1e-6, 1e-4):
        t = 2 * np.arcsin(np.sqrt(delta / 2))
        ref = delta - (t**3 / 3 - t**5 / 30 + t**7 / 840) / np.pi
        got = prop.delta_map("relu", delta, 2.0, 0.0, q=1.0)
        assert got == pytest.approx(ref, rel=2e-15), delta
        assert got < delta or delta < 1e-290
    assert prop.delta_map("relu", 1e-30, 2.0, 0.0, q=1.0) / 1e-30 == pytest.approx(1 - a * 1e-15, abs=3e-16)
    # away from c = 1 it agrees with the plain correlation map (arc-cosine kernel)
    c = np.array([-0.9, -0.2, 0.0, 0.5, 0.9])
    assert np.allclose(1 - prop.c_map("relu", c, 2.0, 0.0, q1=1.0, q2=1.0),
                       prop.delta_map("relu", 1 - c, 2.0, 0.0, q=1.0), rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", ["tanh", "relu", "elu", "swish", "erf"])
def test_maps_match_monte_carlo(name):
    rng = np.random.default_rng(11)
    act = pk.activation(name)
    n = 2_000_000
    sw, sb, q1, q2, c = 1.7, 0.2, 0.8, 1.9, 0.6
    z1, z2 = rng.standard_normal((2, n))
    u = np.sqrt(q1) * z1
    v = np.sqrt(q2) * (c * z1 + np.sqrt(1 - c * c) * z2)
    gu2, gv2, guv = act.g(u) ** 2, act.g(v) ** 2, act.g(u) * act.g(v)
    # q map
    qp = prop.q_map(name, q1, sw, sb)
    assert abs(qp - (sb + sw * gu2.mean())) <= 5 * sw * gu2.std() / np.sqrt(n)
    qp2 = prop.q_map(name, q2, sw, sb)
    assert abs(qp2 - (sb + sw * gv2.mean())) <= 5 * sw * gv2.std() / np.sqrt(n)
    # correlation map: c' = (sb + sw E[g(u) g(v)]) / sqrt(q1' q2'); compare the numerator
    cp = prop.c_map(name, c, sw, sb, q1=q1, q2=q2)
    num = cp * np.sqrt(prop.q_map(name, q1, sw, sb) * prop.q_map(name, q2, sw, sb))
    assert abs(num - (sb + sw * guv.mean())) <= 5 * sw * guv.std() / np.sqrt(n)
    # chi_1 ingredient: E[g'(sqrt(q) Z)^2]
    dg2 = act.dg(u) ** 2
    assert abs(act.slope_moment(q1) - dg2.mean()) <= 5 * dg2.std() / np.sqrt(n) + 1e-15


def test_c_map_against_registry_gauss_hermite_and_closed_forms():
    # tanh at a small variance, where the registry's tensor Gauss-Hermite I2 is accurate
    c = np.array([-0.7, 0.0, 0.4, 0.95])
    C = lambda q1, q2, cc: np.array([[q1, cc * np.sqrt(q1 * q2)], [cc * np.sqrt(q1 * q2), q2]])  # noqa: E731
    q1, q2, sw, sb = 0.3, 0.5, 1.5, 0.05
    mine = prop.c_map("tanh", c, sw, sb, q1=q1, q2=q2)
    tanh = pk.activation("tanh")
    ref = np.array([(sb + sw * tanh.I2(C(q1, q2, cc))) for cc in c])
    ref /= np.sqrt(prop.q_map("tanh", q1, sw, sb) * prop.q_map("tanh", q2, sw, sb))
    assert np.allclose(mine, ref, rtol=0, atol=1e-11)
    # quadrature copies against the closed forms, at larger variances too
    for closed, quad in (("erf", ERF_QUAD), ("relu", RELU_QUAD)):
        for q1, q2, tol in ((0.4, 2.5, 1e-12), (5.0, 20.0, 1e-9)):
            a = prop.c_map(closed, c, 1.3, 0.1, q1=q1, q2=q2)
            b = prop.c_map(quad, c, 1.3, 0.1, q1=q1, q2=q2)
            assert np.allclose(a, b, rtol=0, atol=tol), (closed, q1, q2, a - b)
    # linear: c' = (sb + sw c sqrt(q1 q2)) / sqrt(q1' q2')
    lin = prop.c_map("linear", c, 1.3, 0.1, q1=0.4, q2=2.5)
    assert np.allclose(lin, (0.1 + 1.3 * c * 1.0) / np.sqrt((0.1 + 1.3 * 0.4) * (0.1 + 1.3 * 2.5)))


def test_chi_1_is_sigma_w2_times_J2_on_the_singular_covariance():
    # the registry's J2 on [[q, q], [q, q]] (tensor Gauss-Hermite) is an independent route
    for name, sw, sb in (("tanh", 1.5, 0.05), ("erf", 2.0, 0.1), ("swish", 2.5, 0.02)):
        qs = prop.q_star(name, sw, sb)
        C = np.array([[qs, qs], [qs, qs]])
        assert prop.chi_1(name, sw, sb) == pytest.approx(sw * pk.activation(name).J2(C), abs=1e-9)


def test_delta_map_precision_and_consistency():
    for name, sw, sb in (("tanh", 2.5, 0.1), ("elu", 1.8, 0.2), ("swish", 1.9, 0.5),
                         (ERF_QUAD, 3.0, 0.1), (RELU_QUAD, 1.5, 0.3)):
        qs = prop.q_star(name, sw, sb)
        chi = prop.chi_1(name, sw, sb)
        # slope at c = 1 from the 2-D integral equals chi_1 from the 1-D rule
        tiny = 1e-250
        assert prop.delta_map(name, tiny, sw, sb) / tiny == pytest.approx(chi, rel=1e-11)
        # away from c = 1 the delta map equals 1 - c_map (different integrands)
        delta = np.array([1e-3, 0.05, 0.3, 1.0, 1.7])
        assert np.allclose(prop.delta_map(name, delta, sw, sb),
                           1 - prop.c_map(name, 1 - delta, sw, sb, q1=qs, q2=qs),
                           rtol=1e-9, atol=1e-13)
    # quadrature copies against the closed forms over 300 decades
    delta = np.array([1e-300, 1e-40, 1e-9, 5e-5, 1e-4, 2e-4, 0.01, 0.5, 1.0, 1.5, 2.0])
    for closed, quad, sw, sb in (("erf", ERF_QUAD, 3.0, 0.1), ("relu", RELU_QUAD, 1.5, 0.3)):
        a = prop.delta_map(closed, delta, sw, sb)
        b = prop.delta_map(quad, delta, sw, sb)
        assert np.allclose(b / a, 1.0, rtol=0, atol=1e-11), (closed, b / a - 1)


def test_q_star_fixed_points():
    for name, sw, sb in (("tanh", 2.0, 0.1), ("elu", 1.5, 0.3), ("swish", 1.9, 0.5),
                         ("erf", 4.0, 0.2), ("softplus", 1.0, 0.1)):
        qs = prop.q_star(name, sw, sb)
        assert prop.q_map(name, qs, sw, sb) == pytest.approx(qs, rel=1e-13)
        # and iterating the map from q0 = 1 actually goes there
        q = 1.0
        for _ in range(2000):
            q = float(prop.q_map(name, q, sw, sb))
        assert q == pytest.approx(qs, rel=1e-6)
    assert prop.q_star("relu", 1.5, 0.1) == pytest.approx(0.1 / (1 - 0.75), rel=1e-14)
    assert prop.q_star("relu", 2.5, 0.1) == np.inf
    assert prop.q_star("tanh", 0.8, 0.0) == 0.0
    assert prop.q_star("relu", 2.0, 0.0, q0=3.3) == 3.3


def test_c_star_is_an_attracting_fixed_point():
    for name, sw, sb in (("tanh", 3.0, 0.1), ("elu", 1.9, 0.3), ("erf", 4.0, 0.05)):
        cs = prop.c_star(name, sw, sb)
        assert 0 < cs < 1
        assert prop.c_map(name, cs, sw, sb) == pytest.approx(cs, abs=1e-12)
        qs = prop.q_star(name, sw, sb)
        slope = sw * pk.activation(name).slope_correlation_kernel(qs, 1 - cs)
        h = 1e-5
        fd = (prop.c_map(name, cs + h, sw, sb) - prop.c_map(name, cs - h, sw, sb)) / (2 * h)
        assert slope == pytest.approx(fd, rel=1e-6) and slope < 1
        assert prop.xi_c(name, sw, sb) == pytest.approx(-1 / np.log(slope), rel=1e-12)
    # iterating the map from c0 = 0 converges to the c* found by root finding
    deep = prop.correlation_depth_profile("tanh", 3.0, 0.1, 300, c0=0.0)["c"].values[-1]
    assert deep == pytest.approx(prop.c_star("tanh", 3.0, 0.1), abs=1e-12)
    # odd activations without bias: c* = 0 in the chaotic phase; ordered phase: c* = 1
    assert prop.c_star("tanh", 3.0, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert prop.c_star("tanh", 1.2, 0.3) == 1.0


def test_xi_c_diverges_at_the_edge_of_chaos():
    sw, _ = prop.edge_of_chaos("tanh", 0.05)
    near = [prop.xi_c("tanh", sw * (1 + e), 0.05) for e in (-1e-2, -1e-3, -1e-4)]
    assert near[0] < near[1] < near[2] and near[2] > 1e3
    # ordered side: xi_c = -1/ln chi_1
    assert near[1] == pytest.approx(-1 / np.log(prop.chi_1("tanh", sw * (1 - 1e-3), 0.05)), rel=1e-12)
    assert prop.chi_1("tanh", sw, 0.05) == pytest.approx(1.0, abs=1e-13)
    # chaotic side also diverges as it approaches
    far, close = (prop.xi_c("tanh", sw * (1 + e), 0.05) for e in (1e-1, 1e-3))
    assert close > 10 * far


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="sigma_w2: must be finite and > 0"):
        prop.q_star("tanh", 0.0, 0.1)
    with pytest.raises(ValueError, match="sigma_b2: must be finite and >= 0"):
        prop.q_map("tanh", 1.0, 1.0, -0.1)
    with pytest.raises(ValueError, match=r"c: correlations must lie in \[-1, 1\]"):
        prop.c_map("tanh", 1.5, 2.0, 0.1)
    with pytest.raises(ValueError, match=r"delta: 1 - c must lie in \[0, 2\]"):
        prop.delta_map("tanh", -1e-3, 2.0, 0.1)
    with pytest.raises(ValueError, match="activation: unknown activation"):
        prop.chi_1("nope", 1.0, 0.0)
