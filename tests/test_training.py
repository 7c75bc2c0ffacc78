"""Gradient flow and SGD of two-layer networks (phasekit.lazy_training.training)."""

import numpy as np
import pytest

from phasekit.lazy_training.loss import TwoLayer
from phasekit.lazy_training.networks import init_student, make_teacher
from phasekit.lazy_training.training import horizon, run_two_layer, train_gradient_flow, train_sgd


def _distance_vs_scale(act, symmetric, scales, *, m=20, d=10, T=10.0):
    teacher = make_teacher(d, 3, seed=0)
    s0 = init_student(m, d, 1.0, seed=0, symmetric=symmetric)
    dist = []
    for scale in scales:
        problem = TwoLayer(teacher, act, scale, offset=None if symmetric else s0)
        traj = train_gradient_flow(problem, s0, T, n_points=3, rtol=1e-9, atol=1e-13)
        dist.append(problem.tangent(s0).distance(traj.student, T))
    slope = np.polyfit(np.log(scales), np.log(dist), 1)[0]
    print(f"\n{act}, {'symmetrised' if symmetric else 'centred, unsymmetrised'} init:")
    for s, dd in zip(scales, dist):
        print(f"  scale {s:6g}  distance {dd:.4e}")
    print(f"  fitted exponent {slope:.3f}")
    return slope


def test_lazy_training_distance_falls_like_one_over_scale():
    """The lazy-training theorem's rate O(1/scale): smooth student, f(w0) = 0 by centring."""
    slope = _distance_vs_scale("erf", False, [16.0, 32.0, 64.0, 128.0])
    assert -1.2 <= slope <= -0.8


def test_symmetrised_start_cancels_second_order_term():
    """Twins with opposite output weights cancel the quadratic Taylor term: distance ~ 1/scale^2."""
    slope = _distance_vs_scale("erf", True, [16.0, 32.0, 64.0, 128.0])
    assert -2.2 <= slope <= -1.8


def test_relu_distance_falls_like_inverse_square_root():
    """ReLU is not smooth: linearisation error eps^(3/2) per unit, distance ~ scale^(-1/2)."""
    slope = _distance_vs_scale("relu", True, [32.0, 64.0, 128.0, 256.0])
    assert -0.65 <= slope <= -0.35


def test_sgd_follows_the_gradient_flow():
    teacher = make_teacher(6, 2, seed=20)
    problem = TwoLayer(teacher, "relu", scale=2.0)
    s0 = init_student(8, 6, 1.0, seed=21)
    flow = train_gradient_flow(problem, s0, 4.0, rtol=1e-8, atol=1e-11)
    sgd = train_sgd(problem, s0, 4.0, learning_rate=0.004, batch_size=1000, seed=22)
    drop = flow.loss[0] - flow.loss[-1]
    print(f"\nflow {flow.loss[-1]:.5f}, sgd {sgd.loss[-1]:.5f}, initial {flow.loss[0]:.5f}")
    assert sgd.t[-1] == pytest.approx(4.0)
    assert abs(sgd.loss[-1] - flow.loss[-1]) < 0.05 * drop
    # time is learning rate x steps: half the step, twice the steps, same point of the flow
    fine = train_sgd(problem, s0, 4.0, learning_rate=0.002, batch_size=1000, seed=23)
    assert fine.n_evaluations == 2 * sgd.n_evaluations
    assert abs(fine.loss[-1] - flow.loss[-1]) < 0.05 * drop


def test_time_to_threshold_is_where_the_loss_crosses():
    problem = TwoLayer(make_teacher(5, 2, seed=23), "relu")
    s0 = init_student(6, 5, 0.1, seed=24)
    thr = 0.3 * problem.loss(s0)
    traj = train_gradient_flow(problem, s0, 50.0, loss_threshold=thr, rtol=1e-9, atol=1e-12)
    assert 0 < traj.time_to_threshold < 50
    again = train_gradient_flow(problem, s0, traj.time_to_threshold, rtol=1e-9, atol=1e-12)
    assert again.loss[-1] == pytest.approx(thr, rel=1e-5)


def test_horizon_rescales_with_the_kernel_growth():
    assert horizon(10.0, 200.0, "relu") == pytest.approx(2.0)
    assert horizon(10.0, 200.0, "sigmoid") == pytest.approx(20.0)
    assert horizon(0.01, 200.0, "relu") == pytest.approx(200.0)
    # positively homogeneous activations grow their tangent kernel like tau^2, others like tau
    assert horizon(10.0, 200.0, "linear") == pytest.approx(2.0)
    assert horizon(10.0, 200.0, "erf") == pytest.approx(20.0)


def test_flow_reports_its_end():
    problem = TwoLayer(make_teacher(4, 2, seed=30), "relu")
    s0 = init_student(4, 4, 0.5, seed=31)
    traj = train_gradient_flow(problem, s0, 2.0, n_points=5)
    assert traj.status == "ok" and traj.message == "reached t = 2"
    assert traj.t[0] == 0.0 and traj.t[-1] == 2.0 and traj.loss.shape == (5,)
    assert traj.n_evaluations > 0 and traj.loss[-1] < traj.loss[0]


@pytest.mark.parametrize("call,name", [
    (lambda: run_two_layer(d=3, m0=1, m=0, tau=1.0), "m"),
    (lambda: run_two_layer(d=0, m0=1, m=2, tau=1.0), "d"),
    (lambda: run_two_layer(d=3, m0=1, m=2, tau=0.0), "tau"),
    (lambda: run_two_layer(d=3, m0=1, m=3, tau=1.0), "m"),
    (lambda: horizon(-1.0, 10.0), "tau"),
    (lambda: train_gradient_flow(TwoLayer(make_teacher(3, 1), "relu"), init_student(2, 3, 1.0), 1.0,
                                 method="Euler"), "method"),
])
def test_bad_input_raises_value_error_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()
