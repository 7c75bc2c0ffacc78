"""phasekit.committee.eg: the generalisation error, also near zero error.

References: Monte Carlo over the fields, and the plain closed-form sum over
field pairs evaluated in mpmath at 50 digits, at exactly the floating-point
state handed to the model (so rounding of the state itself is no error of eg).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import phasekit as pk
from helpers_committee import generic_state
from phasekit.core.quadrature import psd_factor


def test_eg_matches_monte_carlo():
    for act in ("erf", "relu"):
        model = pk.Committee(3, 2, act)
        state = generic_state(3, 2, seed=1)
        S = model.covariance(state)
        f = np.random.default_rng(0).standard_normal((2_000_000, 5)) @ psd_factor(S).T
        g = model.activation.g
        e = 0.5 * (g(f[:, 3:]).sum(1) - g(f[:, :3]).sum(1)) ** 2
        assert abs(model.eg(state) - e.mean()) <= 5 * e.std() / np.sqrt(len(e))

def _mp_I2(mp, act, c11, c22, c12):
    if act == "relu":
        return c12 / 4 + (mp.sqrt(c11 * c22 - c12 * c12) + c12 * mp.asin(c12 / mp.sqrt(c11 * c22))) / (2 * mp.pi)
    if act == "erf":
        return 2 / mp.pi * mp.asin(c12 / mp.sqrt((1 + c11) * (1 + c22)))
    return c12

def mp_eg(act, state, T, v=None, w=None):
    """eps_g at 50 digits; asserts that the floating-point state is inside the PSD cone.

    ``v``, ``w``: second-layer weights of student and teacher (default ones).
    """
    import mpmath as mp

    mp.mp.dps = 50
    K, M = state.R.shape
    S = np.block([[state.Q, state.R], [state.R.T, T]])
    C = mp.matrix([[mp.mpf(float(x)) for x in row] for row in S])
    assert min(mp.eigsy(C, eigvals_only=True)) > 0, "test state outside the PSD cone"
    v = np.ones(K) if v is None else np.asarray(v, dtype=float)
    w = np.ones(M) if w is None else np.asarray(w, dtype=float)
    s = [-mp.mpf(float(x)) for x in v] + [mp.mpf(float(x)) for x in w]
    tot = mp.fsum(s[a] * s[b] * _mp_I2(mp, act, C[a, a], C[b, b], C[a, b])
                  for a in range(K + M) for b in range(K + M))
    return tot / 2

def near_perfect(K, M, delta, seed, kind, T=None, perm=None):
    """A state at distance ``delta`` from the perfect solution, built at 50 digits and rounded.

    ``kind="op"``: order-parameter perturbation ``R = T + d G T``,
    ``Q = T + d (G T + T G^T + H H^T) + d^2 G T G^T`` (weights ``J = B + d G B + sqrt(d) H``
    with ``H`` orthogonal to the teachers), so ``eps_g ~ delta``.
    ``kind="w"``: weights ``J_i = B_pi(i) + d U_i``, so ``eps_g ~ delta^2``.
    Students ``i`` sit near teachers ``perm[i]``.
    """
    import mpmath as mp

    mp.mp.dps = 50
    rng = np.random.default_rng(seed)
    T = np.eye(M) if T is None else np.asarray(T)
    perm = np.arange(K) if perm is None else np.asarray(perm)
    N = K + M + 2
    Lt = np.linalg.cholesky(T)
    B = mp.matrix(M, N)
    for n in range(M):
        for k in range(M):
            B[n, k] = mp.mpf(float(Lt[n, k]))
    d = mp.mpf(delta)
    J = mp.matrix(K, N)
    U = rng.standard_normal((K, N))
    G = rng.standard_normal((K, M))
    for i in range(K):
        for k in range(N):
            if kind == "w":
                J[i, k] = B[perm[i], k] + d * mp.mpf(float(U[i, k]))
            else:
                J[i, k] = B[perm[i], k] + d * mp.fsum(mp.mpf(float(G[i, m])) * B[m, k] for m in range(M))
                if k >= M:
                    J[i, k] += mp.sqrt(d) * mp.mpf(float(U[i, k]))
    R, Q = J * B.T, J * J.T
    Rf = np.array([[float(R[i, n]) for n in range(M)] for i in range(K)])
    Qf = np.array([[float(Q[i, k]) for k in range(K)] for i in range(K)])
    return pk.State(Rf, 0.5 * (Qf + Qf.T))

@pytest.mark.parametrize("act", ["relu", "linear", "erf"])
@pytest.mark.parametrize("K", [1, 2, 5])
def test_eg_near_perfect_solution_matches_mpmath(act, K):
    """Relative error of a few ulps down to eps_g ~ 1e-15 (the plain pair sum loses all digits)."""
    model = pk.Committee(K, K, act)
    worst = 0.0
    for seed in (0, 1):
        for kind, deltas in (("op", (1e-4, 1e-6, 1e-8, 1e-10)), ("w", (1e-2, 1e-4, 1e-6, 3e-8))):
            for delta in deltas:
                state = near_perfect(K, K, delta, seed=10 * K + seed, kind=kind)
                ref = mp_eg(act, state, model.T)
                rel = float(abs(model.eg(state) - ref) / ref)
                assert rel <= 2e-15, (kind, delta, float(ref), rel)
                worst = max(worst, rel)
    print(f"\n{act} K={K}: worst relative error {worst:.2g}")

@pytest.mark.parametrize("act", ["relu", "linear", "erf"])
def test_eg_near_perfect_solution_general_teacher(act):
    """Non-identity T, permuted students, and a teacher no student is close to (K < M)."""
    T3 = np.array([[1.3, 0.4, -0.2], [0.4, 0.8, 0.1], [-0.2, 0.1, 1.1]])
    model = pk.Committee(3, 3, act, T=T3)
    for kind, delta in (("op", 1e-9), ("w", 1e-6), ("op", 1e-3)):
        state = near_perfect(3, 3, delta, seed=3, kind=kind, T=T3, perm=[2, 0, 1])
        ref = mp_eg(act, state, T3)
        assert float(abs(model.eg(state) - ref) / ref) <= 2e-15, (kind, delta)
    # the third teacher is weak: eps_g ~ T_33 is small and no student is paired with it
    T = np.array([[1.0, 0.3, 2e-4], [0.3, 1.0, -3e-4], [2e-4, -3e-4, 1e-6]])
    model = pk.Committee(2, 3, act, T=T)
    for kind, delta in (("op", 1e-9), ("w", 1e-6)):
        state = near_perfect(2, 3, delta, seed=4, kind=kind, T=T, perm=[1, 0])
        ref = mp_eg(act, state, T)
        assert float(abs(model.eg(state) - ref) / ref) <= 2e-15, (kind, delta)

def test_eg_is_batched_and_exact_at_the_perfect_solution():
    T = np.array([[1.3, 0.4, -0.2], [0.4, 0.8, 0.1], [-0.2, 0.1, 1.1]])
    for act in ("relu", "erf", "linear"):
        model = pk.Committee(3, 3, act, T=T)
        p = [1, 2, 0]
        assert model.eg(pk.State(T[p], T[np.ix_(p, p)])) == 0.0
        states = [near_perfect(3, 3, d, seed=5, kind="w", T=T, perm=p) for d in (1e-1, 1e-3, 1e-5, 1e-7)]
        states += [generic_state(3, 3, seed=s) for s in (1, 2)]
        v = np.stack([s.to_vector() for s in states]).reshape(2, 3, -1)
        batch = model.eg_vector(v)
        assert batch.shape == (2, 3)
        assert np.allclose(batch.ravel(), [model.eg(s) for s in states], rtol=1e-15, atol=0)

def test_eg_difference_form_of_a_smooth_activation_converges_with_the_nodes_it_takes():
    """erf: the node rule of the difference form (two nodes fewer than with a kink) reaches rounding.

    States from near the perfect solution out to ``|z_i|^2 / T_aa ~ 6``, where 6 nodes err by
    1e-9 to 1e-6.  Reference: the plain sum at 50 digits.
    """
    from phasekit.committee import eg as eg_module

    rng = np.random.default_rng(11)
    for K in (2, 3):
        model = pk.Committee(K, K, "erf")
        forms = model.activation.closed_forms
        used = set()
        for dev in (0.05, 0.3, 0.6, 1.0, 1.5, 2.5):
            # students off their teachers (T = I) by dev in norm, partly outside the teachers' span
            D = rng.standard_normal((K, K + 3))
            W = np.eye(K, K + 3) + dev * D / np.linalg.norm(D, axis=1, keepdims=True)
            state = pk.State(W[:, :K].copy(), W @ W.T)
            S = model._sigma(model.state_vector(state)[None])
            assert np.linalg.eigvalsh(S[0])[0] > 1e-6
            pi = np.arange(K)[None]  # student i paired with teacher i (an identity for any pairing)
            n = int(eg_module._eg_nodes(S, pi, model.T, K, 1.0, smooth=True)[0])
            used.add(n)
            got, fewest = (0.5 * eg_module._eg_matched(S, pi, model.T, K, forms, m)[0] for m in (n, 6))
            ref = mp_eg("erf", state, model.T)
            assert float(abs(got - ref) / ref) <= 1e-14, (K, dev, n, float(abs(got - ref) / ref))
            if dev >= 1.0:  # far states: the smallest rule errs by orders of magnitude
                assert float(abs(fewest - ref) / ref) > 1e-10
        assert len(used) >= 5  # the states span the rules from 6 to 20 nodes


def test_eg_with_students_sharing_a_teacher_uses_the_plain_sum():
    """K = 2 students splitting one relu teacher (g positively homogeneous): eps_g = 0 exactly there."""
    model = pk.Committee(2, 1, "relu")
    for d in (0.0, 1e-3, 1e-6):
        J = np.array([[0.5 + d, 0.0, d], [0.5 - d, d, 0.0]])
        B = np.array([[1.0, 0.0, 0.0]])
        state = pk.State(J @ B.T, J @ J.T)
        eg = model.eg(state)
        assert 0.0 <= eg <= (1e-16 if d == 0 else 1.0)
        if d:
            # not near a matched perfect solution: the plain sum, ~1e-16 of its terms
            assert abs(eg - float(mp_eg("relu", state, model.T))) <= 1e-15

@st.composite
def _float_near_perfect(draw):
    act = draw(st.sampled_from(["relu", "erf", "linear"]))
    K = draw(st.integers(1, 4))
    d = 10.0 ** draw(st.floats(-12, -1))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(K)
    B = np.eye(K, K + 2)
    J = B[perm] + d * rng.standard_normal((K, K + 2))  # float arithmetic throughout
    return act, K, d, pk.State(J @ B.T, J @ J.T)

@settings(max_examples=150, deadline=None)
@given(_float_near_perfect())
def test_eg_is_never_negative_near_the_perfect_solution(case):
    act, K, d, state = case
    eg = pk.Committee(K, K, act).eg(state)
    assert np.isfinite(eg) and eg >= 0.0
    if d >= 1e-6:
        assert eg > 0.0


@pytest.mark.parametrize("act", ["relu", "erf", "tanh"])
def test_eg_with_second_layer_weights_matches_monte_carlo(act):
    """eps_g = <(sum_n w_n g(y_n) - sum_i v_i g(x_i))^2> / 2: fixed weights and weights in the state."""
    w, v = np.array([1.4, -0.6]), np.array([0.3, 0.9, -0.5])
    state = generic_state(3, 2, seed=7)
    fixed = pk.Committee(3, 2, act, teacher_weights=w, student_weights=v)
    trained = pk.Committee(3, 2, act, teacher_weights=w, train_second_layer=True)
    S = fixed.covariance(state)
    f = np.random.default_rng(3).standard_normal((1_000_000, 5)) @ psd_factor(S).T
    g = fixed.activation.g
    e = 0.5 * (g(f[:, 3:]) @ w - g(f[:, :3]) @ v) ** 2
    se = e.std() / np.sqrt(len(e))
    assert abs(fixed.eg(state) - e.mean()) <= 5 * se
    assert trained.eg(pk.State(state.R, state.Q, v)) == pytest.approx(fixed.eg(state), rel=1e-14)
    # the weights matter: the students' weights in another order are many standard errors away
    assert abs(trained.eg(pk.State(state.R, state.Q, v[::-1])) - e.mean()) > 30 * se


@pytest.mark.parametrize("act", ["relu", "linear", "erf"])
def test_eg_with_weights_near_the_perfect_solution_matches_mpmath(act):
    """v = w (non-unit) near R = Q = T: the difference form with weights keeps a few ulps."""
    w = np.array([0.7, 1.6, 1.1])
    T3 = np.array([[1.3, 0.4, -0.2], [0.4, 0.8, 0.1], [-0.2, 0.1, 1.1]])
    perm = [2, 0, 1]
    fixed = pk.Committee(3, 3, act, T=T3, teacher_weights=w, student_weights=w[perm])
    trained = pk.Committee(3, 3, act, T=T3, teacher_weights=w, train_second_layer=True)
    for kind, delta in (("op", 1e-9), ("op", 1e-5), ("w", 1e-6), ("w", 1e-3)):
        state = near_perfect(3, 3, delta, seed=3, kind=kind, T=T3, perm=perm)
        ref = mp_eg(act, state, T3, w[perm], w)
        assert float(abs(fixed.eg(state) - ref) / ref) <= 4e-15, (kind, delta)
        assert float(abs(trained.eg(pk.State(state.R, state.Q, w[perm])) - ref) / ref) <= 4e-15, (kind, delta)
    # weights slightly off w: eps_g ~ (v - w)^2 T, again to a few ulps
    state = near_perfect(3, 3, 1e-8, seed=3, kind="w", T=T3, perm=perm)
    v = w[perm] * (1 + 1e-7 * np.array([1.0, -2.0, 0.5]))
    ref = mp_eg(act, state, T3, v, w)
    assert float(abs(trained.eg(pk.State(state.R, state.Q, v)) - ref) / ref) <= 4e-15


def test_eg_of_a_1_over_K_committee_sharing_teachers_matches_mpmath():
    """erf, K = 4 students sharing M = 2 teachers with v = w / 2 (the 1/K literature's over-parameterised case)."""
    model = pk.Committee(4, 2, "erf", normalisation="1/K")
    assert model.student_weights.tolist() == [0.25] * 4 and model.teacher_weights.tolist() == [0.5, 0.5]
    for kind, delta in (("w", 1e-6), ("w", 1e-3), ("op", 1e-8)):
        state = near_perfect(4, 2, delta, seed=8, kind=kind, perm=[0, 1, 0, 1])
        ref = mp_eg("erf", state, model.T, model.student_weights, model.teacher_weights)
        assert float(abs(model.eg(state) - ref) / ref) <= 1e-13, (kind, delta, float(ref))
