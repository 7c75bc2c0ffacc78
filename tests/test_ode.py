"""The ODE driver (phasekit.core.ode) on problems with known answers."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from phasekit.core.ode import Event, blow_up, cone_exit, crossing, rk4_batch, solve_flow
from phasekit.core.options import SolverOptions

TIGHT = SolverOptions(rtol=1e-11, atol=1e-13)


def decay(_t, y):
    return -0.7 * y


def test_exponential_decay_samples_and_end():
    t = np.linspace(0.0, 3.0, 7)
    run = solve_flow(decay, [2.0, -1.0], (0.0, 3.0), t_eval=t, options=TIGHT)
    assert run.status == "ok" and run.success and run.event is None and run.message == "reached t = 3"
    assert run.t_end == 3.0 and run.n_steps > 0 and run.nfev > 0
    np.testing.assert_allclose(run.y, np.exp(-0.7 * t)[:, None] * [2.0, -1.0], rtol=1e-10)
    np.testing.assert_allclose(run.y_end, np.exp(-2.1) * np.array([2.0, -1.0]), rtol=1e-10)
    # without requested times: the solver's steps, ending at the end of the span
    steps = solve_flow(decay, [1.0], (0.0, 3.0), options=TIGHT)
    assert steps.t[0] == 0.0 and steps.t[-1] == 3.0 and steps.y.shape == (steps.t.size, 1)
    with pytest.raises(ValueError, match="times: this run kept no dense output"):
        steps.sample([1.0])


def test_samples_equal_solve_ivp_at_the_same_times():
    """Dense sampling gives the very numbers of solve_ivp's own t_eval (same steps, same interpolants)."""
    def f(_t, y):
        return np.array([-y[1] * y[0], y[0] - 0.3 * y[1] ** 3])

    t = np.concatenate([[0.0], np.geomspace(1e-3, 20.0, 40)])
    ref = solve_ivp(f, (0.0, 20.0), [1.0, 0.5], method="RK45", t_eval=t, rtol=1e-6, atol=1e-9)
    run = solve_flow(f, [1.0, 0.5], (0.0, 20.0), t_eval=t, options=SolverOptions(method="RK45", rtol=1e-6,
                                                                                 atol=1e-9))
    np.testing.assert_array_equal(run.y, ref.y.T)
    assert run.nfev == ref.nfev
    dense = solve_flow(f, [1.0, 0.5], (0.0, 20.0), dense=True, options=SolverOptions(method="RK45", rtol=1e-6,
                                                                                     atol=1e-9))
    np.testing.assert_array_equal(dense.sample(t), ref.y.T)


def test_threshold_crossing_located_to_solver_tolerance():
    run = solve_flow(decay, [1.0], (0.0, 10.0), events=[crossing(lambda y: y[0], 0.25)], options=TIGHT,
                     time_name="alpha")
    assert run.status == "converged" and run.event == "threshold"
    assert run.t_end == pytest.approx(math.log(4.0) / 0.7, rel=1e-10)
    assert run.y_end[0] == pytest.approx(0.25, rel=1e-12)  # the root of the event on the dense output
    assert run.message == f"threshold crossed 0.25 at alpha = {run.t_end:.6g}"
    # the direction counts: an increasing crossing is not seen by direction=-1
    up = solve_flow(lambda _t, y: np.ones(1), [0.0], (0.0, 2.0), events=[crossing(lambda y: y[0], 1.0)])
    assert up.status == "ok" and up.t_events["threshold"].size == 0


def test_non_terminal_events_record_every_crossing():
    # y = (cos t, -sin t): y0 falls through 0 at pi/2 + 2 pi k
    run = solve_flow(lambda _t, y: np.array([y[1], -y[0]]), [1.0, 0.0], (0.0, 20.0), options=TIGHT,
                     events=[crossing(lambda y: y[0], 0.0, terminal=False, name="zero")])
    assert run.status == "ok"
    np.testing.assert_allclose(run.t_events["zero"], np.pi / 2 + 2 * np.pi * np.arange(3), rtol=1e-9)
    assert run.y_events["zero"].shape == (3, 2)


def test_blow_up_and_cone_exit_are_divergence():
    # y' = y^2 from 1 blows up at t = 1: |y| = 1e6 at t = 1 - 1e-6
    run = solve_flow(lambda _t, y: y * y, [1.0], (0.0, 2.0), events=[blow_up(1e6)], options=TIGHT)
    assert run.status == "diverged" and not run.success and run.event == "blow_up"
    assert run.t_end == pytest.approx(1.0 - 1e-6, abs=1e-10)  # where y(t) = 1 / (1 - t) = 1e6
    assert run.message.startswith("an entry of the state exceeded 1e+06 at t = ")
    # the margin y0 reaches -offset at t = 1 + offset for y0 = 1 - t
    run = solve_flow(lambda _t, y: -np.ones(1), [1.0], (0.0, 3.0), events=[cone_exit(lambda y: y[0], offset=0.5)])
    assert run.status == "diverged" and run.event == "cone_exit" and run.t_end == pytest.approx(1.5, rel=1e-12)
    assert run.message == "left the positive-semidefinite cone at t = 1.5"
    # the first of two terminal events stops the run
    run = solve_flow(decay, [1.0], (0.0, 10.0), options=TIGHT,
                     events=[crossing(lambda y: y[0], 0.1, name="late"), crossing(lambda y: y[0], 0.5, name="early")])
    assert run.event == "early" and run.t_events["late"].size == 0


