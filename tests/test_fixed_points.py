"""Fixed points, linearisation and stability boundaries of the committee machine.

Independent routes: the closed forms of MODEL.md (ReLU perceptron spectrum and
eta_c = 2, Saad-Solla erf plateau), the published ReLU K = M = 2 plateau,
integration of the flow (growth of a perturbation along an eigenvector, decay
or growth around eta_c), and finite differences coded here separately.
"""

import importlib
import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import phasekit as pk
from phasekit.committee import Committee, State

# the package re-exports the function fixed_points under the module's name
fpm = importlib.import_module("phasekit.fixed_points")

# Exact Jacobian of the ReLU perceptron at (R, Q) = (1, 1): J(eta) = eta A + eta^2 B,
# eigenvalues -eta/2 (eigenvector (1/2, 1)) and eta^2/2 - eta (eigenvector (0, 1)).
A_PERCEPTRON = np.array([[-0.5, 0.0], [1.0, -1.0]])
B_PERCEPTRON = np.array([[0.0, 0.0], [-1.0, 0.5]])


@pytest.fixture(scope="module")
def perceptron_structure():
    return fpm.eta_structure(Committee(1, 1, "relu", eta=1.0, second_order=True))


# --- ReLU perceptron: Jacobian from inside the cone, eta_c = 2 ------------------------


def test_one_sided_jacobian_of_relu_perceptron_is_exact(perceptron_structure):
    st_ = perceptron_structure
    assert st_.method == "cone"
    assert np.abs(st_.A - A_PERCEPTRON).max() < 1e-10
    assert np.abs(st_.B - B_PERCEPTRON).max() < 1e-10
    # the reported error estimate is honest (within a factor of ten)
    err = max(np.abs(st_.A - A_PERCEPTRON).max(), np.abs(st_.B - B_PERCEPTRON).max())
    assert err <= 10 * st_.error


def test_relu_perceptron_critical_eta_is_two(perceptron_structure):
    model = Committee(1, 1, "relu", eta=0.3, second_order=True)
    eta_c, info = fpm.critical_eta(model, full_output=True, structure=perceptron_structure)
    assert abs(eta_c - 2.0) < 1e-9
    lo, hi = info["bracket"]
    assert lo <= eta_c <= hi and hi - lo <= 1e-9
    assert info["crossing"] == "real"
    # computed from scratch (no shared structure) it agrees too
    assert abs(fpm.critical_eta(model) - 2.0) < 1e-9


@pytest.mark.parametrize("eta", [0.5, 1.5])
def test_relu_perceptron_spectrum(eta):
    fp = fpm.perfect_solution(Committee(1, 1, "relu", eta=eta, second_order=True))
    exact = {-eta / 2: [0.5, 1.0], eta**2 / 2 - eta: [0.0, 1.0]}
    assert fp.label == "perfect" and fp.residual == 0.0
    assert np.abs(np.asarray(fp.eigenvalues) - sorted(exact, reverse=True)).max() < 1e-9
    for lam, vec in exact.items():
        j = int(np.argmin(np.abs(np.asarray(fp.eigenvalues) - lam)))
        u = np.asarray(vec) / np.linalg.norm(vec)
        assert abs(abs(fp.eigenvectors[:, j] @ u) - 1.0) < 1e-8
    assert fp.stable and fp.kind == "stable" and fp.n_unstable == 0


def test_relu_perceptron_optimal_eta(perceptron_structure):
    # decay rate min(eta/2, eta - eta^2/2) is largest at eta = 1 (rate 1/2), a kink
    model = Committee(1, 1, "relu", eta=1.0)
    eta_o, info = fpm.optimal_eta(model, full_output=True, structure=perceptron_structure)
    assert abs(eta_o - 1.0) < 1e-8
    assert abs(info["rate"] - 0.5) < 1e-9
    assert info["kink"]


def test_continuation_locates_the_crossing_by_bisection():
    model = Committee(1, 1, "relu", eta=1.0, second_order=True)
    ds = fpm.continuation(model, "perfect", [0.6, 1.4, 2.2, 3.0], rtol=1e-10)
    assert ds.sizes["crossing"] == 1
    c = ds.isel(crossing=0)
    assert float(c.crossing_low) <= 2.0 + 1e-9 and float(c.crossing_high) >= 2.0 - 1e-9
    assert float(c.crossing_precision) <= 2e-10
    assert abs(float(c.crossing_eta) - 2.0) < 1e-9
    assert int(c.crossing_n_before) == 0 and int(c.crossing_n_after) == 1
    assert ds.n_unstable.values.tolist() == [0, 0, 1, 1]
    # the recorded spectrum is the exact one at every eta on the branch
    eta = ds.eta.values
    exact = np.sort(np.stack([-eta / 2, eta**2 / 2 - eta], axis=1), axis=1)[:, ::-1]
    assert np.abs(ds.eigenvalue_real.values - exact).max() < 1e-9


