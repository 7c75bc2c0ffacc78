"""Deep linear networks: closed-form mode dynamics, fixed points, and a trained network."""

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from phasekit import deep_linear as ld
from phasekit.deep_linear.modes import _RationalFlow, _target_u
from phasekit.study.recipes import available_recipes, run_recipe

ROOT = Path(__file__).resolve().parents[1]

CASES = [(s, u0) for s, u0 in ((1.0, 1e-3), (2.5, 0.05), (0.5, 1.5), (0.0, 0.3), (0.8, 0.79))]


# --- acceptance: closed form against the ODE ------------------------------------

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


def test_depth_two_is_the_logistic_of_model_md():
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


# --- fixed points -------------------------------------------------------------

def _fd_jacobian(a, s, lam, h=1e-6):
    J = np.empty((a.size, a.size))
    for j in range(a.size):
        e = np.zeros(a.size)
        e[j] = h
        J[:, j] = (ld.layer_rhs(a + e, s, weight_decay=lam)
                   - ld.layer_rhs(a - e, s, weight_decay=lam)) / (2 * h)
    return J


def test_fixed_points_depth_two():
    s, lam = 1.5, 0.2
    origin, learned = ld.fixed_points(s, weight_decay=lam)
    # origin: saddle with eigenvalues s - lambda and -s - lambda
    assert np.allclose(origin.eigenvalues, [s - lam, -s - lam]) and origin.n_unstable == 1
    assert not origin.stable
    # learned: u = s - lambda; balanced direction -2 (s - lambda), unbalancing -2 lambda
    assert np.prod(learned.state) == pytest.approx(s - lam, rel=1e-14)
    assert np.allclose(np.sort(learned.eigenvalues), np.sort([-2 * (s - lam), -2 * lam]))
    assert learned.stable and learned.n_unstable == 0 and learned.residual < 1e-14
    # without weight decay the unbalancing direction is neutral (a family of solutions)
    _, free = ld.fixed_points(s)
    assert np.allclose(np.sort(free.eigenvalues), [-2 * s, 0.0], atol=1e-14) and not free.stable


@pytest.mark.parametrize("k", [3, 4])
def test_fixed_points_with_weight_decay_have_a_barrier(k):
    s, lam = 1.0, 0.1
    fps = ld.fixed_points(s, depth=k, weight_decay=lam)
    assert [fp.stable for fp in fps] == [True, False, True]
    assert [fp.n_unstable for fp in fps] == [0, 1, 0]
    for fp in fps:
        assert fp.residual < 1e-13
        fd = np.sort(np.linalg.eigvals(_fd_jacobian(fp.state, s, lam)).real)[::-1]
        assert np.allclose(fp.eigenvalues, fd, atol=1e-7)
        col = fp.eigenvectors[:, 0]
        assert np.linalg.norm(col) == pytest.approx(1.0) and col[np.argmax(np.abs(col))] > 0
    # mode coordinates: the balanced-direction eigenvalue is the u-flow slope at nonzero fixed points
    modes = ld.fixed_points(s, depth=k, weight_decay=lam, coordinates="mode")
    for fp_l, fp_m in zip(fps[1:], modes[1:]):
        u = np.prod(fp_l.state)
        assert fp_m.state[0] == pytest.approx(u, rel=1e-12)
        h = 1e-7 * u
        slope = (ld.mode_rhs(u + h, s, depth=k, weight_decay=lam)
                 - ld.mode_rhs(u - h, s, depth=k, weight_decay=lam)) / (2 * h)
        assert fp_m.eigenvalues[0] == pytest.approx(slope, rel=1e-6)
        balanced = fp_l.eigenvalues[np.argmin(np.abs(fp_l.eigenvalues - slope))]
        assert balanced == pytest.approx(fp_m.eigenvalues[0], rel=1e-10)
    # starting below the unstable fixed point the mode dies, above it the mode is learned
    u_barrier = np.prod(fps[1].state)
    assert ld.mode_strength(200.0, s, 0.9 * u_barrier, depth=k, weight_decay=lam) < 1e-3 * u_barrier
    assert ld.mode_strength(200.0, s, 1.1 * u_barrier, depth=k, weight_decay=lam) == pytest.approx(
        np.prod(fps[2].state), rel=1e-9)


@pytest.mark.parametrize("k", [3, 4, 5])
def test_layer_eigenvectors_are_an_orthonormal_eigenbasis(k):
    """The layer Jacobian is symmetric with a (k-1)-fold eigenvalue at balanced points:
    its eigenvectors are real, orthonormal and span the eigenspaces of eigh (an independent driver)."""
    for fp in ld.fixed_points(1.0, depth=k, weight_decay=0.1):
        J, V, w = fp.jacobian, fp.eigenvectors, fp.eigenvalues
        assert np.allclose(J, J.T, rtol=0, atol=1e-14)
        assert V.dtype == float and w.dtype == float
        assert np.abs(V.T @ V - np.eye(k)).max() <= 1e-10
        assert np.abs(J @ V - V * w).max() <= 1e-12
        lam, U = np.linalg.eigh(J)
        assert np.allclose(np.sort(w), lam, rtol=0, atol=1e-12)
        for x in np.unique(np.round(lam, 9)):
            sel_v, sel_u = np.abs(w - x) < 1e-9, np.abs(lam - x) < 1e-9
            assert np.abs(V[:, sel_v] @ V[:, sel_v].T - U[:, sel_u] @ U[:, sel_u].T).max() <= 1e-9


