"""phasekit.committee.model: state layout, validation, and the right-hand side.

Independent routes: Monte Carlo of the SGD update over the Gaussian fields, a
loop-per-tuple reference implementation, and exact symmetries.
"""

import json

import numpy as np
import pytest

import phasekit as pk
from helpers_committee import generic_state, mc_increment, soft_committee_reference
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
    (dict(K=1, M=1, noise=-0.1), r"noise: output-noise standard deviation must be finite and >= 0, got -0.1"),
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


# --- the general committee machine -------------------------------------------------


def _reference_cases():
    """(activation, K, M, second_order, noise, states) of the soft committee machine's reference cases."""
    perceptron = [pk.State([[0.0]], [[0.25]]), pk.State([[1.0]], [[1.0]]), pk.State([[0.3]], [[0.7]]),
                  pk.State([[1.0 - 1e-7]], [[1.0]])]
    plateau = pk.State(np.full((2, 2), 0.52458), [[0.71776, 0.38298], [0.38298, 0.71776]])
    start = pk.State(1e-3 * np.eye(2), [[0.2, 0.0], [0.0, 0.3]])
    near = pk.State(np.eye(2) - 1e-6 * np.array([[1.0, 0.5], [0.2, 1.0]]), np.eye(2) - 1e-6 * np.eye(2))
    pair = [plateau, start, near, pk.State(np.eye(2), np.eye(2)), generic_state(2, 2, seed=3)]
    return [
        ("relu", 1, 1, True, 0.0, perceptron), ("relu", 1, 1, True, 0.3, perceptron),
        ("relu", 2, 2, False, 0.0, pair), ("relu", 2, 2, True, 0.2, pair),
        ("erf", 2, 2, False, 0.0, pair), ("erf", 2, 2, True, 0.1, pair),
    ]


@pytest.mark.parametrize("activation,K,M,second_order,noise,states", _reference_cases())
def test_defaults_reproduce_the_soft_committee_machine(activation, K, M, second_order, noise, states):
    """Every new option at its default: rhs and eps_g equal the fixed-unit-weight model's to 1e-14."""
    ref = soft_committee_reference()
    explicit = dict(teacher_weights=np.ones(M), student_weights=np.ones(K), normalisation="none",
                    train_second_layer=False, eta_second_layer=None, weight_decay=0.0, drift=0.0,
                    eta_schedule=None)
    old = ref.Committee(K, M, activation, eta=0.7, second_order=second_order, noise=noise)
    V = np.stack([s.to_vector() for s in states])
    for model in (pk.Committee(K, M, activation, eta=0.7, second_order=second_order, noise=noise),
                  pk.Committee(K, M, activation, eta=0.7, second_order=second_order, noise=noise, **explicit)):
        assert model.n_state == old.n_state
        assert np.abs(model.rhs_vector(V) - old.rhs_vector(V)).max() <= 1e-14
        assert np.abs(model.eg_vector(V) - old.eg_vector(V)).max() <= 1e-14
        for s in states:
            old_s = ref.State(s.R, s.Q)
            assert np.abs(model.rhs(s).to_vector() - old.rhs(old_s).to_vector()).max() <= 1e-14
            assert abs(model.eg(s) - old.eg(old_s)) <= 1e-14
    # a constant schedule is the same flow
    const = pk.Committee(K, M, activation, eta=0.7, second_order=second_order, noise=noise, eta_schedule="constant")
    assert np.abs(const.rhs_vector(V, 3.0) - old.rhs_vector(V)).max() <= 1e-14


def _with_v(state, v):
    return pk.State(state.R, state.Q, v)


