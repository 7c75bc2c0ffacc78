"""Fixed points, linearisation and stability boundaries of the committee machine.

Independent routes: the published closed forms (ReLU perceptron spectrum and
eta_c = 2, Saad-Solla erf plateau), the published ReLU K = M = 2 plateau,
integration of the flow (growth of a perturbation along an eigenvector, decay
or growth around eta_c), finite differences coded here separately, and the
erf flow written out here from Saad and Solla's closed forms, differentiated
and diagonalised with mpmath (for eta_c, eta_opt and marginal families).
"""

import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import phasekit as pk

# the package re-exports the function fixed_points under the module's name
import phasekit.committee as fpm
from phasekit.committee.cone import _interior_reference, _inward_direction, _margin
from phasekit.committee.jacobians import (
    _central_jacobian,
    _cone_jacobian,
    _forward_inward_jacobian,
)
from phasekit.committee.model import Committee, State, vector_labels
from phasekit.committee.search import _permutation_distance
from phasekit.committee.symmetry import _state_symmetry
from phasekit.core import spectrum as spm

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


@pytest.mark.parametrize("seed", range(8))
def test_relu_perceptron_kink_survives_jacobian_errors(seed):
    """The exact A, B plus entrywise errors at the level the cone fit reports (3e-11, error
    estimate 2e-11): the crossing of -1/2 and eta/2 - 1 becomes an avoided crossing or a tiny
    complex bubble whose smooth maximum can beat the kink by more than 1e-10 relative; the
    optimum must still be the kink, to the accuracy the errors allow."""
    rng = np.random.default_rng(seed)
    A = A_PERCEPTRON + 3e-11 * rng.normal(size=(2, 2))
    B = B_PERCEPTRON + 3e-11 * rng.normal(size=(2, 2))
    B[0] = 0.0  # the R equation has no eta^2 term
    structure = fpm.EtaStructure(A, B, 2e-11, State([[1.0]], [[1.0]]), "synthetic")
    eta_o, info = fpm.optimal_eta(Committee(1, 1, "relu", eta=1.0), full_output=True, structure=structure)
    assert info["kink"] and info["kink_type"] == "crossing"
    assert abs(eta_o - 1.0) < 1e-8 and abs(eta_o - 1.0) <= info["eta_error"]
    assert abs(info["rate"] - 0.5) < 1e-9


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
    near_perfect = [fp for fp in fps if _permutation_distance(model, fp.vector, perfect) < 1e-4]
    near_plateau = [fp for fp in fps if _permutation_distance(
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
    assert _margin(model, fp.vector) >= -1e-14
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
    f, J = _central_jacobian(model.rhs_vector, v, 1e-6)
    assert model.rows == 2 * n + 1 and model.calls == 1
    d_in, gamma = _inward_direction(model, v)
    f2, J2 = _forward_inward_jacobian(model.rhs_vector, v, d_in, gamma, 1e-8)
    assert model.rows == (2 * n + 1) + (n + 2) and model.calls == 2
    assert np.abs(J2 - J).max() < 1e-6


def test_symmetry_reduced_cone_jacobian_equals_the_full_one():
    model = Committee(3, 3, "erf", eta=1.0, second_order=False)
    v = fpm.symmetric_plateau(model).vector
    sym = _state_symmetry(model, v)
    assert sym is not None and sym.kind == "separate" and len(sym.representatives) == 3
    _, J_sym, _, n_sym = _cone_jacobian(model, model.rhs_vector, v, sym)
    _, J_full, _, n_full = _cone_jacobian(model, model.rhs_vector, v, None)
    assert n_sym < n_full
    assert np.abs(J_sym - J_full).max() < 1e-9


def test_perfect_solution_symmetry_is_simultaneous():
    model = Committee(3, 3, "relu", eta=1.0, second_order=False)
    sym = _state_symmetry(model, State(np.eye(3), np.eye(3)).to_vector())
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
    from phasekit.study.recipes import run_recipe

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


# --- eigenvectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_perfect_solution_eigenvectors_are_unit_and_span_each_eigenspace(eta):
    """Erf K = M = 3: the permutation symmetry makes eigenvalues 2- and 3-fold; each
    eigenspace must be spanned by real unit columns (compared with the null space of
    J - lambda I from an SVD, an independent route)."""
    fp = fpm.perfect_solution(Committee(3, 3, "erf", eta=eta, second_order=True))
    J, V, w = fp.jacobian, fp.eigenvectors, fp.eigenvalues
    assert w.dtype == float and V.dtype == float
    assert np.allclose(np.linalg.norm(V, axis=0), 1.0, rtol=0, atol=1e-12)
    assert np.abs(J @ V - V * w).max() <= 1e-9
    n = len(w)
    for x in np.unique(np.round(w, 7)):
        sel = np.abs(w - x) <= 1e-7
        U, sv, Wt = np.linalg.svd(J - np.mean(w[sel]) * np.eye(n))
        null = Wt[sv <= 1e-6].T
        assert null.shape[1] == sel.sum()
        Q, _ = np.linalg.qr(V[:, sel])
        assert np.abs(Q @ Q.T - null @ null.T).max() <= 1e-6


def test_linearisation_failure_is_reported_not_raised(monkeypatch):
    def nothing(*args, **kwargs):
        raise np.linalg.LinAlgError("eig algorithm did not converge")

    monkeypatch.setattr(spm.linalg, "eig", nothing)
    fp = fpm.perfect_solution(Committee(1, 1, "relu", eta=0.5))
    assert not fp.converged and fp.kind == "not_converged" and not fp.stable
    assert "linearisation failed" in fp.message and np.all(np.isnan(fp.eigenvalues))


# --- symmetric plateau: failures and K = 1 ---------------------------------------------------------


def test_symmetric_plateau_failure_is_a_result():
    """ReLU K = M = 2 at eta = 5 (second order): the reduced flow diverges (eta_c = 3 - sqrt 3)."""
    fp = fpm.symmetric_plateau(Committee(2, 2, "relu", eta=5.0, second_order=True))
    assert not fp.converged and fp.kind == "not_converged" and fp.message
    assert fp.label == "symmetric_plateau" and np.all(np.isfinite(fp.vector))
    Committee(2, 2, "relu").validate_state(fp.state)


@pytest.mark.parametrize("M", [1, 2])
def test_symmetric_plateau_needs_two_students(M):
    with pytest.raises(ValueError, match="K >= 2"):
        fpm.symmetric_plateau(Committee(1, M, "relu", eta=0.5))


# --- eta structure: statuses on synthetic pencils ----------------------------------------------------


def _synthetic(A, B):
    A, B = np.asarray(A, float), np.asarray(B, float)
    return fpm.EtaStructure(A, B, 1e-14, State([[1.0]], [[1.0]]), "synthetic")


def test_critical_eta_statuses_on_synthetic_pencils():
    model = Committee(1, 1, "relu", eta=1.0)
    eta, info = fpm.critical_eta(model, full_output=True, structure=_synthetic(np.zeros((2, 2)), np.zeros((2, 2))))
    assert np.isnan(eta) and info["status"] == "all_marginal" and info["n_marginal"] == 2
    eta, info = fpm.critical_eta(model, full_output=True, structure=_synthetic(-np.eye(2), np.zeros((2, 2))))
    assert eta == math.inf and info["status"] == "stable"
    eta, info = fpm.critical_eta(model, full_output=True, structure=_synthetic(np.diag([0.1, -1.0]), np.eye(2)))
    assert eta == 0.0 and info["status"] == "unstable_at_small_eta"
    # a marginal mode next to a crossing at eta = 2: excluded, named, and the crossing found
    A, B = np.diag([0.0, -1.0, -3.0]), np.diag([0.0, 0.5, 0.1])
    eta, info = fpm.critical_eta(model, full_output=True, structure=_synthetic(A, B))
    assert abs(eta - 2.0) <= 1e-12 and info["status"] == "converged" and info["n_marginal"] == 1
    assert [m["side"] for m in info["marginal_modes"]] == ["right", "left"]
    assert all(m["components"] == ["R11"] for m in info["marginal_modes"])


def test_optimal_eta_at_a_coalescence():
    """J / eta = [[-1 + eta/4, 1], [0.6 - eta/5, -1 + eta/4]]: eigenvalues -1 + eta/4 +- sqrt(0.6 - eta/5),
    real below eta = 3, a complex pair above (eta_c = 4).  The decay rate
    -eta Re lambda_max rises steeply to 3/4 at the coalescence and falls after."""
    A = np.array([[-1.0, 1.0], [0.6, -1.0]])
    B = np.array([[0.25, 0.0], [-0.2, 0.25]])
    model = Committee(1, 1, "relu", eta=1.0)
    eta_c, cinfo = fpm.critical_eta(model, full_output=True, structure=_synthetic(A, B))
    assert abs(eta_c - 4.0) <= 1e-12 and cinfo["crossing"] == "complex"
    eta_o, info = fpm.optimal_eta(model, full_output=True, structure=_synthetic(A, B))
    assert abs(eta_o - 3.0) <= 1e-12 and abs(info["rate"] - 0.75) <= 1e-12
    assert info["kink"] and info["kink_type"] == "coalescence"


def test_critical_eta_rejects_a_state_that_moves_with_eta():
    model = Committee(2, 2, "relu", eta=1.0, second_order=False)
    plateau = fpm.symmetric_plateau(model)
    with pytest.raises(ValueError, match="state: not a fixed point for every eta"):
        fpm.critical_eta(model.replace(second_order=True), state=plateau)


# --- the erf flow in mpmath (Saad & Solla's closed forms, g(x) = erf(x / sqrt 2)) --------------------


def _mp_flow_parts(mp, v, K, M):
    """(first-order part, eta^2 part) of d state / d alpha at eta = 1, T = identity, state order of vector_labels."""
    pi = mp.pi
    L = K + M
    C = [[mp.mpf(0)] * L for _ in range(L)]
    for i in range(K):
        for n in range(M):
            C[i][K + n] = C[K + n][i] = v[i * M + n]
    j = K * M
    for i in range(K):
        for k in range(i, K):
            C[i][k] = C[k][i] = v[j]
            j += 1
    for n in range(M):
        C[K + n][K + n] = mp.mpf(1)

    def I3(a, b, c):  # < g'(x_a) x_b g(x_c) >
        return 2 / pi * (C[b][c] * (1 + C[a][a]) - C[a][b] * C[a][c]) / (
            (1 + C[a][a]) * mp.sqrt((1 + C[a][a]) * (1 + C[c][c]) - C[a][c] ** 2))

    def I4(a, b, c, d):  # < g'(x_a) g'(x_b) g(x_c) g(x_d) >
        l4 = (1 + C[a][a]) * (1 + C[b][b]) - C[a][b] ** 2
        l0 = (l4 * C[c][d] - C[b][c] * C[b][d] * (1 + C[a][a]) - C[a][c] * C[a][d] * (1 + C[b][b])
              + C[a][b] * C[a][c] * C[b][d] + C[a][b] * C[a][d] * C[b][c])
        l1 = l4 * (1 + C[c][c]) - C[b][c] ** 2 * (1 + C[a][a]) - C[a][c] ** 2 * (1 + C[b][b]) \
            + 2 * C[a][b] * C[a][c] * C[b][c]
        l2 = l4 * (1 + C[d][d]) - C[b][d] ** 2 * (1 + C[a][a]) - C[a][d] ** 2 * (1 + C[b][b]) \
            + 2 * C[a][b] * C[a][d] * C[b][d]
        return 4 / pi ** 2 / mp.sqrt(l4) * mp.asin(l0 / mp.sqrt(l1 * l2))

    s = [-1] * K + [1] * M
    first = [sum(s[u] * I3(i, K + n, u) for u in range(L)) for i in range(K) for n in range(M)]
    second = [mp.mpf(0)] * (K * M)
    for i in range(K):
        for k in range(i, K):
            first.append(sum(s[u] * (I3(i, k, u) + I3(k, i, u)) for u in range(L)))
            second.append(sum(s[u] * s[w] * I4(i, k, u, w) for u in range(L) for w in range(L)))
    return first, second


def _mp_pencil(mp, v, K, M):
    """A and B of J(eta) = eta A + eta^2 B by central differences at mpmath precision (error ~ h^2)."""
    n = len(v)
    A, B = mp.matrix(n, n), mp.matrix(n, n)
    h = mp.mpf(10) ** (-(mp.mp.dps // 3))
    for j in range(n):
        vp, vm = list(v), list(v)
        vp[j] += h
        vm[j] -= h
        (ap, bp), (am, bm) = _mp_flow_parts(mp, vp, K, M), _mp_flow_parts(mp, vm, K, M)
        for r in range(n):
            A[r, j] = (ap[r] - am[r]) / (2 * h)
            B[r, j] = (bp[r] - bm[r]) / (2 * h)
    return A, B


def _mp_secant(mp, f, x0, x1, tol):
    f0, f1 = f(x0), f(x1)
    for _ in range(12):
        x0, f0, x1 = x1, f1, x1 - f1 * (x1 - x0) / (f1 - f0)
        f1 = f(x1)
        if abs(x1 - x0) <= tol * abs(x1):
            break
    return x1


def _perfect_vector(mp, K):
    v = [mp.mpf(1 if i == n else 0) for i in range(K) for n in range(K)]
    return v + [mp.mpf(1 if i == k else 0) for i in range(K) for k in range(i, K)]


def test_erf_perceptron_eta_c_and_eta_opt_against_mpmath():
    """K = M = 1: A, B from the closed forms at 50 digits.  The discriminant of the 2 x 2
    pencil, (a11 - a22 - eta b22)^2 + 4 a12 (a21 + eta b21), is a perfect square: the two
    real branches cross (at a defective Jacobian) at its double root, where the decay rate peaks."""
    import mpmath as mp
    with mp.workdps(50):
        A, B = _mp_pencil(mp, _perfect_vector(mp, 1), 1, 1)
        c2 = B[1, 1] ** 2
        c1 = -2 * (A[0, 0] - A[1, 1]) * B[1, 1] + 4 * A[0, 1] * B[1, 0]
        c0 = (A[0, 0] - A[1, 1]) ** 2 + 4 * A[0, 1] * A[1, 0]
        assert abs(c1 ** 2 - 4 * c2 * c0) < mp.mpf(10) ** -30
        eta_opt = -c1 / (2 * c2)
        rate_opt = -eta_opt * (A[0, 0] + A[1, 1] + eta_opt * (B[0, 0] + B[1, 1])) / 2
        # det(A + eta B) = 0 is linear in eta (B's first row vanishes)
        eta_c = (A[0, 1] * A[1, 0] - A[0, 0] * A[1, 1]) / (A[0, 0] * B[1, 1] - A[0, 1] * B[1, 0])
        A_f = np.array(A.tolist(), dtype=float)
        B_f = np.array(B.tolist(), dtype=float)
        eta_opt, rate_opt, eta_c = float(eta_opt), float(rate_opt), float(eta_c)
    model = Committee(1, 1, "erf", eta=1.0, second_order=True)
    st_ = fpm.eta_structure(model)
    err = max(np.abs(st_.A - A_f).max(), np.abs(st_.B - B_f).max())
    assert err <= 10 * st_.error
    eo, info = fpm.optimal_eta(model, full_output=True, structure=st_)
    ec, cinfo = fpm.critical_eta(model, full_output=True, structure=st_)
    print(f"\nerf perceptron: eta_opt {eo!r} (mpmath {eta_opt!r}), rate {info['rate']!r} ({rate_opt!r}), "
          f"eta_c {ec!r} ({eta_c!r})")
    assert abs(eo - eta_opt) <= 1e-9 * eta_opt and abs(eo - eta_opt) <= info["eta_error"]
    assert abs(info["rate"] - rate_opt) <= 1e-9 * rate_opt
    assert info["kink"] and info["kink_type"] == "crossing"
    assert abs(ec - eta_c) <= 1e-9 * eta_c and abs(ec - eta_c) <= cinfo["eta_error"]
    assert cinfo["status"] == "converged" and cinfo["marginal_modes"] == []


@pytest.mark.parametrize("K", [2, 3])
def test_erf_committee_eta_opt_at_a_crossing_against_mpmath(K):
    """Erf K = M: the optimum is where a K-fold eta-independent eigenvalue (a common
    eigenvector of A and B) meets a moving branch in a Jordan block.  In mpmath (A, B
    to ~20 digits) the moving branch is the sum of (z - a_c) over the eigenvalues near
    the constant one a_c: well conditioned at the crossing, found by the secant method."""
    import mpmath as mp
    model = Committee(K, K, "erf", eta=1.0, second_order=True)
    eo, info = fpm.optimal_eta(model, full_output=True)
    ec = info["eta_c"]
    with mp.workdps(30):
        A, B = _mp_pencil(mp, _perfect_vector(mp, K), K, K)

        def spec(e):
            return mp.eig(A + B * e, left=False, right=False)

        lam = -info["rate"] / eo
        cluster = [z for z in spec(mp.mpf(eo) * mp.mpf("0.9")) if abs(z - lam) < 1e-3]
        assert len(cluster) == K
        a_c = mp.re(sum(cluster) / K)

        def moving(e):
            return mp.re(sum(z - a_c for z in spec(e) if abs(z - a_c) < 1e-6))

        eta_opt = _mp_secant(mp, moving, mp.mpf(eo) * (1 - mp.mpf(1e-7)), mp.mpf(eo) * (1 + mp.mpf(1e-7)), 1e-18)

        def rate(e):
            return -e * max(mp.re(z) for z in spec(e))

        peak = rate(eta_opt)
        assert rate(eta_opt * (1 - mp.mpf(1e-4))) < peak and rate(eta_opt * (1 + mp.mpf(1e-4))) < peak
        eta_c = _mp_secant(mp, lambda e: max(mp.re(z) for z in spec(e)), mp.mpf(ec) * (1 - mp.mpf(1e-6)),
                           mp.mpf(ec) * (1 + mp.mpf(1e-6)), 1e-18)
        eta_opt, peak, eta_c = float(eta_opt), float(peak), float(eta_c)
    print(f"\nerf K = M = {K}: eta_opt {eo!r} (mpmath {eta_opt!r}), eta_c {ec!r} (mpmath {eta_c!r})")
    assert abs(eo - eta_opt) <= 1e-9 * eta_opt and abs(eo - eta_opt) <= info["eta_error"]
    assert abs(info["rate"] - peak) <= 1e-9 * peak
    assert info["kink"] and info["kink_type"] == "crossing"
    assert abs(ec - eta_c) <= 1e-9 * eta_c and abs(ec - eta_c) <= info["eta_c_info"]["eta_error"]


# --- marginal families --------------------------------------------------------------------------------


def _labelled(K, M, **entries):
    idx = {name: i for i, name in enumerate(vector_labels(K, M))}
    v = np.zeros(len(idx))
    for name, x in entries.items():
        v[idx[name]] = x
    return v


def _span_distance(basis, vectors):
    """Largest distance of the unit ``vectors`` from span(basis)."""
    Q, _ = np.linalg.qr(basis)
    return max(np.linalg.norm(u / np.linalg.norm(u) - Q @ (Q.T @ (u / np.linalg.norm(u)))) for u in vectors)


def test_erf_antiparallel_pair_family_against_mpmath():
    """Erf K = 4, M = 2: J1 = B1, J2 = B2, J3 = -J4 = a (a orthogonal to the teachers, |a|^2 = 1/2).
    erf is odd, so students 3 and 4 cancel for every a: a 3-parameter family of zero-error
    fixed points (a . B1, a . B2, |a|^2).  The family's tangents are the marginal modes; the
    rest of the spectrum, computed in mpmath with the tangents deflated, gives eta_c."""
    import mpmath as mp
    K, M = 4, 2
    q = 0.5
    R = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    Qm = np.diag([1.0, 1.0, q, q])
    Qm[2, 3] = Qm[3, 2] = -q
    state = State(R, Qm)
    model = Committee(K, M, "erf", eta=1.0, second_order=True)
    eta_c, info = fpm.critical_eta(model, state=state, full_output=True)
    tangents = [_labelled(K, M, R31=1, R41=-1, Q13=1, Q14=-1), _labelled(K, M, R32=1, R42=-1, Q23=1, Q24=-1),
                _labelled(K, M, Q33=1, Q44=1, Q34=-1)]
    assert info["status"] == "converged" and info["n_marginal"] == 3
    right = [m for m in info["marginal_modes"] if m["side"] == "right"]
    assert len(right) == 3
    assert _span_distance(np.stack([m["vector"] for m in right], axis=1), tangents) <= 1e-7
    assert sorted(sorted(m["components"]) for m in right) == sorted(
        [sorted(["R31", "R41", "Q13", "Q14"]), sorted(["R32", "R42", "Q23", "Q24"]), sorted(["Q33", "Q34", "Q44"])])
    assert "R31" in info["message"] and "excluded" in info["message"]
    with mp.workdps(30):
        v = [mp.mpf(x) for x in state.to_vector()]
        v[vector_labels(K, M).index("Q33")] = v[vector_labels(K, M).index("Q44")] = mp.mpf(1) / 2
        v[vector_labels(K, M).index("Q34")] = -mp.mpf(1) / 2
        A, B = _mp_pencil(mp, v, K, M)
        T = mp.matrix([[mp.mpf(x) for x in t] for t in tangents]).T
        assert mp.mnorm(A * T, 1) < 1e-15 and mp.mnorm(B * T, 1) < 1e-15
        # orthonormal complement of the tangents (Gram-Schmidt over the tangents, then unit vectors)
        basis = []
        for col in [T[:, k] for k in range(3)] + [mp.matrix([[mp.mpf(i == j)] for i in range(len(v))])
                                                   for j in range(len(v))]:
            for b in basis:
                col = col - b * (b.T * col)[0]
            if mp.norm(col) > 1e-6:
                basis.append(col / mp.norm(col))
        C = mp.matrix(len(v), len(v) - 3)
        for k, b in enumerate(basis[3:]):
            for i in range(len(v)):
                C[i, k] = b[i]
        Ya, Yb = C.T * A * C, C.T * B * C

        def lead(e):
            return max(mp.re(z) for z in mp.eig(Ya + Yb * e, left=False, right=False))

        ref = _mp_secant(mp, lead, mp.mpf(eta_c) * (1 - mp.mpf(1e-6)), mp.mpf(eta_c) * (1 + mp.mpf(1e-6)), 1e-18)
        ref = float(ref)
    print(f"\nerf K = 4, M = 2 antiparallel pair: eta_c {eta_c!r} (mpmath {ref!r})")
    assert abs(eta_c - ref) <= 1e-9 * ref and abs(eta_c - ref) <= info["eta_error"]
    eo, oinfo = fpm.optimal_eta(model, state=state, full_output=True)
    assert 0 < eo < eta_c and oinfo["rate"] > 0 and len(oinfo["marginal_modes"]) == len(info["marginal_modes"])


def _relu_split_state(c):
    """ReLU K = 3, M = 2: J1 = B1, J2 = c B2, J3 = (1 - c) B2 (relu is positively homogeneous)."""
    J = np.array([[1.0, 0.0], [0.0, c], [0.0, 1.0 - c]])
    return State(J, J @ J.T)


def test_relu_over_realisable_family_eta_c():
    """The norm split c of teacher 2 between students 2 and 3 is free: a continuum of
    zero-error fixed points.  eta_c is found (not an exception), the same for two members,
    with the family's tangents among the marginal modes, and it separates decay from growth
    of the error along the flow (an independent route)."""
    model = Committee(3, 2, "relu", eta=1.0, second_order=True)
    out = {}
    for c in (0.3, 0.5):
        eta_c, info = fpm.critical_eta(model, state=_relu_split_state(c), full_output=True)
        assert info["status"] == "converged" and info["crossing"] == "real" and info["n_marginal"] == 3
        right = np.stack([m["vector"] for m in info["marginal_modes"] if m["side"] == "right"], axis=1)
        left = np.stack([m["vector"] for m in info["marginal_modes"] if m["side"] == "left"], axis=1)
        family = _labelled(3, 2, R22=1, R32=-1, Q22=2 * c, Q23=1 - 2 * c, Q33=-2 * (1 - c))
        shift = _labelled(3, 2, R21=1, R31=-1, Q12=1, Q13=-1)  # J2 += d B1, J3 -= d B1
        assert right.shape[1] == 3 and _span_distance(right, [family, shift]) <= 1e-6
        # J2 - J3 changes only through g'(x2) - g'(x3), which vanishes here: (J2 - J3).B2, |J2 - J3|^2
        assert _span_distance(left, [_labelled(3, 2, R22=1, R32=-1), _labelled(3, 2, Q22=1, Q23=-2, Q33=1)]) <= 1e-6
        out[c] = (eta_c, info["eta_error"])
    (e1, d1), (e2, d2) = out[0.3], out[0.5]
    assert abs(e1 - e2) <= d1 + d2
    # the value is the root of 2 eta^2 - 9 eta + 6 = 0 (an integer relation found for it, not derived)
    assert abs(e1 - (9 - math.sqrt(33)) / 4) <= 1e-8
    # the flow: from the family member moved slightly into the cone, the error decays below eta_c
    # and grows above it
    v = _relu_split_state(0.3).to_vector()
    xc, _ = _interior_reference(model, v)
    start = State.from_vector(v + 1e-5 * (xc - v), 3, 2)
    eg = {}
    for factor in (0.9, 1.1):
        m = model.replace(eta=factor * e1)
        ds = pk.integrate(m, start, 40.0 / m.eta, n_points=3, rtol=1e-8, atol=1e-13)
        eg[factor] = float(ds.eg.values[-1]) / float(ds.eg.values[0])
    assert eg[0.9] < 1e-2 and eg[1.1] > 1e2
    eo, oinfo = fpm.optimal_eta(model, state=_relu_split_state(0.3), full_output=True)
    assert 0 < eo < e1 and oinfo["status"] == "converged"