# --- a trained network -----------------------------------------------------------

@pytest.mark.parametrize("k, lam, u0", [(2, 0.0, 1e-3), (3, 0.1, 1e-2)])
def test_trained_network_follows_theory(k, lam, u0):
    """Gradient descent is Euler on the gradient flow: the deviation from the closed form
    is O(learning rate) (halves when the step halves) and vanishes under Richardson extrapolation."""
    sv = [3.0, 2.0, 1.0, 0.5]
    kw = dict(depth=k, hidden=8, n_in=8, n_out=6, n_samples=64, u0=u0, weight_decay=lam,
              t_max=8.0, n_records=81, seed=3)
    coarse = ld.simulate_deep_linear(sv, learning_rate=0.01, **kw)
    fine = ld.simulate_deep_linear(sv, learning_rate=0.005, **kw)
    assert np.array_equal(coarse["time"].values, fine["time"].values)
    err_c = float(np.abs(coarse["u_sim"] - coarse["u_theory"]).max())
    err_f = float(np.abs(fine["u_sim"] - fine["u_theory"]).max())
    extrap = 2 * fine["u_sim"] - coarse["u_sim"]
    err_x = float(np.abs(extrap - fine["u_theory"]).max())
    print(f"\nk={k} lambda={lam}: max |u_sim - u_theory| = {err_c:.4f} (step 0.01), {err_f:.4f} "
          f"(step 0.005), Richardson {err_x:.2e}")
    assert err_f <= 0.02 * max(sv)
    assert err_c / err_f == pytest.approx(2.0, rel=0.1)
    assert err_x <= 0.1 * err_f
    # the modes stay decoupled: U^T W V is diagonal throughout
    assert float(fine["offdiag"].max()) <= 1e-12
    assert fine["loss"].values[-1] < fine["loss"].values[0]


# --- datasets, recipe, validation -------------------------------------------------

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


def test_recipe_quick_and_study_file(tmp_path):
    files = run_recipe("deep_linear", tmp_path, quick=True, depths=[2], weight_decays=[0.0, 0.2])
    assert files["figure"].exists()
    th = xr.open_dataset(files["theory_k2_wd1"], engine="scipy")
    assert th.attrs["max_ode_deviation"] <= 1e-10
    sim = xr.open_dataset(files["simulation_k2_wd1"], engine="scipy")
    assert float(np.abs(sim["u_sim"] - sim["u_theory"]).max()) < 0.2
    study = tomllib.loads((ROOT / "studies" / "deep_linear.toml").read_text())
    assert study["name"] == "deep_linear" and study["recipe"] in available_recipes()


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="depth: must be an integer >= 1"):
        ld.mode_strength(1.0, 1.0, 0.1, depth=0)
    with pytest.raises(ValueError, match="weight_decay: must be finite and >= 0"):
        ld.mode_rhs(0.1, 1.0, weight_decay=-1.0)
    with pytest.raises(ValueError, match="u0: mode strengths of depth >= 2 chains must be > 0"):
        ld.mode_strength(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="s: singular value must be finite and >= 0"):
        ld.fixed_points(-1.0)
    with pytest.raises(ValueError, match="coordinates: must be 'layers' or 'mode'"):
        ld.fixed_points(1.0, coordinates="weights")
    with pytest.raises(ValueError, match="t: times must be finite and >= 0"):
        ld.mode_strength([-1.0], 1.0, 0.1)
    with pytest.raises(ValueError, match="singular_values: at most min"):
        ld.simulate_deep_linear([1.0] * 7, n_in=8, n_out=6)


def test_fixed_points_are_generic_fixed_point_results():
    import phasekit as pk

    fps = ld.fixed_points(2.0, depth=2)
    assert fps and all(type(fp) is pk.FixedPoint for fp in fps)
    assert all(fp.status == "ok" and fp.success and fp.kind in {"stable", "saddle", "unstable", "marginal"}
               for fp in fps)
    assert fps[0].labels == ("a1", "a2") and fps[0].jacobian_scheme == "analytic"
    assert np.array_equal(fps[0].state, fps[0].vector)
    ds = fps[-1].to_dataset()
    assert list(ds.component.values) == ["a1", "a2"] and int(ds.n_unstable) == fps[-1].n_unstable
    # layer coordinates: the origin is a saddle, the learned point is marginal along the
    # rescaling a1 -> c a1, a2 -> a2 / c; in the mode strength it is stable
    assert [fp.kind for fp in fps] == ["saddle", "marginal"]
    assert [fp.kind for fp in ld.fixed_points(2.0, depth=2, coordinates="mode")] == ["unstable", "stable"]
