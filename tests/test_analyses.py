"""Analyses on synthetic grids with known answers: exact lines and power laws, minima, regimes, the edge of chaos."""

import numpy as np
import pytest
import xarray as xr

from phasekit import propagation as prop
from phasekit.study.analyses import ANALYSES, LAZY_DISTANCE, classify_regime


def _ds(values, dims, coords, name="y", units="1"):
    return xr.Dataset({name: (dims, values, {"long_name": name, "units": units})}, coords=coords)


def test_plateau_fit_recovers_an_exact_line_and_its_fit_range():
    X = np.logspace(-2, -9, 8)
    lengths = np.array([[40.0 * np.log(1 / x) + 7 for x in X], [90.0 * np.log(1 / x) - 3 for x in X]])
    lengths[1, 0] = np.nan  # never entered: left out of the fit
    ds = _ds(lengths, ("K", "X"), {"K": [2, 3], "X": X}, "plateau_length")
    ds["escape_eigenvalue"] = (("K", "X"), np.array([[1 / 40.0] * 8, [1 / 100.0] * 8]))
    out = ANALYSES["plateau_fit"].func(ds, {"fit_range": [1e-8, 1e-3]}, None)
    np.testing.assert_allclose(out["fitted_slope"].values, [40.0, 90.0], rtol=1e-12)
    np.testing.assert_allclose(out["fitted_intercept"].values, [7.0, -3.0], rtol=1e-10)
    np.testing.assert_allclose(out["fitted_slope_stderr"].values, 0.0, atol=1e-10)
    np.testing.assert_allclose(out["predicted_slope"].values, [40.0, 100.0], rtol=1e-12)
    np.testing.assert_allclose(out["slope_ratio"].values, [1.0, 0.9], rtol=1e-12)
    assert out["in_fit"].values.tolist() == [[0, 1, 1, 1, 1, 1, 1, 0]] * 2
    assert out["n_fit"].values.tolist() == [6, 6]


def test_plateau_fit_standard_error_matches_the_least_squares_formula():
    rng = np.random.default_rng(0)
    X = np.logspace(-2, -10, 9)
    L = np.log(1 / X)
    y = 30 * L + rng.normal(size=L.size)
    out = ANALYSES["plateau_fit"].func(_ds(y, ("X",), {"X": X}, "plateau_length"), {}, None)
    resid = y - (float(out["fitted_slope"]) * L + float(out["fitted_intercept"]))
    se = np.sqrt(resid @ resid / (L.size - 2) / np.sum((L - L.mean()) ** 2))
    assert float(out["fitted_slope_stderr"]) == pytest.approx(se, rel=1e-10)  # residual variance over n - 2