# name, model, state, the same model without the term under test (to show the test can fail)
_GENERAL_CASES = [
    ("teacher and student weights, relu, eta^2 with v_i v_k, noise",
     dict(K=2, M=3, activation="relu", eta=0.7, noise=0.3, teacher_weights=[0.5, -1.2, 0.8],
          student_weights=[0.7, 1.3]), None, dict(teacher_weights=None, student_weights=None)),
    ("trained second layer, relu, eta^2 with v_i v_k, noise",
     dict(K=2, M=3, activation="relu", eta=0.7, noise=0.3, train_second_layer=True, eta_second_layer=0.4),
     [0.6, -0.9], dict(eta_second_layer=1.4)),
    ("trained second layer, tanh by quadrature, 1/sqrt(K) teacher",
     dict(K=2, M=2, activation="tanh", eta=0.6, normalisation="1/sqrt(K)", train_second_layer=True),
     [1.1, 0.4], dict(normalisation="none", teacher_weights=None)),
    ("weight decay, erf", dict(K=2, M=3, activation="erf", eta=0.7, weight_decay=0.3), None,
     dict(weight_decay=0.0)),
    ("teacher drift, erf", dict(K=2, M=3, activation="erf", eta=0.7, drift=0.2), None, dict(drift=0.0)),
    ("power-law schedule at alpha = 3, erf, weight decay",
     dict(K=2, M=3, activation="erf", eta=0.7, weight_decay=0.1,
          eta_schedule={"kind": "power_law", "alpha0": 2.0, "p": 1.0}), None, dict(eta_schedule=None)),
]


@pytest.mark.parametrize("name,kwargs,v,off", _GENERAL_CASES, ids=[c[0] for c in _GENERAL_CASES])
def test_general_rhs_matches_monte_carlo_of_the_microscopic_update(name, kwargs, v, off):
    """rhs against N times the mean increment of R, Q, v of the microscopic rule (N = 1e5, 1e6 examples)."""
    model = pk.Committee(**kwargs)
    state = _with_v(generic_state(model.K, model.M, seed=4), v)
    alpha = 3.0 if not model.autonomous else None
    exact = model.rhs(state, alpha).to_vector()
    mean, se = mc_increment(model, state, 1_000_000, seed=11, alpha=alpha or 0.0)
    assert np.all(np.abs(exact - mean) <= 5 * se + 1e-4), (exact, mean, se)
    # the term under test is resolved: switching it off moves the flow by many standard errors
    other = model.replace(**off)
    assert np.max(np.abs(other.rhs(state, alpha).to_vector() - exact) / se) > 30


def _linear_flow(model, state, alpha=0.0):
    """The linear activation's flow written as matrix products (g(x) = x, g' = 1)."""
    R, Q, T = state.R, state.Q, model.T
    v = state.v if model.train_second_layer else model.student_weights
    w = model.teacher_weights
    eta = float(model.eta_at(alpha))
    lam, delta = model.weight_decay, model.drift
    err_y = w @ T - v @ R  # <(tau - sigma) y_n>
    err_x = R @ w - Q @ v  # <(tau - sigma) x_i>
    eg2 = v @ Q @ v - 2 * v @ R @ w + w @ T @ w  # 2 eps_g
    dR = eta * np.outer(v, err_y) - eta * lam * R - delta * R
    dQ = eta * (np.outer(v, err_x) + np.outer(err_x, v)) - 2 * eta * lam * Q
    if model.second_order:
        dQ = dQ + eta**2 * np.outer(v, v) * (eg2 + model.noise**2)
    parts = [dR.ravel(), dQ[np.triu_indices(model.K)]]
    if model.train_second_layer:
        parts.append(model.eta_v * eta / model.eta * err_x)
    return np.concatenate(parts), 0.5 * eg2


@pytest.mark.parametrize("kwargs,v", [
    (dict(weight_decay=0.4, noise=0.3, teacher_weights=[1.5, -0.5, 0.8], student_weights=[0.3, 2.0]), None),
    (dict(weight_decay=0.2, drift=0.3, train_second_layer=True, eta_second_layer=0.25, noise=0.1), [0.4, -1.2]),
    (dict(normalisation="1/K", second_order=False, weight_decay=1.0), None),
    (dict(train_second_layer=True, eta_schedule={"kind": "piecewise_constant", "boundaries": [1.0, 2.0],
                                                  "factors": [0.5, 0.1]}), [0.4, -1.2]),
])
def test_linear_activation_closed_form(kwargs, v):
    model = pk.Committee(2, 3, "linear", eta=0.8, **kwargs)
    state = _with_v(generic_state(2, 3, seed=6), v)
    for alpha in ((0.5, 1.5, 7.0) if not model.autonomous else (None,)):
        flow, eg = _linear_flow(model, state, alpha or 0.0)
        assert np.allclose(model.rhs(state, alpha).to_vector(), flow, rtol=1e-13, atol=1e-14)
    assert model.eg(state) == pytest.approx(eg, rel=1e-13)


