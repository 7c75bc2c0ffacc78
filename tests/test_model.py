"""phasekit.committee.model: parameters, construction, validation; the defaults are the soft committee machine.

Independent routes: the previous fixed-unit-weight implementation (loaded from
the repository's history) for the defaults, and the one-line errors of every
bad parameter and state.
"""

import json

import numpy as np
import pytest
from helpers_committee import generic_state, soft_committee_reference

import phasekit as pk
from phasekit.committee.model import committee_from_parameters, vector_labels


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
