"""Mode dynamics of deep linear networks (phasekit.deep_linear.modes): closed forms against the ODE."""

import numpy as np
import pytest
import xarray as xr

from phasekit import deep_linear as ld
from phasekit.deep_linear.modes import _RationalFlow, _target_u

CASES = [(s, u0) for s, u0 in ((1.0, 1e-3), (2.5, 0.05), (0.5, 1.5), (0.0, 0.3), (0.8, 0.79))]


def test_closed_form_matches_ode():
    t = np.linspace(0.0, 25.0, 101)
    worst = 0.0
    for k in (1, 2, 3, 4, 5):
        for lam in (0.0, 0.05, 0.3):
            for s, u0 in CASES:
                a = ld.mode_strength(t, s, u0, depth=k, weight_decay=lam)
                b = ld.mode_strength_ode(t, s, u0, depth=k, weight_decay=lam)
                err = np.max(np.abs(a - b)) / max(1.0, s)
                worst = max(worst, err)
                assert err <= 1e-10, (k, lam, s, u0, err)
    print(f"\ndeep linear: max |closed form - ODE| / max(1, s) over k=1..5, 3 decays, 5 modes = {worst:.2e}")


def test_depth_two_is_the_logistic():
    # u(t) = s e^{2st} / (e^{2st} - 1 + s/u0), weight decay: s -> s - lambda
    t = np.linspace(0.0, 6.0, 31)
    for s, lam, u0 in ((2.0, 0.0, 1e-3), (2.0, 0.5, 1e-3), (1.0, 0.2, 2.0)):
        sp = s - lam
        e = np.exp(2 * sp * t)
        ref = sp * e / (e - 1 + sp / u0)
        assert np.allclose(ld.mode_strength(t, s, u0, weight_decay=lam), ref, rtol=1e-13, atol=0)
    # s' = 0 and s' < 0: u0 / (1 + 2 u0 t) and decay to 0
    assert np.allclose(ld.mode_strength(t, 0.3, 0.2, weight_decay=0.3), 0.2 / (1 + 0.4 * t), rtol=1e-13)
    assert ld.mode_strength(50.0, 0.3, 0.2, weight_decay=0.5) < 1e-3


def test_partial_fractions_reproduce_depth_two():
    """The general k >= 3 machinery, run at k = 2, against the explicit formula."""
    t = np.linspace(0.0, 8.0, 17)
    for s, lam, u0 in ((1.5, 0.0, 1e-3), (1.5, 0.3, 1e-2), (0.7, 0.1, 1.2)):
        flow = _RationalFlow(2, s, lam, 1.0)
        v = flow.v_at(t, np.sqrt(u0))
        assert np.allclose(v**2, ld.mode_strength(t, s, u0, weight_decay=lam), rtol=1e-12, atol=1e-15)


def test_learning_time():
    s, u0 = 2.0, 1e-3
    # k = 2: t = ln(u (s - u0) / (u0 (s - u))) / (2 s)
    t = ld.learning_time(u0, 1.0, s)
    assert t == pytest.approx(np.log(1.0 * (s - u0) / (u0 * (s - 1.0))) / (2 * s), rel=1e-14)
    for k in (1, 2, 3, 4):
        for lam in (0.0, 0.1):
            target = _target_u(k, s, lam, 0.05)
            ends = np.array([0.3, 0.9]) * target
            times = ld.learning_time(0.05, ends, s, depth=k, weight_decay=lam)
            assert np.all(np.isfinite(times)) and times[0] < times[1]
            assert np.allclose(ld.mode_strength(times, s, 0.05, depth=k, weight_decay=lam), ends, rtol=1e-11)
            # additivity along the path
            mid = ld.learning_time(0.05, ends[0], s, depth=k, weight_decay=lam)
            rest = ld.learning_time(ends[0], ends[1], s, depth=k, weight_decay=lam)
            assert mid + rest == pytest.approx(times[1], rel=1e-11)
    # unreachable: beyond the fixed point (never) or the other side (nan)
    out = ld.learning_time(u0, [s, 1.5 * s, u0 / 2], s)
    assert out[0] == np.inf and out[1] == np.inf and np.isnan(out[2])


def test_mode_trajectories_dataset(tmp_path):
    ds = ld.mode_trajectories([2.0, 1.0], np.linspace(0, 5, 11), 1e-3, depth=3, weight_decay=0.1)
    assert ds["u"].dims == ("mode", "time")
    for name, var in {**ds.data_vars, **ds.coords}.items():
        assert "long_name" in var.attrs and "units" in var.attrs, name
    ds.to_netcdf(tmp_path / "t.nc", engine="scipy")
    back = xr.open_dataset(tmp_path / "t.nc", engine="scipy")
    assert np.allclose(back["u"], ds["u"])
    learned = ld.fixed_points(2.0, depth=3, weight_decay=0.1)[-1]
    assert ds["fixed_point"].values[0] == pytest.approx(np.prod(learned.state))


def test_ode_samples_the_requested_times():
    t = np.array([0.0, 0.5, 3.0])
    u = ld.mode_strength_ode(t, 1.0, 1e-3, depth=2)
    assert u.shape == (3,) and u[0] == 1e-3
    with pytest.raises(ValueError, match="t: must be a 1-D ascending array of times >= 0"):
        ld.mode_strength_ode([1.0, 0.5], 1.0, 1e-3)


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="depth: must be an integer >= 1"):
        ld.mode_strength(1.0, 1.0, 0.1, depth=0)
    with pytest.raises(ValueError, match="weight_decay: must be finite and >= 0"):
        ld.mode_rhs(0.1, 1.0, weight_decay=-1.0)
    with pytest.raises(ValueError, match="u0: mode strengths of depth >= 2 chains must be > 0"):
        ld.mode_strength(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="t: times must be finite and >= 0"):
        ld.mode_strength([-1.0], 1.0, 0.1)
