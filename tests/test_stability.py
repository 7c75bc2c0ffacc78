"""phasekit.committee.stability: the critical and optimal learning rates (CriticalEta, OptimalEta).

Independent routes: the published ReLU perceptron (eta_c = 2, eta_opt = 1),
integration of the flow (decay below and growth above eta_c), synthetic
pencils with known answers, and the erf flow written out from Saad and
Solla's closed forms, differentiated and diagonalised with mpmath (eta_c,
eta_opt and marginal families).
"""

import math

import numpy as np
import pytest
from scipy import optimize

import phasekit as pk
import phasekit.committee as pc
from helpers_committee import (A_PERCEPTRON, B_PERCEPTRON, mp_pencil, mp_secant, perfect_vector)
from phasekit.committee.cone import _interior_reference
from phasekit.committee.landmarks import perfect_solution
from phasekit.committee.model import Committee, State, vector_labels
from phasekit.committee.stability import critical_eta


@pytest.fixture(scope="module")
def perceptron_structure():
    return pc.eta_structure(Committee(1, 1, "relu", eta=1.0, second_order=True))


def _synthetic(A, B):
    A, B = np.asarray(A, float), np.asarray(B, float)
    return pc.EtaStructure(A, B, 1e-14, State([[1.0]], [[1.0]]), "synthetic")


# --- ReLU perceptron: eta_c = 2, eta_opt = 1 --------------------------------------------------


def test_relu_perceptron_critical_eta_is_two(perceptron_structure):
    model = Committee(1, 1, "relu", eta=0.3, second_order=True)
    res = pc.critical_eta(model, structure=perceptron_structure)
    eta_c = res.value
    assert abs(eta_c - 2.0) < 1e-9
    lo, hi = res.bracket
    assert lo <= eta_c <= hi and hi - lo <= 1e-9
    assert res.crossing == "real"
    # computed from scratch (no shared structure) it agrees too, and float() gives the value
    assert abs(float(pc.critical_eta(model)) - 2.0) < 1e-9


def test_relu_perceptron_optimal_eta(perceptron_structure):
    # decay rate min(eta/2, eta - eta^2/2) is largest at eta = 1 (rate 1/2), a kink
    model = Committee(1, 1, "relu", eta=1.0)
    res = pc.optimal_eta(model, structure=perceptron_structure)
    assert abs(res.value - 1.0) < 1e-8
    assert abs(res.rate - 0.5) < 1e-9
    assert res.kink


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
    structure = pc.EtaStructure(A, B, 2e-11, State([[1.0]], [[1.0]]), "synthetic")
    res = pc.optimal_eta(Committee(1, 1, "relu", eta=1.0), structure=structure)
    assert res.kink and res.kink_type == "crossing"
    assert abs(res.value - 1.0) < 1e-8 and abs(res.value - 1.0) <= res.error
    assert abs(res.rate - 0.5) < 1e-9


def test_erf_perceptron_critical_eta_separates_decay_from_growth():
    """Around the perfect solution the flow decays below eta_c and grows above it."""
    model = Committee(1, 1, "erf", eta=1.0, second_order=True)
    eta_c = float(pc.critical_eta(model))
    assert 1.0 < eta_c < 10.0
    start = State([[1.0]], [[1.0 + 1e-6]])
    dev = {}
    for factor in (0.9, 1.1):
        m = model.replace(eta=factor * eta_c)
        ds = pk.integrate(m, start, 200.0 / m.eta, n_points=3, solver={"rtol": 1e-11, "atol": 1e-16})
        dev[factor] = abs(float(ds.Q.values[-1, 0, 0]) - 1.0) + abs(float(ds.R.values[-1, 0, 0]) - 1.0)
    assert dev[0.9] < 1e-8 < 1e-5 < dev[1.1]


# --- result types ------------------------------------------------------------------------------


