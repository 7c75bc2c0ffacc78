"""The site-symmetric reduced flow against the full flow restricted to the subspace."""

import numpy as np
import pytest

import phasekit as pk
from phasekit.committee.subspaces import (SiteSymmetricCommittee, reduced_from_parameters, sector_projectors,
                                          site_symmetric_basis)

Z = np.array([0.4, 0.1, 0.8, 0.2])


def _entries(model, f):
    """The full flow's (R_11, R_12, Q_11, Q_12[, v_1]) entries."""
    K = model.K
    out = [f[0], f[1], f[K * K], f[K * K + 1]]
    if model.train_second_layer:
        out.append(f[model.n_order])
    return np.array(out)


CASES = [(act, K) for act in ("erf", "relu", "linear") for K in (2, 3, 4, 7, 10)] + [("tanh", 2), ("tanh", 3)]


@pytest.mark.parametrize("act,K", CASES)
@pytest.mark.parametrize("second_order", [False, True])
def test_reduced_flow_equals_full_flow_on_the_subspace(act, K, second_order):
    model = pk.Committee(K, K, act, eta=0.7, second_order=second_order, noise=0.3)
    red = model.restrict("site_symmetric")
    P = site_symmetric_basis(K)
    f = model.rhs_vector(P @ Z)
    fr = red.rhs_vector(Z)
    scale = np.abs(f).max()
    # the entries of units 1 and 2, evaluated by the full flow on the same ordered field tuples
    assert np.abs(fr - _entries(model, f)).max() <= 1e-12 * scale
    if act != "tanh":  # closed forms: the full flow is exactly site-symmetric, so f = P z'
        zf = np.linalg.lstsq(P, f, rcond=None)[0]
        assert np.abs(P @ zf - f).max() <= 1e-12 * scale
        assert np.abs(fr - zf).max() <= 1e-12 * scale
    assert abs(red.eg_vector(Z) - model.eg_vector(P @ Z)) <= 1e-12 * max(1.0, model.eg_vector(P @ Z))


@pytest.mark.parametrize("kw", [
    dict(train_second_layer=True, normalisation="1/K"),
    dict(weight_decay=0.05, normalisation="1/sqrt(K)"),
    dict(teacher_activation="relu"),
    dict(drift=0.1),
    dict(T=0.9 * np.eye(4) + 0.1 * np.ones((4, 4))),
    dict(student_weights=[0.5] * 4, teacher_weights=[1.5] * 4),
])
@pytest.mark.parametrize("act", ["erf", "tanh"])
def test_general_model(kw, act):
    if act == "tanh" and "T" in kw:
        kw = dict(kw, T=kw["T"][:2, :2])
    K = 2 if act == "tanh" else 4
    model = pk.Committee(K, K, act, eta=0.6, noise=0.2, **{k: (v[:K] if isinstance(v, list) else v)
                                                          for k, v in kw.items()})
    red = model.restrict("site_symmetric")
    z = np.r_[Z, [0.6]] if model.train_second_layer else Z
    P = site_symmetric_basis(K, model.train_second_layer)
    f = model.rhs_vector(P @ z)
    assert np.abs(red.rhs_vector(z) - _entries(model, f)).max() <= 1e-12 * np.abs(f).max()
    assert abs(red.eg_vector(z) - model.eg_vector(P @ z)) <= 1e-13
    # batched evaluation agrees with single states
    Zb = np.stack([z, 0.9 * z])
    assert np.abs(red.rhs_vector(Zb)[1] - red.rhs_vector(0.9 * z)).max() <= 1e-14 * np.abs(f).max()