# --- plateaus ---------------------------------------------------------------------------


def test_relu_committee_plateau_matches_reference():
    model = Committee(2, 2, "relu", eta=0.1, second_order=False)
    fp = fpm.symmetric_plateau(model)
    assert fp.converged and fp.residual < 1e-12
    R, Q = fp.state.R, fp.state.Q
    assert np.abs(R - 0.52458).max() < 5e-6
    assert abs(Q[0, 0] - 0.71776) < 5e-6 and abs(Q[1, 1] - 0.71776) < 5e-6
    assert abs(Q[0, 1] - 0.38298) < 5e-6
    assert abs(fp.eg - 0.073613) < 5e-7
    ref = [0.2392, -0.0049, -0.2308, -0.4399, -0.6443, -0.9568, -1.3583]
    assert np.abs(np.real(fp.eigenvalues) / model.eta - ref).max() < 5e-5
    assert np.abs(fp.escape_vector - [0.5, -0.5, -0.5, 0.5, 0, 0, 0]).max() < 1e-6
    assert abs(fp.escape_eigenvalue / model.eta - 0.2392) < 5e-5
    assert fp.n_unstable == 1 and fp.kind == "saddle" and fp.escape_multiplicity == 1


@pytest.mark.parametrize("K", [2, 3, 4, 5])
def test_erf_saad_solla_plateau(K):
    model = Committee(K, K, "erf", eta=1.0, second_order=False)
    fp = fpm.symmetric_plateau(model)
    R = 1 / math.sqrt(K * (2 * K - 1))
    Q = 1 / (2 * K - 1)
    assert fp.converged
    assert np.abs(fp.state.R - R).max() < 1e-8
    assert np.abs(fp.state.Q - Q).max() < 1e-8  # Q = C: coinciding students
    eg = (K / math.pi) * (math.pi / 6 - K * math.asin(1 / (2 * K)))
    assert abs(fp.eg - eg) < 1e-10
    lam = 2 * K / (math.pi * math.sqrt(2 * K - 1) * (2 * K + 1) ** 1.5)
    assert abs(fp.escape_eigenvalue - lam) < 1e-6
    # the escape space carries the (K-1)^2 ways of specialising, and it breaks the symmetry
    assert fp.escape_multiplicity == (K - 1) ** 2
    assert np.abs(fp.escape_vector.reshape(-1)[: K * K].reshape(K, K).sum(axis=0)).max() < 1e-8
    model.validate_state(fp.state)  # on the boundary of the cone, not outside


def test_escape_eigenvalue_predicts_growth_along_the_flow():
    """Displace the ReLU plateau along its escape vector; the flow separates at rate lambda_esc."""
    model = Committee(2, 2, "relu", eta=1.0, second_order=False)
    fp = fpm.symmetric_plateau(model)
    u = fp.escape_vector
    eps = 1e-9
    ds = pk.integrate(model, State.from_vector(fp.vector + eps * u, 2, 2), 45.0, n_points=46,
                      rtol=1e-12, atol=1e-15)
    R = ds.R.values.reshape(len(ds.alpha), -1)
    proj = (R - fp.state.R.reshape(-1)) @ u[:4]
    a = ds.alpha.values
    sel = (a >= 15) & (a <= 45)
    slope = np.polyfit(a[sel], np.log(np.abs(proj[sel])), 1)[0]
    assert abs(slope - fp.escape_eigenvalue) < 2e-4


# --- multi-start search -------------------------------------------------------------------


def test_fixed_points_relu_committee_finds_plateau_and_perfect_once():
    model = Committee(2, 2, "relu", eta=1.0, second_order=False)
    fps = fpm.fixed_points(model, n_starts=64, seed=0)
    labels = [fp.label for fp in fps]
    assert labels.count("perfect") == 1 and labels.count("symmetric_plateau") == 1
    perfect = State(np.eye(2), np.eye(2)).to_vector()
    near_perfect = [fp for fp in fps if fpm._permutation_distance(model, fp.vector, perfect) < 1e-4]
    near_plateau = [fp for fp in fps if fpm._permutation_distance(
        model, fp.vector, fps[labels.index("symmetric_plateau")].vector) < 1e-4]
    assert len(near_perfect) == 1 and len(near_plateau) == 1
    assert fps[labels.index("perfect")].stable
    assert fps[labels.index("symmetric_plateau")].n_unstable == 1
    for fp in fps:
        assert fp.converged and fp.residual < 1e-10
        model.validate_state(fp.state)
        assert fp.kind in ("stable", "saddle", "unstable", "marginal")