def test_general_flow_is_batched_over_states_and_times():
    model = pk.Committee(2, 2, "erf", eta=0.5, train_second_layer=True, weight_decay=0.1,
                         eta_schedule={"kind": "power_law", "alpha0": 1.0, "p": 0.5})
    states = [_with_v(generic_state(2, 2, seed=s), [0.5 + s, -0.3]) for s in range(3)]
    V = np.stack([s.to_vector() for s in states])
    alphas = np.array([0.0, 1.0, 10.0])
    batch = model.rhs_vector(V, alphas)
    for j, s in enumerate(states):
        assert np.allclose(batch[j], model.rhs(s, alphas[j]).to_vector(), rtol=1e-14, atol=0)
    # the schedule scales both learning rates
    frozen = model.replace(eta_schedule=None, eta=float(model.eta_at(10.0)))
    assert np.allclose(batch[2], frozen.rhs_vector(V[2]), rtol=1e-14, atol=1e-16)
    # relabelling students permutes R, Q and v together
    p = [1, 0]
    s = states[1]
    d, dp = model.rhs(s, 2.0), model.rhs(pk.State(s.R[p], s.Q[np.ix_(p, p)], s.v[p]), 2.0)
    assert np.allclose(dp.R, d.R[p], atol=1e-15) and np.allclose(dp.v, d.v[p], atol=1e-15)


def test_flow_parts_combine_to_the_flow():
    model = pk.Committee(2, 3, "relu", eta=0.6, noise=0.2, train_second_layer=True, eta_second_layer=0.3,
                         weight_decay=0.15, drift=0.05, teacher_weights=[1.0, 0.5, 2.0])
    V = np.stack([_with_v(generic_state(2, 3, seed=s), [0.5, 1.5]).to_vector() for s in range(2)])
    parts = model.flow_parts(V)
    assert np.allclose(parts.combine(), model.rhs_vector(V), rtol=1e-13, atol=1e-15)
    other = model.replace(eta=0.9, weight_decay=0.3, drift=0.1, eta_second_layer=0.2, noise=0.4)
    assert np.allclose(parts.combine(0.9, noise=0.4, weight_decay=0.3, drift=0.1, eta_second_layer=0.2),
                       other.rhs_vector(V), rtol=1e-13, atol=1e-15)


def test_perfect_solution_with_weights_is_stationary():
    """R = Q = T with v = w is a zero of the flow; weight decay and drift move it."""
    w = np.array([0.7, 1.6])
    for act in ("erf", "relu", "linear"):
        model = pk.Committee(2, 2, act, eta=0.4, teacher_weights=w, train_second_layer=True)
        x = pk.State(np.eye(2), np.eye(2), w).to_vector()
        assert np.abs(model.rhs_vector(x)).max() < 1e-15 and model.eg_vector(x) == 0.0
        assert np.abs(model.replace(weight_decay=0.1).rhs_vector(x)).max() > 1e-2


