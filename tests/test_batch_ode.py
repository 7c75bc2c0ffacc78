"""The batched DOP853 driver (phasekit.core.batch_ode) on problems with known answers."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from phasekit.core import batch_ode
from phasekit.core.batch_ode import BatchEvent, solve_batch
from phasekit.core.ode import crossing, solve_flow
from phasekit.core.options import SolverOptions


def _matrices(B, seed=0):
    """Damped rotations, one per row: y' = A_r y with a closed form expm(A_r t) y0."""
    rng = np.random.default_rng(seed)
    om = rng.uniform(0.5, 3.0, B)
    gam = rng.uniform(0.05, 0.6, B)
    A = np.zeros((B, 2, 2))
    A[:, 0, 0] = A[:, 1, 1] = -gam
    A[:, 0, 1], A[:, 1, 0] = om, -om
    return A


def test_ordered_sum_over_the_first_axis_is_sequential():
    """``_sum0`` (stage sums, the batched flow's contractions) adds in index order whatever the shape.

    numpy's pairwise sum, which a reduction over one entry per slice would take, does not.
    """
    rng = np.random.default_rng(1)
    for shape in [(100, 1, 1), (300, 1), (37, 2, 1), (10, 3, 1), (10, 3, 64), (36, 10, 7), (5, 1, 4)]:
        x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-8, 8, shape)
        seq = x[0].copy()
        for j in range(1, shape[0]):
            seq += x[j]
        np.testing.assert_array_equal(batch_ode._sum0(x), seq)


def test_linear_flows_match_their_closed_forms_row_by_row():
    B = 6
    A = _matrices(B)
    y0 = np.array([[1.0, 0.0]] * B) + np.arange(B)[:, None] * [0.0, 0.1]
    t_max = np.linspace(2.0, 7.0, B)
    t_eval = [np.linspace(0.0, tm, 5 + r) for r, tm in enumerate(t_max)]  # ragged, one row each
    run = solve_batch(lambda _t, Y, rows: np.einsum("rij,rj->ri", A[rows], Y), y0, t_max, t_eval=t_eval,
                      rtol=1e-11, atol=1e-13)
    assert run.status == ["ok"] * B and run.message[0] == "reached t = 2"
    np.testing.assert_array_equal(run.t_end, t_max)
    for r in range(B):
        exact = np.array([expm(A[r] * t) @ y0[r] for t in t_eval[r]])
        np.testing.assert_allclose(run.samples[r, :t_eval[r].size], exact, atol=1e-10)
        assert np.all(np.isnan(run.samples[r, t_eval[r].size:]))  # padding
        np.testing.assert_allclose(run.y_end[r], expm(A[r] * t_max[r]) @ y0[r], atol=1e-10)


def test_samples_at_t_eval_are_taken_once_for_the_whole_batch():
    """With ``t_eval`` a row's evaluations and the calls are those of its run alone plus its samples' interpolants."""
    B = 5
    A = _matrices(B, seed=4)
    y0 = np.array([[1.0, 0.2]] * B)
    t_eval = np.linspace(0.0, 4.0, 9)
    fun = lambda _t, Y, rows: np.einsum("rij,rj->ri", A[rows], Y)  # noqa: E731
    run = solve_batch(fun, y0, 4.0, t_eval=t_eval, rtol=1e-9, atol=1e-12)
    alone = [solve_batch(lambda _t, Y, _rows, r=r: fun(_t, Y, np.full(len(Y), r)), y0[r:r + 1], 4.0,
                         t_eval=t_eval, rtol=1e-9, atol=1e-12) for r in range(B)]
    plain = [solve_batch(lambda _t, Y, _rows, r=r: fun(_t, Y, np.full(len(Y), r)), y0[r:r + 1], 4.0,
                         rtol=1e-9, atol=1e-12) for r in range(B)]
    for r in range(B):
        assert run.nfev[r] == alone[r].nfev[0]
        assert alone[r].nfev[0] - plain[r].nfev[0] == 3 * np.count_nonzero(t_eval > 0)  # 3 stages per sampled step
        np.testing.assert_array_equal(run.samples[r], alone[r].samples[0])
    # the interpolation of every row's sampled steps: 3 calls in all, not 3 per row
    assert run.n_calls == max(p.n_calls for p in plain) + 3


