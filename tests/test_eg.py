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

def mp_eg(act, state, T):
    """eps_g at 50 digits; asserts that the floating-point state is inside the PSD cone."""
    import mpmath as mp

    mp.mp.dps = 50
    K, M = state.R.shape
    S = np.block([[state.Q, state.R], [state.R.T, T]])
    C = mp.matrix([[mp.mpf(float(x)) for x in row] for row in S])
    assert min(mp.eigsy(C, eigvals_only=True)) > 0, "test state outside the PSD cone"
    s = [-1] * K + [1] * M
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
