"""phasekit.committee.model: state layout, validation, and the right-hand side.

Independent routes: Monte Carlo of the SGD update over the Gaussian fields, a
loop-per-tuple reference implementation, and exact symmetries.
"""

import numpy as np
import pytest

import phasekit as pk
from helpers_committee import generic_state
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