def test_dense_output_after_the_run_equals_scipys_interpolant(monkeypatch):
    """``sample`` after the run: any times, rows in any order, the interpolant scipy's dense output gives.

    A terminal event stops rows 2 and 3 early: times beyond a row's end are nan.
    """
    B = 4
    A = _matrices(B, seed=2)
    y0 = np.array([[1.0, 0.5]] * B)
    stop = BatchEvent("low", lambda _t, Y, _r: Y[:, 0] + 0.6, direction=-1, message="y0 fell below -0.6")
    fun = lambda _t, Y, rows: np.einsum("rij,rj->ri", A[rows], Y)  # noqa: E731
    run = solve_batch(fun, y0, 6.0, rtol=1e-8, atol=1e-11, events=[stop], dense=True)
    calls, nfev = run.n_calls, run.nfev.copy()
    rows = [2, 0, 1, 3]
    times = [np.linspace(0.01, 6.0, 7), np.array([0.3, 2.2, 5.9]), np.linspace(0.05, 6.0, 9), np.array([6.0])]
    got = run.sample(rows, times)
    # The stages are kept: 3 interpolation stages per step holding a time, for all steps in 3 calls
    # (row 3's one time lies beyond its end).
    added = run.nfev - nfev
    assert run.n_calls == calls + 3 and added[3] == 0 and np.all(added[:3] % 3 == 0) and np.all(added[:3] > 0)
    for r, tt, y in zip(rows, times, got):
        ref = solve_ivp(lambda _t, v, r=r: A[r] @ v, (0.0, 6.0), y0[r], method="DOP853", rtol=1e-8, atol=1e-11,
                        dense_output=True)
        inside = tt <= run.t_end[r]
        if inside.any():
            np.testing.assert_allclose(y[inside], ref.sol(tt[inside]).T, rtol=0, atol=1e-12)
        assert np.all(np.isnan(y[~inside]))
    assert run.status == ["ok", "ok", "converged", "converged"] and np.isnan(got[0]).any() and not np.isnan(got[1]).any()
    # Stages not kept (over the memory budget): each sampled step is taken again, to the same numbers.
    monkeypatch.setattr(batch_ode, "_STAGE_BUDGET", 0)
    redo = solve_batch(fun, y0, 6.0, rtol=1e-8, atol=1e-11, events=[stop], dense=True)
    calls = redo.n_calls
    for y, z in zip(got, redo.sample(rows, times)):
        np.testing.assert_array_equal(z, y)
    assert redo.n_calls == calls + 16
    plain = solve_batch(fun, y0, 6.0, rtol=1e-8, atol=1e-11)
    with pytest.raises(ValueError, match="dense=True"):
        plain.sample([0], [np.array([1.0])])


def test_each_row_takes_the_steps_scipy_takes_for_it_alone():
    """Same initial step, error norm and step-size control as DOP853: equal step counts and end states."""
    def f(_t, y):
        return np.array([-y[1] * y[0], y[0] - 0.3 * y[1] ** 3])

    y0 = np.array([[1.0, 0.5], [0.2, -1.0], [2.0, 0.1]])
    run = solve_batch(lambda t, Y, rows: np.stack([f(0, y) for y in Y]), y0, [20.0, 5.0, 11.0], rtol=1e-8,
                      atol=1e-11)
    for r, tm in enumerate([20.0, 5.0, 11.0]):
        ref = solve_ivp(f, (0.0, tm), y0[r], method="DOP853", rtol=1e-8, atol=1e-11)
        assert run.n_steps[r] == ref.t.size - 1
        assert run.nfev[r] == ref.nfev
        np.testing.assert_allclose(run.y_end[r], ref.y[:, -1], rtol=0, atol=1e-13)


