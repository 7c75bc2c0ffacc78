"""phasekit.committee.linearisation: CommitteeFixedPoint and linearise.

Independent routes: the published ReLU perceptron spectrum, null spaces of
``J - lambda I`` from an SVD, and integration of the flow (growth of a
perturbation along the escape eigenvector of a plateau).
"""

import numpy as np
import pytest
import xarray as xr

import phasekit as pk
import phasekit.committee as pc
from phasekit.committee.model import Committee, State
from phasekit.core import spectrum as spm
from phasekit.core.results import status_names


@pytest.mark.parametrize("eta", [0.5, 1.5])
def test_relu_perceptron_spectrum(eta):
    fp = pc.perfect_solution(Committee(1, 1, "relu", eta=eta, second_order=True))
    exact = {-eta / 2: [0.5, 1.0], eta**2 / 2 - eta: [0.0, 1.0]}
    assert fp.label == "perfect" and fp.residual == 0.0
    assert np.abs(np.asarray(fp.eigenvalues) - sorted(exact, reverse=True)).max() < 1e-9
    for lam, vec in exact.items():
        j = int(np.argmin(np.abs(np.asarray(fp.eigenvalues) - lam)))
        u = np.asarray(vec) / np.linalg.norm(vec)
        assert abs(abs(fp.eigenvectors[:, j] @ u) - 1.0) < 1e-8
    assert fp.stable and fp.kind == "stable" and fp.n_unstable == 0
    assert fp.status == "ok" and fp.message == "exact fixed point R = Q = T"  # an exact root, no iteration


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_perfect_solution_eigenvectors_are_unit_and_span_each_eigenspace(eta):
    """Erf K = M = 3: the permutation symmetry makes eigenvalues 2- and 3-fold; each
    eigenspace must be spanned by real unit columns (compared with the null space of
    J - lambda I from an SVD, an independent route)."""
    fp = pc.perfect_solution(Committee(3, 3, "erf", eta=eta, second_order=True))
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
    fp = pc.perfect_solution(Committee(1, 1, "relu", eta=0.5))
    assert fp.status == "failed" and not fp.success and fp.kind == "unclassified" and not fp.stable
    assert "linearisation failed" in fp.message and np.all(np.isnan(fp.eigenvalues))


def test_escape_eigenvalue_predicts_growth_along_the_flow():
    """Displace the ReLU plateau along its escape vector; the flow separates at rate lambda_esc."""
    model = Committee(2, 2, "relu", eta=1.0, second_order=False)
    fp = pc.symmetric_plateau(model)
    u = fp.escape_vector
    eps = 1e-9
    ds = pk.integrate(model, State.from_vector(fp.vector + eps * u, 2, 2), 45.0, n_points=46,
                      solver={"rtol": 1e-12, "atol": 1e-15})
    R = ds.R.values.reshape(len(ds.alpha), -1)
    proj = (R - fp.state.R.reshape(-1)) @ u[:4]
    a = ds.alpha.values
    sel = (a >= 15) & (a <= 45)
    slope = np.polyfit(a[sel], np.log(np.abs(proj[sel])), 1)[0]
    assert abs(slope - fp.escape_eigenvalue) < 2e-4


def test_to_dataset_round_trips_through_netcdf(tmp_path):
    model = Committee(2, 2, "relu", eta=1.0, second_order=False)
    fp = pc.symmetric_plateau(model)
    ds = fp.to_dataset()
    for name in list(ds.data_vars) + list(ds.coords):
        assert "long_name" in ds[name].attrs and "units" in ds[name].attrs
    path = tmp_path / "plateau.nc"
    ds.to_netcdf(path, engine="scipy")
    back = xr.open_dataset(path, engine="scipy")
    assert np.allclose(back.eigenvalue_real.values, np.real(fp.eigenvalues))
    assert back.attrs["label"] == "symmetric_plateau" and back.attrs["kind"] == "saddle"
    # the status is a CF flag variable of the one vocabulary
    status = back["status"]
    assert status.attrs["flag_meanings"].split() == list(pk.STATUS)
    assert status_names(np.atleast_1d(status.values.astype(int)))[0] == "converged"
    assert list(back.component.values) == ["R11", "R12", "R21", "R22", "Q11", "Q12", "Q22"]
    assert np.allclose(back.state.values, fp.vector) and float(back.escape_eigenvalue) == fp.escape_eigenvalue
    back.close()


def test_fixed_point_result_separates_status_from_stability():
    model = Committee(2, 2, "relu", eta=1.0, second_order=False)
    fp = pc.symmetric_plateau(model)
    assert isinstance(fp, pk.CommitteeFixedPoint) and isinstance(fp, pk.FixedPoint) and isinstance(fp, pk.Result)
    assert fp.status == "converged" and fp.success and fp.message == "converged"
    assert fp.kind == "saddle" and fp.n_unstable == 1 and not fp.stable
    assert fp.labels == tuple(pc.vector_labels(2, 2)) and fp.jacobian_scheme in ("central", "cone")
    assert isinstance(fp.state, State) and np.array_equal(fp.state.to_vector(), fp.vector)
    assert fp.extra["jacobian"].scheme == fp.jacobian_scheme and fp.extra["jacobian"].success
    # linearise at any state: the status says it was linearised, the residual how far from a fixed point
    away = pc.linearise(model, fp.vector + 1e-2 * np.array([0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0]))
    assert away.status == "ok" and away.residual > 1e-5 and away.kind in pk.core.results.KINDS
    # a failed search is unclassified whatever its spectrum
    failed = pc.linearise(model, fp.vector, status="failed", message="gave up")
    assert failed.kind == "unclassified" and not failed.success and failed.message == "gave up"
    with pytest.raises(ValueError, match="label: must be one of"):
        pc.linearise(model, fp.vector, label="saddle")
    with pytest.raises(ValueError, match="status: must be one of"):
        pc.linearise(model, fp.vector, status="not_converged")
    with pytest.raises(ValueError, match="scheme"):
        pc.linearise(model, fp.vector, scheme="forward")