# --- property tests -------------------------------------------------------------------------


@st.composite
def guesses(draw):
    act = draw(st.sampled_from(["erf", "relu"]))
    K = draw(st.integers(1, 3))
    M = draw(st.integers(1, 2))
    n = K * M + K * (K + 1) // 2
    v = np.array(draw(st.lists(st.floats(-1.5, 1.5), min_size=n, max_size=n)))
    return act, K, M, v


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(guesses())
def test_random_guesses_never_leave_the_cone(case):
    act, K, M, v = case
    model = Committee(K, M, act, eta=0.5, second_order=False)
    fp = fpm.find_fixed_point(model, v, max_iter=40)
    model.validate_state(fp.state)  # PSD to the project tolerance and Q_ii > 0
    assert fpm._margin(model, fp.vector) >= -1e-14
    assert np.isclose(fp.residual, np.abs(model.rhs_vector(fp.vector)).max(), rtol=1e-6, atol=1e-15)
    assert fp.residual < 1e-10 or not fp.converged
    if not fp.converged:
        assert fp.kind == "not_converged" and not fp.stable


# --- Jacobians ------------------------------------------------------------------------------


class _Counting(Committee):
    """A committee that counts right-hand-side evaluations (rows) and calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = 0
        self.calls = 0

    def rhs_vector(self, v):
        v = np.asarray(v, dtype=float)
        self.rows += int(np.prod(v.shape[:-1]))
        self.calls += 1
        return super().rhs_vector(v)


def _interior_state(rng, K, M):
    A = rng.normal(scale=0.5, size=(K, M))
    W = rng.normal(scale=0.5, size=(K, K + 1))
    return np.concatenate([A.ravel(), (A @ A.T + W @ W.T / (K + 1))[np.triu_indices(K)]])


def _richardson_jacobian(f, v, h):
    """Five-point central differences (error O(h^4)), coded independently of the module."""
    n = v.size
    J = np.empty((f(v).size, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        J[:, j] = (-f(v + 2 * e) + 8 * f(v + e) - 8 * f(v - e) + f(v - 2 * e)) / (12 * h)
    return J


@pytest.mark.parametrize("act,second", [("erf", True), ("relu", False), ("tanh", False)])
def test_interior_jacobian_costs_one_call_of_2n_plus_1_states(act, second):
    rng = np.random.default_rng(3)
    model = _Counting(2, 2, act, eta=0.7, second_order=second)
    v = _interior_state(rng, 2, 2)
    J, info = fpm.jacobian(model, v, full_output=True)
    assert info["method"] == "central"
    assert model.calls == 1 and model.rows <= 2 * model.n_state + 1
    ref = _richardson_jacobian(model.rhs_vector, v, 1e-3)
    assert np.abs(J - ref).max() < 1e-8 * max(1.0, np.abs(ref).max())
    assert np.allclose(info["rhs"], model.rhs_vector(v), rtol=0, atol=1e-15)


def test_newton_jacobians_cost_at_most_2n_plus_1_states():
    rng = np.random.default_rng(4)
    model = _Counting(2, 2, "erf", eta=1.0, second_order=False)
    v = _interior_state(rng, 2, 2)
    n = model.n_state
    f, J = fpm._central_jacobian(model.rhs_vector, v, 1e-6)
    assert model.rows == 2 * n + 1 and model.calls == 1
    d_in, gamma = fpm._inward_direction(model, v)
    f2, J2 = fpm._forward_inward_jacobian(model.rhs_vector, v, d_in, gamma, 1e-8)
    assert model.rows == (2 * n + 1) + (n + 2) and model.calls == 2
    assert np.abs(J2 - J).max() < 1e-6


def test_symmetry_reduced_cone_jacobian_equals_the_full_one():
    model = Committee(3, 3, "erf", eta=1.0, second_order=False)
    v = fpm.symmetric_plateau(model).vector
    sym = fpm._state_symmetry(model, v)
    assert sym is not None and sym.kind == "separate" and len(sym.representatives) == 3
    _, J_sym, _, n_sym = fpm._cone_jacobian(model, model.rhs_vector, v, sym)
    _, J_full, _, n_full = fpm._cone_jacobian(model, model.rhs_vector, v, None)
    assert n_sym < n_full
    assert np.abs(J_sym - J_full).max() < 1e-9


def test_perfect_solution_symmetry_is_simultaneous():
    model = Committee(3, 3, "relu", eta=1.0, second_order=False)
    sym = fpm._state_symmetry(model, State(np.eye(3), np.eye(3)).to_vector())
    assert sym is not None and sym.kind == "simultaneous" and len(sym.representatives) == 4


# --- eta_c against the dynamics -----------------------------------------------------------------


def test_erf_perceptron_critical_eta_separates_decay_from_growth():
    """Around the perfect solution the flow decays below eta_c and grows above it."""
    model = Committee(1, 1, "erf", eta=1.0, second_order=True)
    eta_c = fpm.critical_eta(model)
    assert 1.0 < eta_c < 10.0
    start = State([[1.0]], [[1.0 + 1e-6]])
    dev = {}
    for factor in (0.9, 1.1):
        m = model.replace(eta=factor * eta_c)
        ds = pk.integrate(m, start, 200.0 / m.eta, n_points=3, rtol=1e-11, atol=1e-16)
        dev[factor] = abs(float(ds.Q.values[-1, 0, 0]) - 1.0) + abs(float(ds.R.values[-1, 0, 0]) - 1.0)
    assert dev[0.9] < 1e-8 < 1e-5 < dev[1.1]


# --- datasets, recipe, inputs -------------------------------------------------------------------


def test_to_dataset_round_trips_through_netcdf(tmp_path):
    model = Committee(2, 2, "relu", eta=1.0, second_order=False)
    fp = fpm.symmetric_plateau(model)
    ds = fp.to_dataset()
    for name in list(ds.data_vars) + list(ds.coords):
        assert "long_name" in ds[name].attrs and "units" in ds[name].attrs
    path = tmp_path / "plateau.nc"
    ds.to_netcdf(path, engine="scipy")
    back = xr.open_dataset(path, engine="scipy")
    assert np.allclose(back.eigenvalue_real.values, np.real(fp.eigenvalues))
    assert back.attrs["label"] == "symmetric_plateau" and int(back.attrs["converged"]) == 1
    assert list(back.component.values) == ["R11", "R12", "R21", "R22", "Q11", "Q12", "Q22"]
    back.close()


def test_stability_boundary_recipe_quick(tmp_path):
    from phasekit.recipes import run_recipe

    files = run_recipe("stability_boundary", tmp_path, quick=True, activations=["relu"], K_values=[1, 2])
    for key in ("stability_boundary", "plateau_escape", "stability_boundary_figure", "plateau_escape_figure"):
        assert files[key].exists()
    sb = xr.open_dataset(files["stability_boundary"], engine="scipy")
    assert abs(float(sb.eta_c.sel(activation="relu", K=1)) - 2.0) < 1e-9
    assert abs(float(sb.eta_opt.sel(activation="relu", K=1)) - 1.0) < 1e-8
    pe = xr.open_dataset(files["plateau_escape"], engine="scipy")
    assert abs(float(pe.escape_eigenvalue.sel(activation="relu", K=2)) - 0.2392) < 5e-5
    assert np.isnan(float(pe.escape_eigenvalue.sel(activation="relu", K=1)))
    sb.close()
    pe.close()


def test_bad_inputs_raise_value_errors():
    model = Committee(2, 2, "erf", eta=1.0, second_order=False)
    with pytest.raises(ValueError, match="guess"):
        fpm.find_fixed_point(model, np.zeros(3))
    with pytest.raises(ValueError, match="tol"):
        fpm.find_fixed_point(model, np.ones(7), tol=0)
    with pytest.raises(ValueError, match="K == M"):
        fpm.perfect_solution(Committee(2, 1, "erf"))
    with pytest.raises(ValueError, match="T = a I"):
        fpm.symmetric_plateau(Committee(2, 2, "erf", T=[[1.0, 0.2], [0.2, 2.0]]))
    with pytest.raises(ValueError, match="noise"):
        fpm.critical_eta(Committee(1, 1, "erf", noise=0.1))
    with pytest.raises(ValueError, match="method"):
        fpm.jacobian(model, State(np.eye(2), np.eye(2)), method="complex")
    with pytest.raises(ValueError, match="outside"):
        fpm.jacobian(model, State(2 * np.eye(2), np.eye(2)))
    with pytest.raises(ValueError, match="n_starts"):
        fpm.fixed_points(model, n_starts=0)
    with pytest.raises(ValueError, match="eta_values"):
        fpm.continuation(model, "perfect", [1.0, 0.5, 2.0])
    with pytest.raises(ValueError, match="landmark"):
        fpm.continuation(model, "saddle", [0.5, 1.0])