def test_terminal_events_per_row_and_recorded_crossings():
    """y' = -k y from 1 crosses 1/4 at ln(4)/k; cos crosses 0 at pi/2 (down), 3 pi/2 (up), ..."""
    k = np.array([0.5, 1.0, 2.0, 0.01])
    quarter = BatchEvent("quarter", lambda _t, Y, _r: Y[:, 0] - 0.25, direction=-1, message="y fell below 1/4")
    zero = BatchEvent("zero", lambda _t, Y, _r: Y[:, 1], direction=0, terminal=False)

    def fun(_t, Y, rows):
        return np.stack([-k[rows] * Y[:, 0], -Y[:, 2], Y[:, 1]], axis=1)  # (e^-kt, cos t, sin t)

    y0 = np.tile([1.0, 1.0, 0.0], (4, 1))
    run = solve_batch(fun, y0, 10.0, events=[quarter, zero], rtol=1e-10, atol=1e-12, time_name="alpha")
    assert run.status == ["converged"] * 3 + ["ok"]
    assert run.event == ["quarter"] * 3 + [None]
    np.testing.assert_allclose(run.t_end[:3], np.log(4.0) / k[:3], rtol=1e-10)
    np.testing.assert_allclose(run.y_end[:3, 0], 0.25, rtol=1e-11)
    assert run.message[1] == f"y fell below 1/4 at alpha = {math.log(4.0):.6g}"
    # every zero of cos t before the row stopped, with its direction
    for r in range(4):
        want = (np.arange(4) + 0.5) * np.pi
        want = want[want <= run.t_end[r]]
        np.testing.assert_allclose(run.t_events["zero"][r], want, rtol=1e-10)
        np.testing.assert_array_equal(run.directions["zero"][r], [(-1) ** (j + 1) for j in range(want.size)])


def test_terminal_event_equals_solve_flow():
    """The located event time equals solve_flow's (brentq on its interpolant) to the solver tolerance.

    (The batch sums its stages in index order, np.dot does not: the last bits of the steps
    differ, which 30 time units of a pendulum amplify to ~1e-11.)
    """
    def f(_t, y):
        return np.array([y[1], -np.sin(y[0])])

    opts = SolverOptions(rtol=1e-9, atol=1e-12)
    ref = solve_flow(f, [2.0, 0.0], (0.0, 30.0), events=[crossing(lambda y: y[0], -1.5)], options=opts)
    run = solve_batch(lambda _t, Y, _r: np.stack([Y[:, 1], -np.sin(Y[:, 0])], axis=1), np.array([[2.0, 0.0]]),
                      30.0, events=[BatchEvent("threshold", lambda _t, Y, _r: Y[:, 0] + 1.5, direction=-1)],
                      rtol=1e-9, atol=1e-12)
    assert run.status == [ref.status] and ref.status == "converged"
    assert run.t_end[0] == pytest.approx(ref.t_end, rel=1e-10)
    np.testing.assert_allclose(run.y_end[0], ref.y_end, atol=1e-9)
    assert run.y_end[0, 0] == pytest.approx(-1.5, rel=1e-13)  # on the event itself


def test_rows_whose_flow_stops_being_finite():
    """y' = y^2 (blows up at 1/y0), NaN beyond y = 4: the row stops, diverged; the others go on."""
    def fun(_t, Y, _rows):
        out = Y * Y
        return np.where(Y > 4.0, np.nan, out)

    y0 = np.array([[1.0], [0.1], [1e-3]])
    run = solve_batch(fun, y0, 2.0, diverged=lambda Y, rows: np.ones(len(rows), dtype=bool))
    assert run.status[0] == "diverged" and run.status[1:] == ["ok", "ok"]
    # stopped at its last step before y = 4 (t = 3/4)
    assert 0.6 < run.t_end[0] <= 0.75 and run.y_end[0, 0] == pytest.approx(1 / (1 - run.t_end[0]), rel=1e-8)
    assert "the right-hand side is not finite" in run.message[0]
    np.testing.assert_allclose(run.y_end[1:, 0], 1 / (1 / y0[1:, 0] - 2.0), rtol=1e-8)
    # without a diverged() callback a finite state where the flow stopped is a failure
    plain = solve_batch(fun, y0[:1], 2.0)
    assert plain.status == ["failed"]
    # a flow not finite at the start stops there, with its start
    start = solve_batch(fun, np.array([[5.0]]), 1.0)
    assert start.n_steps[0] == 0 and start.t_end[0] == 0.0 and start.status == ["failed"]


def test_bad_input():
    with pytest.raises(ValueError, match="y0: need initial states"):
        solve_batch(lambda t, Y, r: Y, np.ones(3), 1.0)
    with pytest.raises(ValueError, match="t_max: every row's horizon"):
        solve_batch(lambda t, Y, r: Y, np.ones((2, 1)), [1.0, 0.0])
    with pytest.raises(ValueError, match="direction"):
        BatchEvent("e", lambda t, Y, r: Y[:, 0], direction=2)
    with pytest.raises(ValueError, match="names must be distinct"):
        e = BatchEvent("e", lambda t, Y, r: Y[:, 0])
        solve_batch(lambda t, Y, r: Y, np.ones((2, 1)), 1.0, events=[e, e])