def test_critical_and_optimal_eta_results(perceptron_structure):
    model = Committee(1, 1, "relu", eta=1.0)
    crit = pc.critical_eta(model, structure=perceptron_structure)
    assert isinstance(crit, pc.CriticalEta) and isinstance(crit, pk.Result)
    assert crit.status == "ok" and crit.success and crit.message == "converged"
    assert float(crit) == crit.value and crit.marginal_modes == () and crit.n_marginal == 0
    assert crit.precision == pytest.approx(0.5 * (crit.bracket[1] - crit.bracket[0]))
    assert crit.error > 0 and crit.unresolved is None and crit.eta_max == 1e3
    assert crit.structure is perceptron_structure
    opt = pc.optimal_eta(model, structure=perceptron_structure)
    assert isinstance(opt, pc.OptimalEta) and opt.status == "ok" and opt.success
    assert float(opt) == opt.value and opt.critical.value == crit.value
    lo, hi = opt.bracket
    assert lo < opt.value < hi and 0 < opt.precision < 1e-12
    assert any(kind == "crossing" for _, _, kind in opt.candidates)
    with pytest.raises(AttributeError):
        crit.value = 1.0  # results are frozen


def test_xtol_is_the_relative_tolerance_of_the_root(perceptron_structure):
    """A loose xtol leaves a wider bracket and a less accurate root (the parameter reaches Brent)."""
    model = Committee(1, 1, "relu", eta=1.0)
    tight = pc.critical_eta(model, structure=_synthetic(np.diag([-1.0, -3.0]), np.diag([0.37, 0.1])))
    loose = pc.critical_eta(model, structure=_synthetic(np.diag([-1.0, -3.0]), np.diag([0.37, 0.1])), xtol=1e-3)
    exact = 1.0 / 0.37
    assert abs(tight.value - exact) <= 1e-12 * exact
    assert tight.precision < 1e-9 * exact < loose.precision <= 1e-2 * exact
    for bad in (0.0, 1.0, -1e-3, True):
        with pytest.raises(ValueError, match=r"xtol: relative tolerance must be in \(0, 1\)"):
            pc.critical_eta(model, structure=perceptron_structure, xtol=bad)
        with pytest.raises(ValueError, match="xtol"):
            pc.optimal_eta(model, structure=perceptron_structure, xtol=bad)


# --- eta structure: statuses on synthetic pencils ----------------------------------------------------


def test_critical_eta_statuses_on_synthetic_pencils():
    model = Committee(1, 1, "relu", eta=1.0)
    res = pc.critical_eta(model, structure=_synthetic(np.zeros((2, 2)), np.zeros((2, 2))))
    assert np.isnan(res.value) and res.status == "marginal" and res.n_marginal == 2 and res.crossing is None
    res = pc.critical_eta(model, structure=_synthetic(-np.eye(2), np.zeros((2, 2))))
    assert res.value == math.inf and res.status == "not_reached" and res.success
    assert float(res) == math.inf and res.message == "stable up to eta_max = 1000"
    res = pc.critical_eta(model, structure=_synthetic(np.diag([0.1, -1.0]), np.eye(2)))
    assert res.value == 0.0 and res.status == "not_reached" and res.bracket == (0.0, 1e-3)
    assert "unstable already" in res.message
    # a marginal mode next to a crossing at eta = 2: excluded, named, and the crossing found
    A, B = np.diag([0.0, -1.0, -3.0]), np.diag([0.0, 0.5, 0.1])
    res = pc.critical_eta(model, structure=_synthetic(A, B))
    assert abs(res.value - 2.0) <= 1e-12 and res.status == "marginal" and res.n_marginal == 1 and res.success
    assert [m.side for m in res.marginal_modes] == ["right", "left"]
    assert all(m.components == ("R11",) for m in res.marginal_modes)
    assert "excluded" in res.message
    # a leading eigenvalue within its error band of zero at every eta: no figure
    res = pc.critical_eta(model, structure=pc.EtaStructure(np.diag([0.0, -1.0]), np.diag([0.02, 0.0]), 1e-4,
                                                            State([[1.0]], [[1.0]]), "synthetic"))
    assert res.status == "failed" and not res.success and np.isnan(res.value)
    opt = pc.optimal_eta(model, structure=_synthetic(-np.eye(2), np.zeros((2, 2))))
    assert opt.status == "not_reached" and np.isnan(opt.value) and "undefined" in opt.message


def test_optimal_eta_at_a_coalescence():
    """J / eta = [[-1 + eta/4, 1], [0.6 - eta/5, -1 + eta/4]]: eigenvalues -1 + eta/4 +- sqrt(0.6 - eta/5),
    real below eta = 3, a complex pair above (eta_c = 4).  The decay rate
    -eta Re lambda_max rises steeply to 3/4 at the coalescence and falls after."""
    A = np.array([[-1.0, 1.0], [0.6, -1.0]])
    B = np.array([[0.25, 0.0], [-0.2, 0.25]])
    model = Committee(1, 1, "relu", eta=1.0)
    crit = pc.critical_eta(model, structure=_synthetic(A, B))
    assert abs(crit.value - 4.0) <= 1e-12 and crit.crossing == "complex"
    opt = pc.optimal_eta(model, structure=_synthetic(A, B))
    assert abs(opt.value - 3.0) <= 1e-12 and abs(opt.rate - 0.75) <= 1e-12
    assert opt.kink and opt.kink_type == "coalescence"