def test_optimum_on_the_grid_and_refined_by_a_probe():
    eta = np.array([0.4, 0.7, 0.9, 1.2, 1.5])
    t = (eta - 1.05) ** 2 + 2.0
    t[-1] = np.inf  # never reached: not a minimum
    ds = _ds(np.stack([t, t + 1]), ("K", "eta"), {"K": [1, 2], "eta": eta}, "convergence_time")
    out = ANALYSES["optimum"].func(ds, {"var": "convergence_time", "over": "eta"}, None)
    assert out["eta_opt"].values.tolist() == [0.9, 0.9] and out["convergence_time_min"].values[1] == t[2] + 1
    calls = []

    def probe(index, changes):
        calls.append((index, changes["eta"]))
        return {"convergence_time": (changes["eta"] - 1.05) ** 2 + 2.0 + index // 5}

    fine = ANALYSES["optimum"].func(ds, {"var": "convergence_time", "over": "eta", "refine": True}, probe)
    np.testing.assert_allclose(fine["eta_opt"].values, 1.05, atol=1e-5)
    np.testing.assert_allclose(fine["convergence_time_min"].values, [2.0, 3.0], atol=1e-9)
    assert {i for i, _ in calls} == {2, 7}  # flat indices of the grid minima (K = 1, 2)


def test_power_law_of_an_exact_law_with_medians_and_an_expected_exponent():
    x = np.array([10.0, 30.0, 100.0, 300.0])
    y = np.stack([[2.0 * x ** -0.5, 3.0 * x ** -0.5], [5.0 * x ** -2.0, 5.5 * x ** -2.0]])  # (variant, seed, x)
    ds = _ds(y, ("variant", "seed", "scale"), {"variant": ["a", "b"], "seed": [0, 1], "scale": x}, "d")
    out = ANALYSES["power_law"].func(ds, {"y": "d", "x": "scale", "median_over": ["seed"], "prefix": "p_",
                                          "expected": {"a": -0.5, "b": -2.0}}, None)
    np.testing.assert_allclose(out["p_exponent"].values, [-0.5, -2.0], rtol=1e-12)
    np.testing.assert_allclose(out["p_prefactor"].values, [2.5, 5.25], rtol=1e-12)
    np.testing.assert_allclose(out["p_exponent_stderr"].values, 0.0, atol=1e-12)
    assert out["p_expected_exponent"].values.tolist() == [-0.5, -2.0]


def test_power_law_on_a_range_of_x():
    """Outside [x_min, x_max] the values follow another law: left out, the exponent is exact."""
    x = np.array([1.0, 3.0, 10.0, 30.0, 100.0])
    ds = _ds(np.where(x < 5, 1.0, 4.0 * x ** -3.0), ("K",), {"K": x}, "lam")
    out = ANALYSES["power_law"].func(ds, {"y": "lam", "x": "K", "x_min": 5.0}, None)
    assert float(out["exponent"]) == pytest.approx(-3.0, rel=1e-12)
    assert float(out["prefactor"]) == pytest.approx(4.0, rel=1e-12)


def test_inverse_fit_recovers_a_plus_b_over_x_scaled_by_a_power_of_x():
    """x eta = a + b / x (power 1) and eps / x (power -1) on x >= x_min, with the least-squares errors."""
    x = np.array([2.0, 5.0, 20.0, 50.0, 200.0])
    eta = np.stack([(5.4 - 1.8 / x) / x, (4.0 - 4.0 / x) / x])  # (activation, K)
    ds = _ds(np.where(x >= 5, eta, 7.0), ("activation", "K"), {"activation": ["erf", "relu"], "K": x}, "eta_c")
    out = ANALYSES["inverse_fit"].func(ds, {"y": "eta_c", "x": "K", "power": 1.0, "x_min": 5.0, "prefix": "f_",
                                            "expected": {"erf": 5.4}}, None)
    np.testing.assert_allclose(out["f_limit"].values, [5.4, 4.0], rtol=1e-12)
    np.testing.assert_allclose(out["f_slope"].values, [-1.8, -4.0], rtol=1e-10)
    np.testing.assert_allclose(out["f_limit_stderr"].values, 0.0, atol=1e-10)
    assert out["f_n_fit"].values.tolist() == [4, 4]
    np.testing.assert_allclose(out["f_scaled"].values[:, 1:], (x[1:] * eta[:, 1:]), rtol=1e-12)
    assert out["f_expected_limit"].values[0] == 5.4 and np.isnan(out["f_expected_limit"].values[1])
    # the standard error of a noisy fit: the textbook formula for a straight line in 1/x
    rng = np.random.default_rng(1)
    y = 2.0 + 3.0 / x + 0.01 * rng.standard_normal(x.size)
    fit = ANALYSES["inverse_fit"].func(_ds(y, ("K",), {"K": x}, "eg"), {"y": "eg", "x": "K"}, None)
    u = 1.0 / x
    resid = y - (float(fit["limit"]) + float(fit["slope"]) * u)
    s2 = resid @ resid / (x.size - 2)
    se_b = np.sqrt(s2 / np.sum((u - u.mean()) ** 2))
    se_a = se_b * np.sqrt(np.mean(u ** 2))
    assert float(fit["slope"]) == pytest.approx(np.polyfit(u, y, 1)[0], rel=1e-10)
    assert float(fit["slope_stderr"]) == pytest.approx(se_b, rel=1e-10)
    assert float(fit["limit_stderr"]) == pytest.approx(se_a, rel=1e-10)


def test_regime_classification():
    assert classify_regime(0.5 * LAZY_DISTANCE, 1.0, 1.0) == "lazy"
    assert classify_regime(1.0, 0.01, 1.0) == "feature learning"
    assert classify_regime(1.0, 0.5, 1.0) == "crossover"
    ds = xr.Dataset({"relative_tangent_distance": (("tau", "seed"), [[0.01, 0.02], [2.0, 3.0], [2.0, 2.0]]),
                     "loss": (("tau", "seed"), [[1.0, 1.0], [1e-3, 1e-3], [0.9, 0.9]]),
                     "tangent_loss_limit": (("tau", "seed"), [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])},
                    coords={"tau": [10.0, 0.01, 1.0], "seed": [0, 1]})
    out = ANALYSES["regime"].func(ds, {"median_over": ["seed"]}, None)["training_regime"]
    meanings = out.attrs["flag_meanings"].split()
    assert [meanings[c] for c in out.values] == ["lazy", "feature_learning", "crossover"]


def test_edge_of_chaos_is_the_critical_line():
    sb = np.array([0.0, 0.1, 0.3])
    ds = xr.Dataset({"phase": (("sigma_b2", "sigma_w2"), np.zeros((3, 2)))},
                    coords={"sigma_b2": sb, "sigma_w2": [1.0, 2.0], "activation": "tanh"})
    out = ANALYSES["edge_of_chaos"].func(ds, {}, None)
    sw, qs = prop.critical_line("tanh", sb)
    np.testing.assert_array_equal(out["eoc_sigma_w2"].values, sw)
    np.testing.assert_array_equal(out["eoc_q_star"].values, qs)
    assert out["eoc_q_attracting"].values.tolist() == [1, 1, 1]
