"""The committee-machine model: state layout, validation, and the right-hand side."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import phasekit as pk
from phasekit.committee.model import committee_from_parameters, vector_labels
from phasekit.core.quadrature import psd_factor


def test_state_vector_order():
    s = pk.State(R=[[11, 12], [21, 22]], Q=[[1.1, 1.2], [1.2, 2.2]])
    assert s.to_vector().tolist() == [11, 12, 21, 22, 1.1, 1.2, 2.2]
    assert vector_labels(2, 2) == ["R11", "R12", "R21", "R22", "Q11", "Q12", "Q22"]
    back = pk.State.from_vector(s.to_vector(), 2, 2)
    assert np.array_equal(back.R, s.R) and np.array_equal(back.Q, s.Q)
    s3 = pk.State(np.arange(6.0).reshape(3, 2), np.arange(9.0).reshape(3, 3) + np.arange(9.0).reshape(3, 3).T)
    assert np.array_equal(pk.State.from_vector(s3.to_vector(), 3, 2).Q, s3.Q)


def mc_rhs(model, state, n_samples, seed):
    """d state / d alpha by sampling the fields: an independent route to the closed forms.

    Returns the estimate and its standard error (same layout as the state vector).
    """
    K, M, eta = model.K, model.M, model.eta
    S = model.covariance(state)
    L = psd_factor(S)
    rng = np.random.default_rng(seed)
    g, dg = model.activation.g, model.activation.dg
    iu = np.triu_indices(K)
    acc = None
    chunks = 10
    for _ in range(chunks):
        f = rng.standard_normal((n_samples // chunks, K + M)) @ L.T
        x, y = f[:, :K], f[:, K:]
        tau = g(y).sum(axis=1)
        if model.noise:
            tau = tau + model.noise * rng.standard_normal(len(tau))
        delta = (tau - g(x).sum(axis=1))[:, None] * dg(x)
        dR = eta * delta[:, :, None] * y[:, None, :]
        dx = delta[:, :, None] * x[:, None, :]
        dQ = eta * (dx + np.swapaxes(dx, 1, 2))
        if model.second_order:
            dQ = dQ + eta**2 * delta[:, :, None] * delta[:, None, :]
        samples = np.concatenate([dR.reshape(len(f), -1), dQ[:, iu[0], iu[1]]], axis=1)
        part = np.stack([samples.sum(0), (samples**2).sum(0)])
        acc = part if acc is None else acc + part
    mean = acc[0] / n_samples
    se = np.sqrt((acc[1] / n_samples - mean**2) / n_samples)
    return mean, se


def generic_state(K, M, seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(K + M, K + M + 2))
    S = A @ A.T / (K + M + 2)
    # rescale the teacher block to identity while keeping S positive definite
    Lt = np.linalg.cholesky(S[K:, K:])
    W = np.eye(K + M)
    W[K:, K:] = np.linalg.inv(Lt)
    S = W @ S @ W.T
    return pk.State(S[:K, K:], S[:K, :K])


@pytest.mark.parametrize("activation,second_order,noise", [
    ("erf", True, 0.0), ("erf", True, 0.3), ("relu", False, 0.0), ("relu", True, 0.2),
    ("linear", True, 0.0),
])
def test_rhs_matches_monte_carlo_of_the_update(activation, second_order, noise):
    model = pk.Committee(2, 3, activation, eta=0.7, second_order=second_order, noise=noise)
    state = generic_state(2, 3, seed=4)
    exact = model.rhs(state).to_vector()
    mean, se = mc_rhs(model, state, 2_000_000, seed=11)
    assert np.all(np.abs(exact - mean) <= 5 * se), (exact, mean, se)


def test_rhs_with_mixed_activations_matches_monte_carlo():
    model = pk.Committee(2, 2, "erf", eta=0.5, teacher_activation="tanh")
    state = generic_state(2, 2, seed=8)
    S = model.covariance(state)
    L = psd_factor(S)
    rng = np.random.default_rng(2)
    f = rng.standard_normal((2_000_000, 4)) @ L.T
    x, y = f[:, :2], f[:, 2:]
    ga, gt = model.activation, model.teacher_activation
    delta = (gt.g(y).sum(1) - ga.g(x).sum(1))[:, None] * ga.dg(x)
    dR = 0.5 * delta[:, :, None] * y[:, None, :]
    dQ11 = 0.5 * 2 * delta[:, 0] * x[:, 0] + 0.25 * delta[:, 0] ** 2
    samples = np.concatenate([dR.reshape(len(f), -1), dQ11[:, None]], axis=1)
    mean, se = samples.mean(0), samples.std(0) / np.sqrt(len(f))
    exact = model.rhs(state).to_vector()[[0, 1, 2, 3, 4]]
    assert np.all(np.abs(exact - mean) <= 5 * se)
    eg_mc = 0.5 * ((gt.g(y).sum(1) - ga.g(x).sum(1)) ** 2)
    assert abs(model.eg(state) - eg_mc.mean()) <= 5 * eg_mc.std() / np.sqrt(len(f))


def test_eg_matches_monte_carlo():
    for act in ("erf", "relu"):
        model = pk.Committee(3, 2, act)
        state = generic_state(3, 2, seed=1)
        S = model.covariance(state)
        f = np.random.default_rng(0).standard_normal((2_000_000, 5)) @ psd_factor(S).T
        g = model.activation.g
        e = 0.5 * (g(f[:, 3:]).sum(1) - g(f[:, :3]).sum(1)) ** 2
        assert abs(model.eg(state) - e.mean()) <= 5 * e.std() / np.sqrt(len(e))


def test_rhs_is_batched_and_symmetric_under_unit_permutation():
    model = pk.Committee(3, 3, "erf", eta=0.3)
    s = generic_state(3, 3, seed=5)
    v = s.to_vector()
    batch = model.rhs_vector(np.stack([v, 2 * v * 0 + v]))
    assert np.allclose(batch[0], model.rhs_vector(v)) and np.allclose(batch[1], batch[0])
    # relabelling student units permutes the flow accordingly
    p = [2, 0, 1]
    sp = pk.State(s.R[p], s.Q[np.ix_(p, p)])
    d, dp = model.rhs(s), model.rhs(sp)
    assert np.allclose(dp.R, d.R[p], atol=1e-14) and np.allclose(dp.Q, d.Q[np.ix_(p, p)], atol=1e-14)


def test_fixed_point_of_perfect_solution_is_stationary():
    for act in ("erf", "relu", "linear"):
        model = pk.Committee(2, 2, act, eta=0.3)
        assert np.allclose(model.rhs_vector(pk.State(np.eye(2), np.eye(2)).to_vector()), 0, atol=1e-15)


def test_parameters_round_trip():
    model = pk.Committee(2, 3, "erf", eta=0.25, second_order=False, noise=0.1,
                         T=np.diag([1.0, 2.0, 0.5]), teacher_activation="tanh")
    again = committee_from_parameters(model.parameters())
    assert again.parameters() == model.parameters()
    assert model.replace(eta=0.5).eta == 0.5


# --- validation -------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    (dict(K=0, M=1), r"K: number of student units must be an integer >= 1, got 0"),
    (dict(K=1.5, M=1), r"K: number of student units must be an integer >= 1"),
    (dict(K=1, M=0), r"M: number of teacher units must be an integer >= 1, got 0"),
    (dict(K=1, M=1, eta=0.0), r"eta: learning rate must be finite and > 0, got 0.0"),
    (dict(K=1, M=1, eta=-1), r"eta: learning rate must be finite and > 0"),
    (dict(K=1, M=1, noise=-0.1), r"noise: output-noise standard deviation must be >= 0"),
    (dict(K=1, M=2, T=np.eye(3)), r"T: must be an \(2, 2\) matrix"),
    (dict(K=1, M=2, T=[[1, 0.5], [0.4, 1]]), r"T: must be a finite symmetric matrix"),
    (dict(K=1, M=2, T=[[1, 2], [2, 1]]), r"T: must be positive definite \(smallest eigenvalue -1 <= 0\)"),
    (dict(K=1, M=1, activation="softsign"), r"activation: unknown activation 'softsign'"),
    (dict(K=1, M=1, teacher_activation="nope"), r"activation: unknown activation 'nope'"),
    (dict(K=1, M=1, second_order="no"), r"second_order: must be True or False, got str 'no'"),
    (dict(K=1, M=1, second_order=1), r"second_order: must be True or False, got int 1"),
    (dict(K=1, M=1, second_order=None), r"second_order: must be True or False"),
    (dict(K=1, M=1, eta="0.5"), r"eta: learning rate must be a real number, got str '0.5'"),
    (dict(K=1, M=1, eta=True), r"eta: learning rate must be a real number, got bool True"),
    (dict(K=1, M=1, noise=None), r"noise: output-noise standard deviation must be a real number"),
    (dict(K=1, M=1, T=[["1"]]), r"T: must hold real numbers, got an array of dtype <U1"),
])
def test_invalid_model_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pk.Committee(**kwargs)


def test_invalid_states():
    model = pk.Committee(2, 2, "relu")
    with pytest.raises(ValueError, match=r"state0: the covariance \[\[Q, R\], \[R\^T, T\]\] must be positive semidefinite"):
        pk.integrate(model, pk.State(np.eye(2) * 2, np.eye(2)), 1.0)
    with pytest.raises(ValueError, match=r"state0: student norms Q_ii must be > 0"):
        pk.integrate(model, pk.State(np.zeros((2, 2)), np.diag([0.0, 1.0])), 1.0)
    with pytest.raises(ValueError, match=r"state: R has shape \(1, 2\), model needs \(2, 2\)"):
        model.rhs(pk.State(np.zeros((1, 2)), [[1.0]]))
    with pytest.raises(ValueError, match="Q: must be symmetric"):
        pk.State(np.zeros((2, 2)), [[1.0, 0.1], [0.2, 1.0]])
    with pytest.raises(ValueError, match=r"Q: must be a \(2, 2\) matrix"):
        pk.State(np.zeros((2, 2)), np.eye(3))
    with pytest.raises(ValueError, match=r"v: expected a vector of length 7"):
        pk.State.from_vector(np.zeros(6), 2, 2)


def test_boolean_like_parameters():
    assert pk.Committee(1, 1, second_order=np.bool_(False)).second_order is False
    assert pk.Committee(1, 1, eta=np.float32(0.5), noise=np.array(0.1)).noise == pytest.approx(0.1)
    params = pk.Committee(2, 2, "erf").parameters()
    assert committee_from_parameters({**params, "second_order": 0}).second_order is False
    with pytest.raises(ValueError, match=r"second_order: must be True or False, got str 'no'"):
        committee_from_parameters({**params, "second_order": "no"})
    # an asymmetry within the tolerance is removed, not carried into the covariance
    T = np.array([[1.0, 0.3 + 1e-13], [0.3, 1.0]])
    assert np.array_equal(pk.Committee(2, 2, T=T).T, pk.Committee(2, 2, T=T).T.T)


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh"])
def test_rhs_and_eg_validate_the_state(activation):
    """Invalid states are reported with the component at fault, before any computation."""
    model = pk.Committee(2, 2, activation)
    bad = [
        (pk.State(0.1 * np.eye(2), [[1.0, 2.0], [2.0, 1.0]]), r"state: Q must be positive semidefinite"),
        (pk.State(0.1 * np.eye(2), [[1.0, 0.0], [0.0, -0.5]]), r"state: student norms Q_ii must be > 0"),
        (pk.State(0.1 * np.eye(2), [[1.0, 0.0], [0.0, 0.0]]), r"state: student norms Q_ii must be > 0"),
        (pk.State(2.0 * np.eye(2), np.eye(2)),
         r"state: the covariance \[\[Q, R\], \[R\^T, T\]\] must be positive semidefinite .* "
         r"R is inconsistent with Q and T"),
    ]
    for state, match in bad:
        for method in (model.rhs, model.eg):
            with pytest.raises(ValueError, match=match):
                method(state)
    with pytest.raises(ValueError, match=r"state: expected a phasekit.State, got ndarray"):
        model.rhs(np.zeros(model.n_state))
    with pytest.raises(ValueError, match=r"v: state vectors must have length n_state = 7 \(K = 2, M = 2\), "
                                         r"got shape \(6,\)"):
        model.rhs_vector(np.zeros(6))
    with pytest.raises(ValueError, match=r"v: state vectors must have length n_state = 7"):
        model.eg_vector(np.zeros((3, 8)))


def test_state_rejects_non_numeric_entries():
    with pytest.raises(ValueError, match=r"R: must hold real numbers, got an array of dtype <U3"):
        pk.State([["0.5"]], [[1.0]])
    with pytest.raises(ValueError, match=r"Q: must hold real numbers, got an array of dtype complex128"):
        pk.State([[0.5]], [[1.0 + 1j]])
    with pytest.raises(ValueError, match=r"R: must hold real numbers, got an array of dtype bool"):
        pk.State([[True]], [[1.0]])
    with pytest.raises(ValueError, match=r"Q: entries must be finite"):
        pk.State([[0.5]], [[np.nan]])


def _reference():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "reference.py"
    spec = importlib.util.spec_from_file_location("phasekit_reference_rhs", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("activation,K,M", [("erf", 2, 3), ("erf", 3, 2), ("relu", 2, 3), ("relu", 3, 2)])
def test_rhs_equals_loop_reference(activation, K, M):
    """Vectorised flow (Stein-reduced I3, symmetric I4 table) against the loop-per-tuple reference."""
    ref = _reference()
    model = pk.Committee(K, M, activation, eta=0.6, noise=0.2)
    state = generic_state(K, M, seed=21)
    assert np.allclose(model.rhs_vector(state.to_vector()), ref.reference_rhs(model, state),
                       rtol=1e-12, atol=1e-13)
    first = model.replace(second_order=False)
    assert np.allclose(first.rhs_vector(state.to_vector()), ref.reference_rhs(first, state),
                       rtol=1e-12, atol=1e-13)


def test_large_first_order_model():
    """K = M = 50 first order: the flow is cheap (no I4) and exact at the perfect solution."""
    K = 50
    model = pk.Committee(K, K, "erf", eta=1.0, second_order=False)
    assert np.abs(model.rhs_vector(pk.State(np.eye(K), np.eye(K)).to_vector())).max() < 1e-14
    state = pk.State(1e-3 * np.random.default_rng(0).uniform(size=(K, K)), 0.5 * np.eye(K))
    d = model.rhs(state)
    # relabelling students permutes the flow (a check that no index table is off by one)
    p = np.random.default_rng(1).permutation(K)
    dp = model.rhs(pk.State(state.R[p], state.Q[np.ix_(p, p)]))
    assert np.allclose(dp.R, d.R[p], atol=1e-15) and np.allclose(dp.Q, d.Q[np.ix_(p, p)], atol=1e-15)


# --- eps_g near the perfect solution ----------------------------------------------
# References: the plain closed-form sum over field pairs evaluated in mpmath at 50
# digits, at exactly the floating-point state handed to the model (so rounding of the
# state itself is no error of eg).


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
