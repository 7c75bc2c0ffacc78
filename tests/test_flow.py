"""phasekit.committee.flow: the order-parameter flow, also of the general committee machine.

Independent routes: Monte Carlo of the SGD update over the Gaussian fields
(the microscopic rule at finite N for the general model), a loop-per-tuple
reference implementation, the linear activation in matrix form, and exact
symmetries.
"""


import numpy as np
import pytest
from helpers_committee import generic_state, mc_increment

import phasekit as pk
from phasekit.core.quadrature import psd_factor


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