def test_general_state_layout_and_parameters():
    assert vector_labels(2, 1, second_layer=True) == ["R11", "R21", "Q11", "Q12", "Q22", "v1", "v2"]
    s = pk.State([[0.1], [0.2]], np.eye(2), [3.0, 4.0])
    assert s.to_vector().tolist() == [0.1, 0.2, 1.0, 0.0, 1.0, 3.0, 4.0]
    assert pk.State.from_vector(s.to_vector(), 2, 1).v.tolist() == [3.0, 4.0]
    trained = pk.Committee(2, 1, train_second_layer=True)
    assert trained.n_state == 7 and trained.labels[-2:] == ["v1", "v2"]
    assert trained.state_from_vector(s.to_vector()).v.tolist() == [3.0, 4.0]
    fixed = pk.Committee(2, 1, student_weights=[3.0, 4.0])
    assert fixed.state_vector(s).tolist() == [0.1, 0.2, 1.0, 0.0, 1.0]  # v equal to the fixed weights: dropped
    assert pk.Committee(3, 2, normalisation="1/K").student_weights.tolist() == [1 / 3] * 3
    assert pk.Committee(3, 2, normalisation="1/K").teacher_weights.tolist() == [0.5, 0.5]
    assert np.allclose(pk.Committee(3, 2, normalisation="1/sqrt(K)").teacher_weights, 2**-0.5)
    # the trained rate follows eta unless set
    assert trained.eta_v == trained.eta and trained.replace(eta=0.3).eta_v == 0.3
    assert pk.Committee(1, 1).eta_v == 0.0
    model = pk.Committee(2, 3, "erf", eta=0.25, noise=0.1, teacher_weights=[1.0, 2.0, 0.5], student_weights=[0.2, 0.3],
                         train_second_layer=True, eta_second_layer=0.05, weight_decay=0.01, drift=0.02,
                         eta_schedule={"kind": "power_law", "alpha0": 10.0, "p": 1.0})
    again = committee_from_parameters(json.dumps(model.parameters()))
    assert again.parameters() == model.parameters()
    assert "eta_schedule={'kind': 'power_law'" in repr(model)
    with pytest.raises(ValueError, match=r"replace: unknown parameter\(s\) \['lr'\]"):
        model.replace(lr=0.1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(teacher_weights=[1, 2, 3]), r"teacher_weights: must be a vector of length 2, got shape \(3,\)"),
    (dict(teacher_weights=["a", "b"]), r"teacher_weights: must hold real numbers, got an array of dtype <U1"),
    (dict(teacher_weights=[1, np.nan]), r"teacher_weights: entries must be finite"),
    (dict(student_weights=[1]), r"student_weights: must be a vector of length 2, got shape \(1,\)"),
    (dict(normalisation="1/M"), r"normalisation: must be one of 'none', '1/K', '1/sqrt\(K\)', got '1/M'"),
    (dict(train_second_layer=1), r"train_second_layer: must be True or False, got int 1"),
    (dict(eta_second_layer=0.5), r"eta_second_layer: only used when the second layer is trained"),
    (dict(train_second_layer=True, eta_second_layer=0.0),
     r"eta_second_layer: second-layer learning rate must be finite and > 0, got 0.0"),
    (dict(weight_decay=-1), r"weight_decay: weight decay lambda must be finite and >= 0, got -1.0"),
    (dict(weight_decay=np.inf), r"weight_decay: weight decay lambda must be finite and >= 0, got inf"),
    (dict(drift=-0.1), r"drift: drift strength delta must be finite and >= 0, got -0.1"),
    (dict(drift=0.1, T=np.diag([1.0, 2.0])), r"drift: a drifting teacher .* use T = identity"),
    (dict(eta_schedule="cosine"), r"eta_schedule: kind must be one of constant, power_law, piecewise_constant"),
    (dict(eta_schedule=3.0), r"eta_schedule: expected None, a kind name, a table with 'kind'"),
])
def test_invalid_general_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pk.Committee(2, 2, **kwargs)


def test_general_states_are_checked():
    trained = pk.Committee(2, 2, train_second_layer=True)
    s = pk.State(0.5 * np.eye(2), np.eye(2))
    with pytest.raises(ValueError, match=r"state: the second layer is trained, so the state needs its weights v"):
        trained.rhs(s)
    with pytest.raises(ValueError, match=r"state: v = \[1.0, 2.0\] differs from the model's fixed student_weights"):
        pk.Committee(2, 2).eg(pk.State(s.R, s.Q, [1.0, 2.0]))
    with pytest.raises(ValueError, match=r"v: second-layer weights must be a vector of length K = 2, got shape \(3,\)"):
        pk.State(s.R, s.Q, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"v: entries must be finite"):
        pk.State(s.R, s.Q, [1.0, np.inf])
    scheduled = pk.Committee(2, 2, eta_schedule={"kind": "power_law", "alpha0": 1.0})
    with pytest.raises(ValueError, match=r"alpha: the learning rate follows a schedule, so the flow needs the time"):
        scheduled.rhs(s)
    with pytest.raises(ValueError, match=r"model: fixed points needs an autonomous flow"):
        scheduled.require_autonomous("fixed points")