def test_a_failing_step_is_failed_or_diverged():
    # NaN from t = 0.5 on: the run stops at its last step before the first non-finite derivative
    def poisoned(t, y):
        return -y if t < 0.5 else np.full_like(y, np.nan)

    run = solve_flow(poisoned, [1.0], (0.0, 1.0), options=SolverOptions(method="RK45"))
    assert run.status == "failed" and 0.3 < run.t_end < 0.5
    assert run.y_end[0] == pytest.approx(np.exp(-run.t_end), rel=1e-6)
    assert run.message.startswith("solver stopped at t = ") and "not finite at t = " in run.message
    assert np.all(np.isfinite(run.y_end))
    flagged = solve_flow(poisoned, [1.0], (0.0, 1.0), options=SolverOptions(method="RK45"),
                         diverged=lambda y: True)
    assert flagged.status == "diverged"
    # blow-up without an event: the solver stops at an overflowing state, which counts as divergence
    run = solve_flow(lambda _t, y: y * y, [1.0], (0.0, 2.0), options=SolverOptions(method="RK45"),
                     diverged=lambda y: not np.all(np.abs(y) < 1e10))
    assert run.status == "diverged" and run.t_end == pytest.approx(1.0, abs=1e-3)


def test_options_and_events_are_validated():
    with pytest.raises(ValueError, match="method: must be one of"):
        solve_flow(decay, [1.0], (0.0, 1.0), options={"method": "Euler"})
    with pytest.raises(ValueError, match="options: unknown option"):
        solve_flow(decay, [1.0], (0.0, 1.0), options={"tol": 1e-3})
    with pytest.raises(ValueError, match="events: names must be distinct"):
        solve_flow(decay, [1.0], (0.0, 1.0), events=[blow_up(10.0), blow_up(20.0)])
    with pytest.raises(ValueError, match="direction: must be -1, 0 or 1"):
        Event("e", lambda t, y: 0.0, direction=2)
    with pytest.raises(ValueError, match="status: a terminal event ends a run"):
        Event("e", lambda t, y: 0.0, status="ok")
    with pytest.raises(ValueError, match="max_norm: must be finite and > 0"):
        blow_up(0.0)


def test_rk4_batch_is_classical_runge_kutta():
    """y' = -y: each step multiplies by 1 - h + h^2/2 - h^3/6 + h^4/24 exactly."""
    Y0 = np.array([[1.0, 2.0], [-1.0, 0.5]])
    h, n = 0.1, 20
    run = rk4_batch(lambda _t, Y: -Y, Y0, (0.0, h * n), n)
    factor = 1 - h + h**2 / 2 - h**3 / 6 + h**4 / 24
    np.testing.assert_allclose(run.y, Y0 * factor**n, rtol=1e-14)
    assert run.alive.all() and run.steps == n
    # non-autonomous: y' = t gives t^2 / 2 exactly (RK4 integrates polynomials of degree 3)
    poly = rk4_batch(lambda t, Y: np.full_like(Y, t), np.zeros((1, 1)), (0.0, 2.0), 8)
    assert poly.y[0, 0] == pytest.approx(2.0, rel=1e-14)


def test_rk4_batch_stops_invalid_rows_and_observes():
    Y0 = np.array([[1.0], [3.0], [10.0]])
    seen = []
    run = rk4_batch(lambda _t, Y: Y, Y0, (0.0, 1.0), 10, valid=lambda new, old: new[:, 0] < 5.0,
                    observe=lambda step, Y, F, alive: seen.append((step, alive.copy())))
    assert run.alive.tolist() == [True, False, False]
    assert run.y[0, 0] == pytest.approx(math.e, rel=1e-5)
    assert 3.0 < run.y[1, 0] < 5.0 and run.y[2, 0] == 10.0  # last valid states
    assert len(seen) == 10 and seen[0][1].all() and seen[-1][1].tolist() == [True, False, False]
    # every row stops: the run ends early
    short = rk4_batch(lambda _t, Y: Y, Y0, (0.0, 1.0), 10, valid=lambda new, old: new[:, 0] < 1.5)
    assert short.steps < 10 and not short.alive.any()
    with pytest.raises(ValueError, match="n_steps: must be an integer >= 1"):
        rk4_batch(lambda _t, Y: Y, Y0, (0.0, 1.0), 0)


def test_a_failure_on_the_first_step_knows_only_the_start():
    run = solve_flow(lambda _t, y: np.full_like(y, np.nan), [1.0, 2.0], (0.0, 1.0), t_eval=[0.0, 0.5], dense=True)
    assert run.status == "failed" and run.n_steps == 0 and run.t_end == 0.0
    np.testing.assert_array_equal(run.y, [[1.0, 2.0]])  # only t = 0 is within [t0, t_end]
    np.testing.assert_array_equal(run.sample([0.0]), [[1.0, 2.0]])


def test_a_derivative_that_turns_non_finite_stops_the_run_where_it_was_finite():
    # dy/dt = 1 until t = 0.6, then NaN: scipy alone would loop for ever on a NaN step size.
    run = solve_flow(lambda t, y: np.ones_like(y) if t < 0.6 else np.full_like(y, np.nan), [0.0], (0.0, 1.0),
                     t_eval=np.linspace(0.0, 1.0, 11))
    assert run.status == "failed" and "not finite" in run.message
    assert 0.3 < run.t_end < 0.6
    np.testing.assert_allclose(run.y[:, 0], run.t, atol=1e-12)  # y = t on the part that was kept
    assert run.t[-1] <= run.t_end
