"""Depth profiles of the correlation (phasekit.propagation.depth)."""

import numpy as np
import pytest
from scipy import integrate

from phasekit import propagation as prop

from helpers_activations import ERF_QUAD


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


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="depth: must be an integer >= 1"):
        prop.correlation_depth_profile("tanh", 2.0, 0.1, 0)
    with pytest.raises(ValueError, match="q: the variance fixed point"):
        prop.correlation_depth_profile("relu", 2.5, 0.1, 5)
