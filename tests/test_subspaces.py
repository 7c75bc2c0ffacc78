"""The site-symmetric reduced flow against the full flow restricted to the subspace."""

import numpy as np
import pytest

import phasekit as pk
from helpers_mp import mp_erf_plateau, mp_erf_reference
from phasekit.committee.subspaces import (GroupedCommittee, SiteSymmetricCommittee, grouped_basis, reduced_from_parameters,
                                          sector_projectors,
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


GENERAL = [
    dict(train_second_layer=True, normalisation="1/K"),
    dict(weight_decay=0.05, normalisation="1/sqrt(K)"),
    dict(teacher_activation="relu"),
    dict(drift=0.1),
    dict(T=0.9 * np.eye(4) + 0.1 * np.ones((4, 4))),
    dict(student_weights=[0.5] * 4, teacher_weights=[1.5] * 4),
]


@pytest.mark.parametrize("kw", GENERAL)
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
    # erf's closed forms are analytic across the cone's boundary: complex step; ReLU's one-sided limit
    assert perfect.kind == "stable" and perfect.jacobian_scheme == ("complex-step" if act == "erf" else "cone")
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


# --- precision at large K ----------------------------------------------------------------


def _finite_difference_twin(red):
    """The same reduced model with the complex step switched off (the one-sided / central differences)."""
    twin = red.replace()
    twin._complex_step = False
    return twin


@pytest.mark.parametrize("act,K", [("erf", 2), ("erf", 3), ("erf", 5), ("linear", 3)])
def test_complex_step_formulation_equals_the_finite_difference_one_at_small_K(act, K):
    red = pk.Committee(K, K, act, eta=0.3, second_order=True, noise=0.2).restrict("site_symmetric")
    twin = _finite_difference_twin(red)
    assert red._complex_step and not twin._complex_step
    # the flow: the closed forms called directly give the same numbers as through expect_*
    z = np.array([[0.4, 0.1, 0.8, 0.2], [0.7, 0.05, 0.9, 0.1]])
    np.testing.assert_allclose(red.rhs_vector(z), twin.rhs_vector(z), rtol=0, atol=1e-12)
    # the Jacobian, inside the cone (central differences) and at the perfect solution (one-sided)
    for state in (z[0], red.perfect_vector()):
        J, _, scheme = red.jacobian(state)
        Jfd, err, _ = twin.jacobian(state)
        assert scheme == "complex-step"
        tol = max(10 * err, 1e-8 * np.abs(J).max()) if np.isfinite(err) else 1e-8 * np.abs(J).max()
        np.testing.assert_allclose(J, Jfd, rtol=0, atol=tol)
    # (replace builds a fresh model, complex step on again: the twin is made from the noise-free one)
    noiseless = red.replace(noise=0.0)
    ec, ec_fd = pk.critical_eta(noiseless), pk.critical_eta(_finite_difference_twin(noiseless))
    assert ec_fd.structure.scheme == "cone" and ec.structure.scheme == "complex-step"
    assert ec.value == pytest.approx(ec_fd.value, rel=1e-9)


@pytest.mark.parametrize("K", [1000, 10000])
def test_wide_erf_eta_c_against_a_higher_precision_evaluation(K):
    red = pk.Committee(K, K, "erf", second_order=True).restrict("site_symmetric")
    eta_ref, A_ref, B_ref = mp_erf_reference(red)
    st = red.eta_structure()
    d = red._balance()
    scale = d[:, None] / d[None, :]
    assert st.scheme == "complex-step"
    # every entry to its error estimate, and the estimate itself small (rounding, not K^2 eps / h)
    assert np.abs(st.A - A_ref * scale).max() <= st.error <= 1e-12 * np.abs(st.A).max()
    assert np.abs(st.B - B_ref * scale).max() <= st.error_B <= 1e-12 * np.abs(st.B).max()
    ec = pk.critical_eta(red)
    assert ec.status == "ok" and ec.n_marginal == 0
    assert abs(ec.value - eta_ref) <= min(ec.error, 1e-10 * eta_ref)
    # the finite-difference route (the one-sided limit) is two to five orders less precise here
    fd = pk.critical_eta(_finite_difference_twin(red))
    assert abs(fd.value - eta_ref) > 100 * abs(ec.value - eta_ref)


def test_wide_relu_eta_c_has_no_fake_marginal_mode():
    # A and B carry their own errors: B ~ K A at eta ~ 1/K, and B's error used for A once made
    # the smallest eigenvalue of A (-1/2) a "marginal mode" at K = 3000 (K eta_c came out 7.99)
    K = 3000
    ec = pk.critical_eta(pk.Committee(K, K, "relu", second_order=True).restrict("site_symmetric"))
    assert ec.status == "ok" and ec.n_marginal == 0 and ec.crossing == "real"
    # K eta_c = 4 - 4 / K + O(K^-3) (the K-scaling study's law, fitted on 20 <= K <= 200)
    assert abs(K * ec.value - (4.0 - 4.0 / K)) <= max(3 * K * ec.error, 1e-6)
    assert ec.error <= 1e-4 * ec.value


def test_wide_plateau_escape_against_a_higher_precision_fixed_point():
    # the polished Newton step: on a wide plateau the slow mode (eigenvalue ~ eta / K) left the
    # point ~ 1e-8 from the fixed point at residual 1e-12, and the escape eigenvalue off by 3e-6
    K = 10000
    red = pk.Committee(K, K, "erf", second_order=True, eta=1.0882424389221353e-04).restrict("site_symmetric")
    plateau = red.symmetric_plateau()
    assert plateau.status == "converged"
    # Newton on R = S once more at 40 digits from the double point (mpmath), then its Jacobian there
    ref = mp_erf_plateau(red, plateau.vector)
    assert np.abs(plateau.vector - ref[0]).max() <= 1e-13
    # negative: at eta = eta_c / 5 the symmetric plateau is stable inside the subspace for K >~ 300
    assert plateau.extra["escape_eigenvalue"] == pytest.approx(ref[1], rel=1e-8) and ref[1] < 0


# --- groups of students per teacher unit (over-realisable students) ------------------------------------

ZG = np.array([0.4, 0.1, 0.8, 0.3, 0.15])  # (R, S, Q, C1, C2)


def _grouped_entries(model, f):
    """The full flow's entries R_{1,1}, R_{1,2}, Q_{1,1}, Q_{1,2}, Q_{1,g+1} (student 1 in teacher 1's group;
    without S and C2 for M = 1)."""
    K, M = model.K, model.M
    g = K // M
    at = {"R": 0, "S": 1, "Q": K * M, "C1": K * M + 1, "C2": K * M + g, "v": model.n_order}
    labels = ["R", "S", "Q", "C1", "C2"] if M > 1 else ["R", "Q", "C1"]
    return np.array([f[at[k]] for k in labels + (["v"] if model.train_second_layer else [])])


GROUPED_CASES = [(act, g, M) for act in ("erf", "relu", "linear") for g, M in ((2, 2), (3, 2), (2, 3), (4, 1))] \
    + [("tanh", 2, 2), ("tanh", 2, 1)]


@pytest.mark.parametrize("act,g,M", GROUPED_CASES)
@pytest.mark.parametrize("second_order", [False, True])
def test_grouped_flow_equals_full_flow_on_the_subspace(act, g, M, second_order):
    K = g * M
    model = pk.Committee(K, M, act, eta=0.7, second_order=second_order, noise=0.3)
    red = model.restrict("grouped")
    assert isinstance(red, GroupedCommittee) and red.g == g
    assert red.labels == (["R", "S", "Q", "C1", "C2"] if M > 1 else ["R", "Q", "C1"])
    z = ZG if M > 1 else ZG[[0, 2, 3]]
    P = red.basis()
    if M > 1:
        assert np.array_equal(P, grouped_basis(M, g))
    f = model.rhs_vector(P @ z)
    fr = red.rhs_vector(z)
    scale = np.abs(f).max()
    assert np.abs(fr - _grouped_entries(model, f)).max() <= 1e-12 * scale
    if act != "tanh":  # closed forms: the full flow stays in the subspace, f = P z'
        zf = np.linalg.lstsq(P, f, rcond=None)[0]
        assert np.abs(P @ zf - f).max() <= 1e-12 * scale
        assert np.abs(fr - zf).max() <= 1e-12 * scale
    assert abs(red.eg_vector(z) - model.eg_vector(P @ z)) <= 1e-12 * max(1.0, model.eg_vector(P @ z))
    assert red.min_eigenvalue(z) == pytest.approx(model.min_eigenvalue(P @ z), abs=1e-14)


@pytest.mark.parametrize("kw", GENERAL)
def test_grouped_general_model(kw):
    sizes = {"T": 2, "student_weights": 6, "teacher_weights": 2}  # K = 6 students, M = 2 teacher units
    kw = {k: (v if k not in sizes else v[:2, :2] if k == "T" else [v[0]] * sizes[k]) for k, v in kw.items()}
    model = pk.Committee(6, 2, "erf", eta=0.6, noise=0.2, **kw)
    red = model.restrict("grouped")
    z = np.r_[ZG, [0.6]] if model.train_second_layer else ZG
    P = grouped_basis(2, 3, model.train_second_layer)
    f = model.rhs_vector(P @ z)
    assert np.abs(red.rhs_vector(z) - _grouped_entries(model, f)).max() <= 1e-12 * np.abs(f).max()
    assert abs(red.eg_vector(z) - model.eg_vector(P @ z)) <= 1e-13
    assert np.abs(red.basis() - P).max() == 0 and red.state_vector(red.embed(z)) == pytest.approx(z, abs=1e-15)


@pytest.mark.parametrize("act", ["erf", "relu"])
@pytest.mark.parametrize("second_order", [False, True])
def test_identical_students_in_a_group_stay_identical(act, second_order):
    """On C1 = Q (the students of a group identical) the flow keeps C1 = Q, and is that of one student per
    teacher unit with weight g v at learning rate eta / g (site-symmetric, C = C2): each student's gradient
    carries its own weight v, the error the group's g v."""
    g, M, eta, v = 3, 2, 0.6, 0.4
    kw = dict(second_order=second_order, noise=0.2)
    model = pk.Committee(g * M, M, act, eta=eta, student_weights=[v] * (g * M), **kw)
    red = model.restrict("grouped")
    one = pk.Committee(M, M, act, eta=eta / g, student_weights=[g * v] * M, **kw).restrict("site_symmetric")
    for z in ([0.4, 0.1, 0.8, 0.8, 0.15], [0.05, 0.02, 0.5, 0.5, 0.01]):
        z = np.array(z)
        f = red.rhs_vector(z)
        assert abs(f[3] - f[2]) <= 1e-14 * np.abs(f).max()
        np.testing.assert_allclose(f[[0, 1, 2, 4]], one.rhs_vector(z[[0, 1, 2, 4]]), rtol=1e-12, atol=1e-15)
        # off it, the difference Q - C1 moves (the check above can fail)
        assert abs(np.subtract(*red.rhs_vector(z - [0, 0, 0, 1e-2, 0])[[2, 3]])) > 1e-5
    if act == "relu" and second_order:
        # ReLU's eta^2 term moves Q - C1 like sqrt(Q - C1) at the boundary C1 = Q of the cone: the identical
        # students are a solution, but not the only one, and an integrator's rounding leaves it
        return
    ds = pk.integrate(red, [0.4, 0.1, 0.8, 0.8, 0.15], 20.0, n_points=5)
    assert ds.attrs["status"] == "ok"
    np.testing.assert_allclose(ds["C1"].values, ds["Q"].values, rtol=0, atol=1e-9)
    assert abs(float(ds["Q"][-1]) - 0.8) > 1e-3  # it moved


def test_grouped_refusals_and_datasets():
    with pytest.raises(ValueError, match=r"K: the grouped subspace needs K = g M .* M = 2 above it, got K = 5"):
        pk.Committee(5, 2).restrict("grouped")
    with pytest.raises(ValueError, match="for K = M use 'site_symmetric'"):
        pk.Committee(3, 3).restrict("grouped")
    with pytest.raises(ValueError, match="equal teacher weights"):
        pk.Committee(4, 2, teacher_weights=[1.0, 2.0]).restrict("grouped")
    model = pk.Committee(4, 2, "erf", eta=0.5, noise=0.1)
    red = model.restrict("grouped")
    z0 = np.array([0.05, 0.01, 0.5, 0.1, 0.02])
    ds = pk.integrate(red, z0, 30.0, n_points=5)
    full = pk.integrate(model, red.embed(z0), 30.0, n_points=5)
    assert ds.attrs["subspace"] == "grouped" and set(ds.data_vars) >= {"R", "S", "Q", "C1", "C2", "eg"}
    for var, (name, i, k) in {"R": ("R", 0, 0), "S": ("R", 0, 1), "Q": ("Q", 0, 0), "C1": ("Q", 0, 1),
                              "C2": ("Q", 0, 2)}.items():
        np.testing.assert_allclose(ds[var].values, full[name].values[:, i, k], atol=1e-7, err_msg=var)
    np.testing.assert_allclose(ds["eg"].values, full["eg"].values, atol=1e-7)
    again = pk.model_from_dataset(ds)
    assert isinstance(again, GroupedCommittee) and again.parameters() == red.parameters()
    np.testing.assert_array_equal(pk.state_at(ds), ds[["R", "S", "Q", "C1", "C2"]].isel(alpha=-1).to_array().values)
    assert red.replace(M=3).K == 6 and red.replace(K=8).M == 4


@pytest.mark.parametrize("act", ["erf", "relu"])
def test_grouped_stability_equals_projection_of_the_full_jacobian(act):
    """K = 4, M = 2 with the 1/K normalisation (g v = w: the perfect solution is exact): the restricted eta_c
    and eta_opt equal those of the full pencil projected onto the grouped subspace."""
    model = pk.Committee(4, 2, act, second_order=True, normalisation="1/K")
    red = model.restrict("grouped")
    perfect = red.perfect_solution()
    # erf's closed forms are analytic: complex-step Jacobians; ReLU's one-sided limit into the cone
    assert perfect.residual <= 1e-14 and perfect.jacobian_scheme == ("complex-step" if act == "erf" else "cone")
    np.testing.assert_allclose(perfect.vector, [1.0, 0.0, 1.0, 1.0, 0.0])
    st = pk.eta_structure(model, red.embed(perfect.vector))  # the full pencil at the grouped perfect solution
    from phasekit.committee.pencil import EtaStructure

    P = grouped_basis(2, 2)
    Pp = np.linalg.pinv(P)
    proj = EtaStructure(A=Pp @ st.A @ P, B=Pp @ st.B @ P, error=st.error, state=st.state, scheme=st.scheme,
                        residual=st.residual)
    c_red = pk.critical_eta(model, subspace="grouped")
    assert 0 < c_red.value < np.inf
    assert c_red.value == pytest.approx(pk.critical_eta(model, structure=proj).value, rel=1e-8)
    assert pk.critical_eta(red).value == c_red.value
    o_red = pk.optimal_eta(model, subspace="grouped")
    assert o_red.value == pytest.approx(pk.optimal_eta(model, structure=proj).value, rel=1e-6)
    plateau = red.symmetric_plateau()
    assert plateau.status == "converged"
    R, S, Q, C1, C2 = plateau.vector
    assert (R, C1) == pytest.approx((S, C2), abs=1e-12)


# --- units 1 and 2 distinguished: the subspace that meets every sector -----------------------------------

def _pair_state(red, rng):
    z = 0.5 * red.perfect_vector() + 0.05 * rng.standard_normal(red.n_state)
    z[:len(red._is_q)][red._same_unit & red._is_q] = 0.9
    return z


@pytest.mark.parametrize("act,K", [(a, K) for a in ("erf", "relu", "linear") for K in (2, 3, 4, 6)] + [("tanh", 3)])
@pytest.mark.parametrize("second_order", [False, True])
def test_pair_flow_equals_full_flow_on_the_subspace(act, K, second_order):
    model = pk.Committee(K, K, act, eta=0.7, second_order=second_order, noise=0.3)
    red = model.restrict("pair")
    assert red.n_state == {2: 7, 3: 15}.get(K, 17)
    P = red.basis()
    z = _pair_state(red, np.random.default_rng(K))
    f = model.rhs_vector(P @ z)
    zf = np.linalg.lstsq(P, f, rcond=None)[0]
    scale = np.abs(f).max()
    assert np.abs(P @ zf - f).max() <= 1e-12 * scale  # the full flow stays in the subspace
    assert np.abs(red.rhs_vector(z) - zf).max() <= 1e-12 * scale
    assert abs(red.eg_vector(z) - model.eg_vector(P @ z)) <= 1e-13
    assert red.min_eigenvalue(z) == pytest.approx(model.min_eigenvalue(P @ z), abs=1e-13)


@pytest.mark.parametrize("K", [2, 3, 4, 5])
def test_pair_sector_operators_are_the_full_ones(K):
    """The class sum of transpositions and the swap (1 2), built on the reduced coordinates, are the full
    permutation operators restricted (P C = Csum P), with a trained second layer too."""
    from phasekit.committee.subspaces import transposition_class_sum
    from phasekit.committee.symmetry import _coordinate_permutation

    model = pk.Committee(K, K, "erf", eta=0.7, noise=0.3, train_second_layer=True, normalisation="1/K")
    red = model.restrict("pair")
    P = red.basis()
    z = _pair_state(red, np.random.default_rng(0))
    f = model.rhs_vector(P @ z)
    assert np.abs(red.rhs_vector(z) - np.linalg.lstsq(P, f, rcond=None)[0]).max() <= 1e-12 * np.abs(f).max()
    C, swap = red.sector_operators()
    assert np.abs(transposition_class_sum(K, True) @ P - P @ C).max() == 0
    sigma = [1, 0] + list(range(2, K))
    pi = _coordinate_permutation(K, K, sigma, sigma, True)
    Pm = np.zeros((len(pi), len(pi)))
    Pm[pi, np.arange(len(pi))] = 1.0
    assert np.abs(Pm @ P - P @ swap).max() == 0


@pytest.mark.parametrize("act,K", [("erf", 4), ("relu", 3)])
def test_sector_stability_from_the_pair_subspace_equals_the_full_one(act, K):
    """Every sector's eta_c and eta_opt, and the full space's, from the 17-coordinate pair flow equal those of
    the full Jacobian projected onto the isotypic components (within their error estimates, ~1e-9 here)."""
    from phasekit.committee.stability import sector_stability

    model = pk.Committee(K, K, act, second_order=True)
    full = sector_stability(model, method="full")
    pair = sector_stability(model, method="pair")
    assert pair.method == "pair" and full.method == "full"
    assert pair.dimensions == full.dimensions and pair.limiting == full.limiting
    assert pair.full_critical.value == pytest.approx(full.full_critical.value, rel=1e-9)
    assert pair.full_optimal.value == pytest.approx(full.full_optimal.value, rel=1e-9)
    for name, c in full.critical.items():
        if np.isfinite(c.value):
            assert pair.critical[name].value == pytest.approx(c.value, rel=1e-9, abs=3 * c.error), name
            o = full.optimal[name]
            assert pair.optimal[name].value == pytest.approx(o.value, rel=1e-9, abs=3 * o.error), name
        else:
            assert not np.isfinite(pair.critical[name].value)


def test_sector_stability_at_large_K():
    """K = 1000 (the full Jacobian would have 1.5e6 rows): the trivial sector is the site-symmetric subspace's
    eta_c, the full space's is the smallest over the sectors, K eta_c near pi sqrt 3 (its large-K limit)."""
    from phasekit.committee.stability import sector_stability

    model = pk.Committee(1000, 1000, "erf", second_order=True)
    sec = sector_stability(model)
    assert sec.method == "pair" and set(sec.critical) == {"trivial", "standard", "(K-2,2)", "(K-2,1,1)"}
    assert sec.dimensions["standard"] == 5 * 999 and sec.dimensions["(K-2,1,1)"] == 999 * 998 // 2
    # at K = 1e3 the finite-difference Jacobians carry errors ~1e-9 K^2 (relative): compare within the estimates
    triv, ss = sec.critical["trivial"], pk.critical_eta(model, subspace="site_symmetric")
    assert triv.value == pytest.approx(ss.value, abs=3 * (triv.error + ss.error))
    assert triv.error < 1e-4 * triv.value and sec.full_critical.error < 1e-3 * sec.full_critical.value
    assert sec.full_critical.value == pytest.approx(min(c.value for c in sec.critical.values()),
                                                    abs=3 * sec.full_critical.error)
    assert 1000 * sec.full_critical.value == pytest.approx(np.pi * np.sqrt(3), rel=1e-3)
    opt = sec.full_optimal
    assert 0 < opt.value < sec.full_critical.value
    # the whole space decays at the slowest sector's rate (within the rate's error estimate, large at K = 1e3)
    rates = [o.structure.decay_rate(opt.value) for o in sec.optimal.values() if o.structure is not None]
    assert abs(opt.rate - min(rates)) <= 3 * opt.rate_error


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