def test_critical_eta_rejects_a_state_that_moves_with_eta():
    model = Committee(2, 2, "relu", eta=1.0, second_order=False)
    plateau = pc.symmetric_plateau(model)
    with pytest.raises(ValueError, match="state: not a fixed point for every eta"):
        pc.critical_eta(model.replace(second_order=True), state=plateau)


def test_critical_eta_rejects_noise_and_bad_eta_max():
    with pytest.raises(ValueError, match="noise"):
        pc.critical_eta(Committee(1, 1, "erf", noise=0.1))
    with pytest.raises(ValueError, match="eta_max: must be > 1e-3"):
        pc.critical_eta(Committee(1, 1, "erf"), eta_max=1e-4)


# --- against mpmath ----------------------------------------------------------------------------------


def test_erf_perceptron_eta_c_and_eta_opt_against_mpmath():
    """K = M = 1: A, B from the closed forms at 50 digits.  The discriminant of the 2 x 2
    pencil, (a11 - a22 - eta b22)^2 + 4 a12 (a21 + eta b21), is a perfect square: the two
    real branches cross (at a defective Jacobian) at its double root, where the decay rate peaks."""
    import mpmath as mp
    with mp.workdps(50):
        A, B = mp_pencil(mp, perfect_vector(mp, 1), 1, 1)
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
    st_ = pc.eta_structure(model)
    err = max(np.abs(st_.A - A_f).max(), np.abs(st_.B - B_f).max())
    assert err <= 10 * st_.error
    opt = pc.optimal_eta(model, structure=st_)
    crit = pc.critical_eta(model, structure=st_)
    eo, ec = opt.value, crit.value
    print(f"\nerf perceptron: eta_opt {eo!r} (mpmath {eta_opt!r}), rate {opt.rate!r} ({rate_opt!r}), "
          f"eta_c {ec!r} ({eta_c!r})")
    assert abs(eo - eta_opt) <= 1e-9 * eta_opt and abs(eo - eta_opt) <= opt.error
    assert abs(opt.rate - rate_opt) <= 1e-9 * rate_opt
    assert opt.kink and opt.kink_type == "crossing"
    assert abs(ec - eta_c) <= 1e-9 * eta_c and abs(ec - eta_c) <= crit.error
    assert crit.status == "ok" and crit.marginal_modes == ()