def test_min_eigenvalue_and_validation():
    model = pk.Committee(5, 5, "erf")
    red = model.restrict("site_symmetric")
    P = site_symmetric_basis(5)
    for z in (Z, np.array([0.9, 0.3, 1.0, 0.4]), np.array([0.2, -0.1, 0.5, -0.1])):
        assert red.min_eigenvalue(z) == pytest.approx(model.min_eigenvalue(P @ z), abs=1e-14)
    with pytest.raises(ValueError, match="positive semidefinite"):
        red.validate_state([1.0, 1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="K == M"):
        pk.Committee(3, 2).restrict("site_symmetric")
    with pytest.raises(ValueError, match="subspace"):
        model.restrict("nonsense")
    with pytest.raises(ValueError, match="T = Td I"):
        pk.Committee(2, 2, T=[[1.0, 0.2], [0.2, 0.9]]).restrict("site_symmetric")
    assert np.allclose(red.state_vector(red.embed(Z)), Z)


def test_wide_model_builds_nothing_of_size_K_squared():
    model = pk.Committee(10_000, 10_000, "erf", second_order=True)
    assert model._T is None and "_i4_chunks" not in model.__dict__
    red = model.restrict("site_symmetric")
    assert "_i4_chunks" not in model.__dict__ and model._T is None
    f = red.rhs_vector(np.array([0.01, 0.0, 0.5, 0.0]))
    assert np.all(np.isfinite(f))
    big = pk.Committee(100_000, 100_000, "relu", second_order=True).restrict("site_symmetric")
    assert np.all(np.isfinite(big.rhs_vector(np.array([0.01, 0.0, 0.5, 0.0]))))
    # a small model still builds its tables on first use
    small = pk.Committee(2, 2, "erf")
    assert "_i4_chunks" not in small.__dict__
    small.rhs_vector(small.state_vector(pk.State(0.1 * np.eye(2), np.eye(2))))
    assert "_i4_chunks" in small.__dict__
    assert small.T.shape == (2, 2) and not small.T.flags.writeable


def test_integrate_reduced_matches_full_trajectory():
    model = pk.Committee(3, 3, "erf", eta=0.5, noise=0.1)
    red = model.restrict("site_symmetric")
    z0 = np.array([0.05, 0.01, 0.5, 0.1])
    ds = pk.integrate(red, z0, 50.0, n_points=6)
    full = pk.integrate(model, red.embed(z0), 50.0, n_points=6)
    assert ds.attrs["subspace"] == "site_symmetric" and ds.attrs["status"] == "ok"
    assert set(ds.data_vars) >= {"R", "S", "Q", "C", "eg"}
    np.testing.assert_allclose(ds["R"].values, full["R"].values[:, 0, 0], atol=1e-7)
    np.testing.assert_allclose(ds["S"].values, full["R"].values[:, 0, 1], atol=1e-7)
    np.testing.assert_allclose(ds["C"].values, full["Q"].values[:, 0, 1], atol=1e-7)
    np.testing.assert_allclose(ds["eg"].values, full["eg"].values, atol=1e-7)
    again = pk.model_from_dataset(ds)
    assert isinstance(again, SiteSymmetricCommittee)
    assert again.parameters() == red.parameters()
    np.testing.assert_array_equal(pk.state_at(ds), ds[["R", "S", "Q", "C"]].isel(alpha=-1).to_array().values)
    assert reduced_from_parameters(ds.attrs["model"]).rhs_vector(z0).tolist() == red.rhs_vector(z0).tolist()


@pytest.mark.parametrize("act,K", [("erf", 3), ("relu", 2)])
def test_fixed_points_of_the_reduced_flow(act, K):
    model = pk.Committee(K, K, act, eta=0.5)
    red = model.restrict("site_symmetric")
    plateau = red.symmetric_plateau()
    assert plateau.status == "converged"
    R, S, Q, C = plateau.vector
    assert R == pytest.approx(S, abs=1e-12)
    # the same plateau as the full model's reduced solver, and its escape eigenvalue
    full = pk.symmetric_plateau(model)
    np.testing.assert_allclose([R, Q, C], [full.state.R[0, 0], full.state.Q[0, 0], full.state.Q[0, 1]], atol=1e-9)
    assert plateau.extra["escape_eigenvalue"] == pytest.approx(full.escape_eigenvalue, rel=1e-6)
    perfect = red.perfect_solution()
    assert perfect.kind == "stable" and perfect.jacobian_scheme == "cone"
    P = site_symmetric_basis(K)
    Jfull = pk.jacobian(model, pk.perfect_solution(model).vector).matrix
    Jproj = np.linalg.pinv(P) @ Jfull @ P
    np.testing.assert_allclose(perfect.jacobian, Jproj, atol=1e-7)


def test_sector_projectors_cover_the_state_space():
    for K in (2, 3, 4, 5):
        bases = sector_projectors(K)
        assert sum(b.shape[1] for b in bases.values()) == K * K + K * (K + 1) // 2
        assert bases["trivial"].shape[1] == 4 if K > 1 else 2
        if K >= 4:
            # R ~ V x V and Q ~ Sym^2 V with V = trivial + standard
            dims = {"standard": 5 * (K - 1), "(K-2,2)": 2 * K * (K - 3) // 2, "(K-2,1,1)": (K - 1) * (K - 2) // 2}
            assert {k: b.shape[1] for k, b in bases.items() if k != "trivial"} == dims


def _projected(model, st):
    from phasekit.committee.pencil import EtaStructure

    P = site_symmetric_basis(model.K, model.train_second_layer)
    Pp = np.linalg.pinv(P)
    return EtaStructure(A=Pp @ st.A @ P, B=Pp @ st.B @ P, error=st.error, state=st.state, scheme=st.scheme,
                        residual=st.residual)


@pytest.mark.parametrize("act,K", [("erf", 2), ("erf", 3), ("relu", 2)])
def test_restricted_eta_equals_projection_of_the_full_jacobian(act, K):
    from phasekit.committee.stability import sector_stability

    model = pk.Committee(K, K, act, second_order=True)
    st = pk.eta_structure(model)
    red = model.restrict("site_symmetric")
    # the reduced pencil is the full one projected onto the subspace
    proj = _projected(model, st)
    rst = red.eta_structure()
    tol = 1e-7 * max(1.0, np.abs(st.A).max())
    d = np.array([1.0, K - 1, 1.0, K - 1])  # the reduced structure's balanced coordinates
    np.testing.assert_allclose(rst.A, proj.A * d[:, None] / d[None, :], atol=tol)
    np.testing.assert_allclose(rst.B, proj.B * d[:, None] / d[None, :], atol=tol)
    c_red = pk.critical_eta(model, subspace="site_symmetric")
    assert c_red.value == pytest.approx(pk.critical_eta(model, structure=proj).value, rel=1e-8)
    assert pk.critical_eta(red).value == c_red.value
    o_red = pk.optimal_eta(model, subspace="site_symmetric")
    assert o_red.value == pytest.approx(pk.optimal_eta(model, structure=proj).value, rel=1e-6)
    sec = sector_stability(model)
    assert sec.critical["trivial"].value == pytest.approx(c_red.value, rel=1e-8)
    full = pk.critical_eta(model, structure=st)
    assert full.value == pytest.approx(min(c.value for c in sec.critical.values()), rel=1e-8)
    assert sec.full_critical.value == pytest.approx(full.value, rel=1e-12)
    if act == "relu" and K == 2:
        # the symmetry-breaking (standard) sector makes the full space slower than the subspace
        assert sec.full_optimal.rate < 0.5 * o_red.rate
        assert sec.full_optimal.value > 1.2 * o_red.value


def test_restricted_eta_refuses_bad_subspace():
    model = pk.Committee(2, 2, "erf")
    with pytest.raises(ValueError, match="subspace"):
        pk.critical_eta(model, subspace="nope")
    with pytest.raises(ValueError, match="noise"):
        pk.critical_eta(pk.Committee(2, 2, "erf", noise=0.1), subspace="site_symmetric")


def test_landmarks_accept_reduced_models():
    red = pk.Committee(4, 4, "erf", eta=0.5).restrict("site_symmetric")
    p = pk.symmetric_plateau(red)
    assert p.status == "converged" and p.extra["escape_eigenvalue"] > 0
    perfect = pk.perfect_solution(red)
    np.testing.assert_array_equal(perfect.vector, [1.0, 0.0, 1.0, 0.0])
    again = pk.find_fixed_point(red, p.vector + 1e-4 * np.array([1, 1, 0, 0]))
    assert again.status == "converged"


def test_wide_plateau_starts_inside_the_cone_and_holds_R_equal_S():
    # from K ~ 100 on the default start R = S = 0.01 would be outside the cone; the flow on R = S
    # is unstable across it (the escape), so rounding must not be allowed to break the tie
    red = pk.Committee(1000, 1000, "relu").restrict("site_symmetric").replace(eta=7e-4)
    p = red.symmetric_plateau()
    assert p.status == "converged" and p.vector[0] == p.vector[1]
    assert red.min_eigenvalue(p.vector) > 0 and p.extra["escape_eigenvalue"] > 0


def test_reduced_flow_parts_combine_to_the_reduced_flow():
    from phasekit import Committee

    red = Committee(6, 6, "erf", eta=0.4, noise=0.3, normalisation="1/K", weight_decay=0.01).restrict("site_symmetric")
    z = np.array([0.5, 0.05, 1.0, 0.2])
    parts = red.flow_parts(z)
    np.testing.assert_allclose(parts.combine(), red.rhs_vector(z), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(parts.combine(eta=0.8) - red.replace(eta=0.8).rhs_vector(z), 0.0, atol=1e-14)


@pytest.mark.parametrize("call", [
    lambda m, ds: pk.sector_stability(m),
    lambda m, ds: pk.simulate(m, [1e-3, 0.0, 0.5, 0.0], 50, 10.0),
], ids=["sector_stability", "simulate"])
def test_what_needs_the_full_model_refuses_a_reduced_one_and_says_how_to_get_it(call):
    red = pk.Committee(2, 2, "erf", eta=0.5).restrict("site_symmetric")
    with pytest.raises(ValueError, match=r"needs the full model, but this one is restricted to the 'site_symmetric' "
                                         r"subspace; pass model\.parent"):
        call(red, None)


def test_reduced_datasets_and_batches_are_refused_where_they_do_not_apply():
    from phasekit.committee.batch import CommitteeBatch

    red = pk.Committee(2, 2, "erf", eta=0.5).restrict("site_symmetric")
    with pytest.raises(ValueError, match="not batched"):
        CommitteeBatch([red])
    ds = pk.integrate(red, [1e-3, 0.0, 0.5, 0.0], 1.0, n_points=3)
    with pytest.raises(ValueError, match="no teacher units to relabel"):
        pk.align_teachers(ds)


@pytest.mark.parametrize("train", [False, True])
def test_initial_state_of_a_reduced_model_is_the_full_diagonal_start_in_its_coordinates(train):
    full = pk.Committee(3, 3, "erf", eta=0.5, train_second_layer=train, student_weights=[0.7] * 3)
    red = full.restrict("site_symmetric")
    z = pk.initial_state(red, 1e-3, Q0=0.5)
    np.testing.assert_allclose(z, red.state_vector(pk.initial_state(full, 1e-3, Q0=0.5)), rtol=1e-12, atol=1e-15)
    assert z[0] == 1e-3 and (not train or z[4] == 0.7)
    with pytest.raises(ValueError, match="needs one student norm"):
        pk.initial_state(red, 1e-3, Q0=[0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="diagonal start only"):
        pk.initial_state(red, 1e-3, kind="uniform")
