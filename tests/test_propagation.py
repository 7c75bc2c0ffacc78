"""Signal propagation: variance/correlation maps, edge of chaos, depth profiles, phase diagrams."""

import json

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import integrate, optimize

import phasekit as pk
from phasekit import propagation as prop
from phasekit.propagation.averages import _kernel
from phasekit.propagation.maps import _Q_MAX, _Q_SCAN_MIN
from phasekit.study.recipes import run_recipe

ROOT = Path(__file__).resolve().parents[1]

# Unregistered copies without closed forms: they run through the quadrature code paths,
# an independent route to the closed forms of the registered relu and erf.
RELU_QUAD = pk.Activation("relu-quadrature", lambda x: np.maximum(x, 0.0),
                          lambda x: (x > 0).astype(float))
ERF_QUAD = pk.Activation("erf-quadrature", pk.activation("erf").g, pk.activation("erf").dg,
                         pk.activation("erf").d2g)


# --- acceptance ------------------------------------------------------------------

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
    k = _kernel(act)
    grid = np.geomspace(_Q_SCAN_MIN, _Q_MAX, 201)
    b = grid - k.V(grid) / k.D(grid)
    worst = 0.0
    for j in range(60, 161, 2):  # q* from 1e-2 to 1e8 (below, B ~ q^3 cancels to few digits)
        sw, qs = prop.edge_of_chaos(act, float(b[j]))
        worst = max(worst, abs(qs - grid[j]) / grid[j], abs(sw * float(k.D(grid[j])) - 1.0))
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


def _tanh_B_hermite(q, n=300):
    """Same with a 300-node Gauss-Hermite rule in the substitution z = sqrt(2) y."""
    y, w = np.polynomial.hermite.hermgauss(n)
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


def test_relu_depth_profile_approaches_9pi2_over_2():
    ds = prop.correlation_depth_profile("relu", 2.0, 0.0, 10_000, c0=0.0, q=1.0)
    l = ds["layer"].values[-1]
    value = l**2 * ds["one_minus_c"].values[-1]
    target = 9 * np.pi**2 / 2
    print(f"\nrelu EOC: l^2 (1 - c_l) at l = {l}: {value:.6f}; 9 pi^2 / 2 = {target:.6f}; "
          f"relative deviation {value / target - 1:.3e}")
    assert abs(value / target - 1) <= 5e-3
    # the approach is monotone from below at large depth (correction ~ -ln(l)/l)
    mid = 1000**2 * ds["one_minus_c"].values[1000]
    assert mid < value < target


# --- relu map near c = 1 ---------------------------------------------------------

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


# --- maps against Monte Carlo and other quadratures ----------------------------

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
    # correlation map: c' = (sb + sw E[g(u) g(v)]) / sqrt(q1' q2'); compare the numerator
    cp = prop.c_map(name, c, sw, sb, q1=q1, q2=q2)
    num = cp * np.sqrt(prop.q_map(name, q1, sw, sb) * prop.q_map(name, q2, sw, sb))
    assert abs(num - (sb + sw * guv.mean())) <= 5 * sw * guv.std() / np.sqrt(n)
    # chi_1 ingredient: E[g'(sqrt(q) Z)^2]
    dg2 = act.dg(u) ** 2
    assert abs(_kernel(name).D(q1) - dg2.mean()) <= 5 * dg2.std() / np.sqrt(n) + 1e-15


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


# --- fixed points and depth scales ---------------------------------------------

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
        k = _kernel(name)
        qs = prop.q_star(name, sw, sb)
        slope = sw * k.J(qs, 1 - cs)
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


# --- depth profiles ----------------------------------------------------------------

def test_tanh_profile_approaches_predicted_constant():
    sw, qs = prop.edge_of_chaos("tanh", 0.05)
    ds = prop.correlation_depth_profile("tanh", sw, 0.05, 2000)
    beta = ds.attrs["asymptote"]
    # beta = 2 / (sigma_w2 q* E[g''^2]), with E[g''^2] from scipy quadrature here
    d2 = integrate.quad(lambda z: (-2 * np.tanh(np.sqrt(qs) * z) / np.cosh(np.sqrt(qs) * z) ** 2) ** 2
                        * np.exp(-z * z / 2) / np.sqrt(2 * np.pi), -12, 12, epsrel=1e-13)[0]
    assert beta == pytest.approx(2 / (sw * qs * d2), rel=1e-10)
    ld = ds["layer"].values * ds["one_minus_c"].values
    dev = np.abs(ld[[200, 500, 2000]] / beta - 1)
    print(f"\ntanh EOC sigma_b2=0.05: l (1 - c_l) at l = 200, 500, 2000: {ld[[200, 500, 2000]]}, "
          f"predicted {beta:.6f}")
    assert dev[0] > dev[1] > dev[2] and dev[2] < 0.01


def test_erf_profile_closed_form_and_quadrature_agree():
    sw, _ = prop.edge_of_chaos("erf", 0.1)
    a = prop.correlation_depth_profile("erf", sw, 0.1, 300, c0=-0.3)["one_minus_c"].values
    b = prop.correlation_depth_profile(ERF_QUAD, sw, 0.1, 300, c0=-0.3)["one_minus_c"].values
    assert np.allclose(b / a, 1.0, rtol=0, atol=1e-9)