@pytest.mark.parametrize("K", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_erf_committee_eta_opt_at_a_crossing_against_mpmath(K):
    """Erf K = M: the optimum is where a K-fold eta-independent eigenvalue (a common
    eigenvector of A and B) meets a moving branch in a Jordan block.  In mpmath (A, B
    to ~20 digits) the moving branch is the sum of (z - a_c) over the eigenvalues near
    the constant one a_c: well conditioned at the crossing, found by the secant method."""
    import mpmath as mp
    model = Committee(K, K, "erf", eta=1.0, second_order=True)
    opt = pc.optimal_eta(model)
    eo, ec = opt.value, opt.critical.value
    with mp.workdps(30):
        A, B = mp_pencil(mp, perfect_vector(mp, K), K, K)

        def spec(e):
            return mp.eig(A + B * e, left=False, right=False)

        lam = -opt.rate / eo
        cluster = [z for z in spec(mp.mpf(eo) * mp.mpf("0.9")) if abs(z - lam) < 1e-3]
        assert len(cluster) == K
        a_c = mp.re(sum(cluster) / K)

        def moving(e):
            return mp.re(sum(z - a_c for z in spec(e) if abs(z - a_c) < 1e-6))

        eta_opt = mp_secant(mp, moving, mp.mpf(eo) * (1 - mp.mpf(1e-7)), mp.mpf(eo) * (1 + mp.mpf(1e-7)), 1e-18)

        def rate(e):
            return -e * max(mp.re(z) for z in spec(e))

        peak = rate(eta_opt)
        assert rate(eta_opt * (1 - mp.mpf(1e-4))) < peak and rate(eta_opt * (1 + mp.mpf(1e-4))) < peak
        eta_c = mp_secant(mp, lambda e: max(mp.re(z) for z in spec(e)), mp.mpf(ec) * (1 - mp.mpf(1e-6)),
                          mp.mpf(ec) * (1 + mp.mpf(1e-6)), 1e-18)
        eta_opt, peak, eta_c = float(eta_opt), float(peak), float(eta_c)
    print(f"\nerf K = M = {K}: eta_opt {eo!r} (mpmath {eta_opt!r}), eta_c {ec!r} (mpmath {eta_c!r})")
    assert abs(eo - eta_opt) <= 1e-9 * eta_opt and abs(eo - eta_opt) <= opt.error
    assert abs(opt.rate - peak) <= 1e-9 * peak
    assert opt.kink and opt.kink_type == "crossing"
    assert abs(ec - eta_c) <= 1e-9 * eta_c and abs(ec - eta_c) <= opt.critical.error


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
    res = pc.critical_eta(model, state=state)
    eta_c = res.value
    tangents = [_labelled(K, M, R31=1, R41=-1, Q13=1, Q14=-1), _labelled(K, M, R32=1, R42=-1, Q23=1, Q24=-1),
                _labelled(K, M, Q33=1, Q44=1, Q34=-1)]
    assert res.status == "marginal" and res.n_marginal == 3
    right = [m for m in res.marginal_modes if m.side == "right"]
    assert len(right) == 3
    assert _span_distance(np.stack([m.vector for m in right], axis=1), tangents) <= 1e-7
    assert sorted(sorted(m.components) for m in right) == sorted(
        [sorted(["R31", "R41", "Q13", "Q14"]), sorted(["R32", "R42", "Q23", "Q24"]), sorted(["Q33", "Q34", "Q44"])])
    assert "R31" in res.message and "excluded" in res.message
    with mp.workdps(30):
        v = [mp.mpf(x) for x in state.to_vector()]
        v[vector_labels(K, M).index("Q33")] = v[vector_labels(K, M).index("Q44")] = mp.mpf(1) / 2
        v[vector_labels(K, M).index("Q34")] = -mp.mpf(1) / 2
        A, B = mp_pencil(mp, v, K, M)
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

        ref = mp_secant(mp, lead, mp.mpf(eta_c) * (1 - mp.mpf(1e-6)), mp.mpf(eta_c) * (1 + mp.mpf(1e-6)), 1e-18)
        ref = float(ref)
    print(f"\nerf K = 4, M = 2 antiparallel pair: eta_c {eta_c!r} (mpmath {ref!r})")
    assert abs(eta_c - ref) <= 1e-9 * ref and abs(eta_c - ref) <= res.error
    opt = pc.optimal_eta(model, state=state)
    assert 0 < opt.value < eta_c and opt.rate > 0 and len(opt.marginal_modes) == len(res.marginal_modes)
    assert opt.status == "marginal"


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
        res = pc.critical_eta(model, state=_relu_split_state(c))
        assert res.status == "marginal" and res.crossing == "real" and res.n_marginal == 3
        right = np.stack([m.vector for m in res.marginal_modes if m.side == "right"], axis=1)
        left = np.stack([m.vector for m in res.marginal_modes if m.side == "left"], axis=1)
        family = _labelled(3, 2, R22=1, R32=-1, Q22=2 * c, Q23=1 - 2 * c, Q33=-2 * (1 - c))
        shift = _labelled(3, 2, R21=1, R31=-1, Q12=1, Q13=-1)  # J2 += d B1, J3 -= d B1
        assert right.shape[1] == 3 and _span_distance(right, [family, shift]) <= 1e-6
        # J2 - J3 changes only through g'(x2) - g'(x3), which vanishes here: (J2 - J3).B2, |J2 - J3|^2
        assert _span_distance(left, [_labelled(3, 2, R22=1, R32=-1), _labelled(3, 2, Q22=1, Q23=-2, Q33=1)]) <= 1e-6
        out[c] = (res.value, res.error)
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
        ds = pk.integrate(m, start, 40.0 / m.eta, n_points=3, solver={"rtol": 1e-8, "atol": 1e-13})
        eg[factor] = float(ds.eg.values[-1]) / float(ds.eg.values[0])
    assert eg[0.9] < 1e-2 and eg[1.1] > 1e2
    opt = pc.optimal_eta(model, state=_relu_split_state(0.3))
    assert 0 < opt.value < e1 and opt.status == "marginal" and opt.success


# --- the general committee machine -------------------------------------------------


@pytest.mark.parametrize("c", [0.5, 2.0])
def test_relu_perceptron_with_output_weights_has_eta_c_two_over_c_squared(c):
    """v = w = c: the flow is that of unit weights at eta c^2 (first order c^2, eta^2 term c^4), so eta_c = 2 / c^2."""
    model = Committee(1, 1, "relu", teacher_weights=[c], student_weights=[c])
    assert float(critical_eta(model)) == pytest.approx(2.0 / c**2, rel=1e-9)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_one_over_K_committee_has_four_times_the_critical_eta(activation):
    """K = M = 2 with v = w = 1/2: <delta_i z> carries 1/4, the eta^2 term 1/16, so eta_c(1/K) = 4 eta_c(none)."""
    a = critical_eta(Committee(2, 2, activation))
    b = critical_eta(Committee(2, 2, activation, normalisation="1/K"))
    assert a.success and b.success
    assert float(b) == pytest.approx(4.0 * float(a), rel=1e-9)


def _linear_trained_jacobian(eta, w):
    """Jacobian of (R, Q, v) of the linear perceptron with a trained second layer at R = Q = 1, v = w, eta_v = eta."""
    return np.array([[-eta * w * w, 0.0, -eta * w],
                     [2 * eta * w * w - 2 * eta**2 * w**4, -2 * eta * w * w + eta**2 * w**4, -2 * eta * w],
                     [eta * w, -eta * w, -eta]])


def test_trained_second_layer_linear_perceptron_jacobian_and_eta_c():
    """Closed-form Jacobian; the rescaling J -> (1 + e) J, v -> (1 - e) v is a continuum of perfect solutions
    (a marginal mode along (1, 2, -w)), and the other eigenvalues cross zero at eta_c = 2 / w^2."""
    w = 1.3
    model = Committee(1, 1, "linear", eta=0.7, teacher_weights=[w], train_second_layer=True)
    fp = perfect_solution(model)
    assert fp.status == "ok" and fp.vector.tolist() == [1.0, 1.0, w]
    assert np.abs(fp.jacobian - _linear_trained_jacobian(0.7, w)).max() < 1e-9
    ce = critical_eta(model)
    assert ce.status == "marginal" and ce.n_marginal == 1
    mode = ce.marginal_modes[0].vector
    direction = np.array([1.0, 2.0, -w]) / np.linalg.norm([1.0, 2.0, -w])
    assert abs(abs(mode @ direction) - 1.0) < 1e-8
    assert ce.marginal_modes[0].components == ("R11", "Q11", "v1")

    def lead(eta):  # largest real part without the zero mode
        ev = np.linalg.eigvals(_linear_trained_jacobian(eta, w))
        return ev[np.argsort(np.abs(ev))][1:].real.max()

    assert float(ce) == pytest.approx(optimize.brentq(lead, 0.1, 3.0, xtol=1e-14), rel=1e-8)
    assert float(ce) == pytest.approx(2.0 / w**2, rel=1e-8)


def test_relu_trained_second_layer_keeps_eta_c_and_has_rescaling_modes():
    """ReLU is positively homogeneous: J_i -> c J_i, v_i -> v_i / c leaves the output unchanged, so each student has
    a marginal mode (R_ii, Q_ii, v_i); the rest of the spectrum is that of fixed weights."""
    fixed = critical_eta(Committee(2, 2, "relu"))
    trained = critical_eta(Committee(2, 2, "relu", train_second_layer=True))
    assert trained.status == "marginal" and trained.n_marginal == 2
    assert {m.components for m in trained.marginal_modes} == {("R11", "Q11", "v1"), ("R22", "Q22", "v2")}
    assert float(trained) == pytest.approx(float(fixed), rel=1e-8)


def test_stability_refuses_a_second_layer_with_its_own_rate_and_a_moving_fixed_point():
    with pytest.raises(ValueError, match=r"model: with its own second-layer learning rate \(eta_second_layer\)"):
        critical_eta(Committee(2, 2, "erf", train_second_layer=True, eta_second_layer=0.3))
    with pytest.raises(ValueError, match=r"state: not a fixed point for every eta"):
        critical_eta(Committee(2, 2, "erf", drift=0.01))