def test_profile_matches_a_simulated_wide_network():
    """Two inputs through actual random tanh networks of width 1000 (finite-width corrections ~1/N)."""
    rng = np.random.default_rng(2024)
    sw, sb, depth, n, reps, c0 = 2.5, 0.1, 6, 1000, 12, 0.3
    qs = prop.q_star("tanh", sw, sb)
    theory = prop.correlation_depth_profile("tanh", sw, sb, depth, c0=c0)["c"].values
    est = np.empty((reps, depth + 1))
    for r in range(reps):
        z = rng.standard_normal((n, 2))
        h = np.sqrt(qs) * np.stack([z[:, 0], c0 * z[:, 0] + np.sqrt(1 - c0**2) * z[:, 1]], axis=1)
        est[r, 0] = np.corrcoef(h.T)[0, 1]
        for layer in range(1, depth + 1):
            W = rng.standard_normal((n, n)) * np.sqrt(sw / n)
            b = rng.standard_normal((n, 1)) * np.sqrt(sb)
            h = W @ np.tanh(h) + b
            est[r, layer] = (h[:, 0] @ h[:, 1]) / np.sqrt((h[:, 0] @ h[:, 0]) * (h[:, 1] @ h[:, 1]))
    mean, se = est.mean(0), est.std(0, ddof=1) / np.sqrt(reps)
    assert np.all(np.abs(mean[1:] - theory[1:]) <= 5 * se[1:] + 2e-3), (mean, theory, se)


# --- phase diagram and recipes ----------------------------------------------------

def _check_attrs(ds):
    assert "phasekit_version" in ds.attrs and "parameters" in ds.attrs
    for name, var in {**ds.data_vars, **ds.coords}.items():
        assert "long_name" in var.attrs and "units" in var.attrs, name


def test_phase_diagram_dataset(tmp_path):
    sw = np.array([0.8, 1.5, 2.5, 3.5])
    sb = np.array([0.0, 0.1, 0.3])
    ds = prop.phase_diagram("tanh", sw, sb, n_workers=1)
    _check_attrs(ds)
    assert ds["chi_1"].dims == ("sigma_b2", "sigma_w2") and ds["chi_1"].shape == (3, 4)
    chaotic = ds["chi_1"].values > 1
    assert np.array_equal(ds["phase"].values == prop.PHASE_CHAOTIC, chaotic)
    assert np.all(ds["c_star"].values[~chaotic] == 1.0) and np.all(ds["c_star"].values[chaotic] < 1)
    assert ds["chi_1"].sel(sigma_w2=2.5, sigma_b2=0.1).item() == pytest.approx(
        prop.chi_1("tanh", 2.5, 0.1), rel=1e-14)
    assert ds["eoc_sigma_w2"].sel(sigma_b2=0.1).item() == pytest.approx(
        prop.edge_of_chaos("tanh", 0.1)[0], rel=1e-14)
    assert json.loads(ds.attrs["parameters"])["activation"] == "tanh"
    path = tmp_path / "pd.nc"
    ds.to_netcdf(path, engine="scipy")
    back = xr.open_dataset(path, engine="scipy")
    assert np.array_equal(back["phase"].values, ds["phase"].values)
    # relu: unbounded variance above sigma_w2 = 2, the EOC is the single point (0, 2)
    relu = prop.phase_diagram("relu", [1.0, 2.0, 3.0], [0.0, 0.2], n_workers=1)
    assert relu["phase"].sel(sigma_w2=3.0).values.tolist() == [prop.PHASE_UNBOUNDED] * 2
    assert relu["eoc_sigma_w2"].values[0] == 2.0 and np.isnan(relu["eoc_sigma_w2"].values[1])


def test_phase_diagram_parallel_equals_serial():
    sw, sb = [1.0, 1.8, 2.6], [0.05, 0.25]
    a = prop.phase_diagram("tanh", sw, sb, n_workers=1)
    b = prop.phase_diagram("tanh", sw, sb, n_workers=2)
    for name in ("q_star", "c_star", "chi_1", "xi_c", "phase"):
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True), name


def test_recipes_quick(tmp_path):
    files = run_recipe("edge_of_chaos", tmp_path / "eoc", quick=True, activations=["relu", "tanh"])
    assert files["figure"].exists() and files["figure"].stat().st_size > 0
    _check_attrs(xr.open_dataset(files["phase_tanh"], engine="scipy"))
    files = run_recipe("correlation_depth", tmp_path / "depth", quick=True)
    assert files["figure"].exists()
    ds = xr.open_dataset(files["depth_relu_0"], engine="scipy")
    _check_attrs(ds)
    assert ds.attrs["asymptote"] == pytest.approx(4.5 * np.pi**2)


def test_study_files_name_existing_recipes():
    from phasekit.study.recipes import available_recipes

    for name in ("edge_of_chaos", "correlation_depth"):
        study = tomllib.loads((ROOT / "studies" / f"{name}.toml").read_text())
        assert study["name"] == name and study["recipe"] in available_recipes()


# --- validation ------------------------------------------------------------------

def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="sigma_w2: must be finite and > 0"):
        prop.q_star("tanh", 0.0, 0.1)
    with pytest.raises(ValueError, match="sigma_b2: must be finite and >= 0"):
        prop.q_map("tanh", 1.0, 1.0, -0.1)
    with pytest.raises(ValueError, match=r"c: correlations must lie in \[-1, 1\]"):
        prop.c_map("tanh", 1.5, 2.0, 0.1)
    with pytest.raises(ValueError, match=r"delta: 1 - c must lie in \[0, 2\]"):
        prop.delta_map("tanh", -1e-3, 2.0, 0.1)
    with pytest.raises(ValueError, match="depth: must be an integer >= 1"):
        prop.correlation_depth_profile("tanh", 2.0, 0.1, 0)
    with pytest.raises(ValueError, match="sigma_b2: no edge of chaos for 'softplus'"):
        prop.edge_of_chaos("softplus", 0.1)
    with pytest.raises(ValueError, match="activation: unknown activation"):
        prop.chi_1("nope", 1.0, 0.0)
    with pytest.raises(ValueError, match="q: the variance fixed point"):
        prop.correlation_depth_profile("relu", 2.5, 0.1, 5)
