"""Committee measures against independent routes: direct integration and event solves, the published
ReLU plateau and eta_c, closed forms, and the study's solver options reaching the solver."""

import json
import math

import numpy as np
import pytest
import scipy.integrate

import phasekit as pk
from phasekit.committee.starts import initial_state
from phasekit.core.results import status_names
from phasekit.study.runner import evaluate_point
from phasekit.study.schema import parse_study


def study(**over):
    d = {"name": "t", "model": {"K": 2, "M": "K", "activation": "erf", "second_order": True},
         "grid": {"eta": [0.5, 1.5, 40.0], "K": [1, 2]},
         "integration": {"eta_alpha_max": 150.0, "n_points": 301}, "solver": {"rtol": 1e-8, "atol": 1e-11},
         "measures": {"convergence_time": {"threshold": 1e-2}, "final_eg": {}}}
    d.update(over)
    return parse_study(d)


def test_convergence_time_and_final_eg_match_direct_integration():
    st = study()
    j = 2  # C order over (eta, K): index 2 -> eta = 1.5, K = 1
    p, _ = st.point_parameters(j)
    assert (p["eta"], p["K"]) == (1.5, 1)
    rec = evaluate_point(st, j)
    assert rec["status"] == "ok", rec["message"]  # the crossing was located, the run reached its horizon
    model = pk.Committee(1, 1, "erf", eta=1.5)
    s0 = initial_state(model, 1e-3)
    # Independent route to the crossing time: stop the solver exactly at the threshold (event location).
    exact = pk.integrate(model, s0, 100.0, stop_eg=1e-2, solver={"rtol": 1e-10, "atol": 1e-13})
    assert exact.attrs["status"] == "converged"
    assert rec["values"]["convergence_time"] == pytest.approx(exact.attrs["alpha_end"], rel=2e-3)
    full = pk.integrate(model, s0, 100.0, solver={"rtol": 1e-10, "atol": 1e-13})
    assert rec["values"]["final_eg"] == pytest.approx(float(full["eg"][-1]), rel=1e-5, abs=1e-9)
    assert rec["values"]["alpha_end"] == pytest.approx(100.0)


def test_statuses_converged_not_reached_diverged():
    st = study(model={"K": 1, "M": 1, "activation": "linear"}, grid={"eta": [0.5, 40.0]},
               integration={"eta_alpha_max": 150.0, "stop_eg": 1e-2},
               measures={"convergence_time": {}, "final_eg": {}})
    stopped, blown = evaluate_point(st, 0), evaluate_point(st, 1)
    assert stopped["status"] == "converged" and "fell below" in stopped["message"]
    assert stopped["values"]["convergence_time"] == stopped["values"]["alpha_end"]
    # eta = 40 is far beyond eta_c = 2 of the linear perceptron: the overlaps blow up
    assert blown["status"] == "diverged" and math.isnan(blown["values"]["convergence_time"])
    # Neither run got to the horizon: final_eg is not the threshold or the blow-up cut-off but NaN.
    assert math.isnan(stopped["values"]["final_eg"]) and math.isnan(blown["values"]["final_eg"])
    assert stopped["values"]["alpha_end"] < 150.0 / 0.5 and blown["values"]["alpha_end"] < 150.0 / 40.0
    horizon = evaluate_point(study(model={"K": 1, "M": 1, "activation": "linear"}, grid={"eta": [0.5]},
                                   integration={"eta_alpha_max": 5.0}, measures={"final_eg": {}}), 0)
    # Without stop_eg the run reaches the horizon: final_eg is eps_g there, as a direct integration gives it.
    model = pk.Committee(1, 1, "linear", eta=0.5)
    s0 = initial_state(model, 1e-3)
    full = pk.integrate(model, s0, 10.0, solver={"rtol": 1e-10, "atol": 1e-14})
    assert horizon["status"] == "ok" and horizon["values"]["alpha_end"] == pytest.approx(10.0)
    assert horizon["values"]["final_eg"] == pytest.approx(float(full["eg"][-1]), rel=1e-4)
    from phasekit.study.measures import MEASURES

    assert MEASURES["final_eg"].outputs["final_eg"].long_name == "eps_g at the end of the horizon"
    slow = study(model={"K": 1, "M": 1, "activation": "erf"}, grid={"eta": [0.5]},
                 integration={"eta_alpha_max": 1.0}, measures={"convergence_time": {"threshold": 1e-6}})
    rec = evaluate_point(slow, 0)
    assert rec["status"] == "not_reached" and rec["values"]["convergence_time"] == math.inf


def test_study_solver_settings_reach_the_solver(monkeypatch):
    """rtol, atol, method and max_norm of [solver] are what solve_ivp receives (and they change the numbers)."""
    seen = []
    real = scipy.integrate.solve_ivp

    def spy(*args, **kwargs):
        seen.append({k: kwargs.get(k) for k in ("rtol", "atol", "method")})
        return real(*args, **kwargs)

    import phasekit.committee.dynamics as dynamics

    monkeypatch.setattr(dynamics, "solve_ivp", spy, raising=False)
    monkeypatch.setattr(scipy.integrate, "solve_ivp", spy)
    import phasekit.core.ode as ode

    if hasattr(ode, "solve_ivp"):
        monkeypatch.setattr(ode, "solve_ivp", spy)
    loose = study(grid={"eta": [0.5]}, model={"K": 1, "M": 1, "activation": "erf"},
                  solver={"rtol": 1e-4, "atol": 1e-7, "method": "RK45"}, measures={"trajectory": {}})
    rec = evaluate_point(loose, 0)
    assert {"rtol": 1e-4, "atol": 1e-7, "method": "RK45"} in seen
    model = pk.Committee(1, 1, "erf", eta=0.5)
    s0 = initial_state(model, 1e-3)
    same = pk.integrate(model, s0, 300.0, n_points=301, solver={"rtol": 1e-4, "atol": 1e-7, "method": "RK45"})
    default = pk.integrate(model, s0, 300.0, n_points=301)
    np.testing.assert_array_equal(rec["values"]["eg"], same["eg"].values)
    assert not np.array_equal(rec["values"]["eg"], default["eg"].values)


def test_max_norm_of_the_solver_decides_divergence():
    st = study(model={"K": 1, "M": 1, "activation": "linear"}, grid={"eta": [3.0]},
               integration={"eta_alpha_max": 150.0}, solver={"max_norm": 10.0}, measures={"final_eg": {}})
    rec = evaluate_point(st, 0)
    assert rec["status"] == "diverged" and "exceeded 10" in rec["message"]


def test_trajectory_measure_is_integrate_sampled_to_where_it_stopped():
    st = study(grid={"eta": [0.5]}, model={"K": 2, "M": 2, "activation": "relu", "second_order": False},
               initial={"X": 1e-2, "Q0": [0.2, 0.3]}, integration={"eta_alpha_max": 100.0, "n_points": 51,
                                                                 "stop_eg": 1e-2},
               measures={"trajectory": {}})
    rec = evaluate_point(st, 0)
    model = pk.Committee(2, 2, "relu", eta=0.5, second_order=False)
    ref = pk.integrate(model, pk.State(1e-2 * np.eye(2), np.diag([0.2, 0.3])), 200.0, n_points=51, stop_eg=1e-2,
                       solver={"rtol": 1e-8, "atol": 1e-11})
    for k in ("alpha", "R", "Q", "eg"):
        np.testing.assert_array_equal(rec["values"][k], ref[k].values)
    assert rec["values"]["alpha"][-1] == rec["values"]["alpha_end"] < 200.0  # no samples past the stop
    assert rec["status"] == "converged"


def test_log_spaced_samples_and_explicit_start_matrices():
    st = parse_study({"name": "l", "model": {"K": 2, "M": 1, "activation": "erf"},
                      "initial": {"R0": [[0.1], [0.0]], "Q0": [[0.3, 0.05], [0.05, 0.2]]},
                      "integration": {"alpha_max": 10.0, "n_points": 5, "spacing": "log"},
                      "measures": {"trajectory": {}}})
    rec = evaluate_point(st, 0)
    np.testing.assert_allclose(rec["values"]["alpha"], np.concatenate([[0], np.geomspace(1e-3, 10, 4)]))
    np.testing.assert_array_equal(rec["values"]["R"][0], [[0.1], [0.0]])
    np.testing.assert_array_equal(rec["values"]["Q"][0], [[0.3, 0.05], [0.05, 0.2]])


def test_plateau_measures_against_model_reference():
    """ReLU K = M = 2, first order: the plateau's eps_g 0.073613 and escape eigenvalue 0.2392 per eta alpha,
    and the plateau length growing like (1 / lambda_esc) ln(1 / X)."""
    eta = 0.5
    st = parse_study({
        "name": "pl", "model": {"K": 2, "M": 2, "activation": "relu", "second_order": False, "eta": eta},
        "grid": {"X": [1e-2, 1e-3, 1e-4, 1e-5]}, "solver": {"rtol": 1e-9, "atol": 1e-12},
        "measures": {"plateau_length": {}, "plateau": {}},
    })
    recs = [evaluate_point(st, j) for j in range(4)]
    assert all(r["status"] == "converged" for r in recs), [r["message"] for r in recs]
    egs = [r["values"]["plateau_eg"] for r in recs]
    np.testing.assert_allclose(egs, 0.073613, rtol=1e-4)
    np.testing.assert_allclose([r["values"]["escape_eigenvalue"] for r in recs], 0.2392 * eta, rtol=1e-3)
    lengths = [r["values"]["plateau_length"] for r in recs]
    slope = np.polyfit(np.log(1 / np.array([1e-2, 1e-3, 1e-4, 1e-5])), lengths, 1)[0]
    assert slope == pytest.approx(1 / (0.2392 * eta), rel=0.01)
    for r in recs:
        v = r["values"]
        assert v["plateau_length"] == pytest.approx(v["plateau_exit"] - v["plateau_entry"], rel=1e-12)


def test_plateau_of_one_student_is_not_reached_and_erf_closed_form():
    st = parse_study({"name": "p", "model": {"M": "K", "activation": "erf", "second_order": False, "eta": 1.0},
                      "grid": {"K": [1, 2]}, "measures": {"plateau": {}}})
    one, two = evaluate_point(st, 0), evaluate_point(st, 1)
    assert one["status"] == "not_reached" and math.isnan(one["values"]["plateau_eg"])
    # Saad and Solla: lambda = 2K / (pi sqrt(2K - 1) (2K + 1)^(3/2)) for erf, K = M = 2
    lam = 4 / (math.pi * math.sqrt(3) * 5 ** 1.5)
    assert two["values"]["escape_eigenvalue"] == pytest.approx(lam, rel=1e-8)
    assert two["values"]["escape_closed_form"] == pytest.approx(lam, rel=1e-14)


def test_eta_c_eta_opt_of_the_relu_perceptron():
    st = parse_study({"name": "ec", "model": {"K": 1, "M": 1, "activation": "relu"}, "grid": {"eta": [0.3, 1.0]},
                      "measures": {"eta_c": {}, "eta_opt": {}}})
    for j in range(2):  # the ReLU perceptron's eta_c = 2 and eta_opt = 1, whatever eta
        v = evaluate_point(st, j)["values"]
        assert v["eta_c"] == pytest.approx(2.0, rel=1e-9) and v["eta_opt"] == pytest.approx(1.0, rel=1e-8)
        assert v["crossing_real"] == 1.0 and v["eta_c_precision"] < 1e-8


def test_eta_over_eta_c_sets_eta():
    st = parse_study({"name": "r", "model": {"K": 1, "M": 1, "activation": "relu", "second_order": True},
                      "grid": {"eta_over_eta_c": [0.25, 0.5]}, "initial": {"X": 0.0, "Q0": 0.25},
                      "integration": {"eta_alpha_max": 50.0, "n_points": 2}, "measures": {"final_eg": {}}})
    rec = evaluate_point(st, 1)
    assert rec["derived"]["eta"] == pytest.approx(1.0, rel=1e-9)  # half of eta_c = 2
    assert rec["values"]["alpha_end"] == pytest.approx(50.0 / rec["derived"]["eta"])


def test_asymptotic_eg_of_an_unrealisable_student():
    st = parse_study({"name": "ae", "model": {"K": 2, "M": 3, "activation": "erf", "second_order": False, "eta": 0.5},
                      "grid": {"X": [1e-2]}, "measures": {"asymptotic_eg": {"speed_tol": 1e-7}}})
    rec = evaluate_point(st, 0)
    model = pk.Committee(2, 3, "erf", eta=0.5, second_order=False)
    long = pk.integrate(model, initial_state(model, 1e-2), 4000.0, n_points=11)
    assert rec["values"]["asymptotic_eg"] == pytest.approx(float(long["eg"][-1]), rel=1e-5)
    assert rec["values"]["asymptotic_eg"] > 0.01  # K < M cannot reach zero error


def test_simulation_and_spread_are_the_simulate_calls():
    st = parse_study({"name": "s", "model": {"K": 1, "M": 1, "activation": "relu", "eta": 0.1},
                      "initial": {"X": 0.0, "Q0": 0.25}, "integration": {"alpha_max": 2.0, "n_points": 5},
                      "grid": {"N": [{"N": 50, "seed": 3}]},
                      "measures": {"simulation": {"n_runs": 2, "n_points": 5}, "trajectory": {}}})
    rec = evaluate_point(st, 0)
    model = pk.Committee(1, 1, "relu", eta=0.1)
    sim = pk.simulate(model, pk.State([[0.0]], [[0.25]]), 50, 2.0, n_runs=2, seed=3, n_points=5)
    np.testing.assert_array_equal(rec["values"]["sim_R"], sim["R"].values)
    np.testing.assert_array_equal(rec["values"]["sim_alpha"], sim["alpha"].values)
    sp = parse_study({"name": "f", "model": {"K": 2, "M": 2, "activation": "relu", "eta": 0.1},
                      "grid": {"N": [{"N": 100, "seed": 1}]}, "measures": {"spread": {"n_runs": 20, "alpha": 0.5}}})
    v = evaluate_point(sp, 0)["values"]
    ds = pk.simulate(pk.Committee(2, 2, "relu", eta=0.1), initial_state(pk.Committee(2, 2, "relu"), 1e-3), 100, 0.5,
                     n_runs=20, seed=1, level="reduced", n_points=2)
    assert v["std"][0] == pytest.approx(float(ds["R"].values[:, -1, 0, 0].std(ddof=1)), rel=1e-12)


def test_general_model_parameters_reach_every_point():
    # drift, weight decay and a trained second layer set in a study equal the same models integrated directly
    study = {"name": "general", "model": {"K": 2, "M": 2, "activation": "erf", "second_order": True, "eta": 0.5,
                                          "teacher_weights": [1.0, 0.8]},
             "grid": {"drift": [0.0, 0.05], "weight_decay": [0.0, 0.01]},
             "initial": {"X": 1e-3, "Q0": [0.2, 0.3]}, "integration": {"alpha_max": 200.0},
             "measures": {"final_eg": {}}}
    ds = pk.run_study(study, progress=False)
    s0 = pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))
    for i, d in enumerate([0.0, 0.05]):
        for j, lam in enumerate([0.0, 0.01]):
            m = pk.Committee(2, 2, "erf", eta=0.5, second_order=True, drift=d, weight_decay=lam,
                             teacher_weights=[1.0, 0.8])
            assert float(ds["final_eg"].values[i, j]) == float(pk.integrate(m, s0, 200.0)["eg"][-1])
    assert len({float(x) for x in ds["final_eg"].values.ravel()}) == 4  # every parameter changes the result
    trained = {"name": "v", "model": {"K": 2, "M": 2, "activation": "erf", "second_order": False,
                                      "train_second_layer": True, "student_weights": [0.5, 0.5],
                                      "normalisation": "1/K"},
               "grid": {"eta": [1.0]}, "initial": {"X": 1e-3, "Q0": [0.2, 0.3]},
               "integration": {"alpha_max": 300.0}, "measures": {"convergence_time": {"threshold": 1e-3}}}
    ds = pk.run_study(trained, progress=False)
    m = pk.Committee(2, 2, "erf", eta=1.0, second_order=False, train_second_layer=True, student_weights=[0.5, 0.5],
                     normalisation="1/K")
    tr = pk.integrate(m, pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]), v=[0.5, 0.5]), 300.0)
    assert float(ds["convergence_time"].values[0]) == pytest.approx(float(pk.convergence_time(tr, 1e-3)), rel=1e-9)
    with pytest.raises(pk.StudyError, match="normalisation"):
        pk.parse_study(dict(trained, model=dict(trained["model"], normalisation="1/M")))


def test_eta_schedule_reaches_every_point_and_is_checked_at_parse_time():
    # a power-law schedule set in a study equals the same scheduled model integrated directly
    spec = {"kind": "power_law", "alpha0": 100, "p": 1}
    study = {"name": "schedule", "model": {"K": 2, "M": 2, "activation": "erf", "second_order": True, "noise": 0.1,
                                           "eta_schedule": spec},
             "grid": {"eta": [0.5, 1.0]}, "initial": {"X": 1e-3, "Q0": [0.2, 0.3]},
             "integration": {"alpha_max": 300.0}, "measures": {"final_eg": {}}}
    ds = pk.run_study(study, progress=False)
    s0 = pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))
    for i, eta in enumerate([0.5, 1.0]):
        m = pk.Committee(2, 2, "erf", eta=eta, second_order=True, noise=0.1, eta_schedule=spec)
        assert float(ds["final_eg"].values[i]) == float(pk.integrate(m, s0, 300.0)["eg"][-1])
        frozen = pk.Committee(2, 2, "erf", eta=eta, second_order=True, noise=0.1)
        assert float(ds["final_eg"].values[i]) != float(pk.integrate(frozen, s0, 300.0)["eg"][-1])
    assert json.loads(ds.attrs["study"])["model"]["eta_schedule"] == spec  # recorded in the dataset
    # a case axis compares schedules; the parsed value is what the model reads
    cases = dict(study, model={k: v for k, v in study["model"].items() if k != "eta_schedule"},
                 grid={"schedule": [{"name": "constant"}, {"name": "annealed", "eta_schedule": spec}]})
    parsed = pk.parse_study(cases)
    assert parsed.axes[0].assigns[1]["eta_schedule"] == {"kind": "power_law", "alpha0": 100.0, "p": 1.0}
    for bad, what in [({"kind": "power_law"}, "needs alpha0"), ({"kind": "cosine"}, "kind must be one of"),
                      ({"kind": "power_law", "alpha0": -1.0}, "alpha0 must be > 0"),
                      ({"kind": "power_law", "alpha0": 1.0, "q": 2}, "unknown parameter"),
                      ({"kind": "piecewise_constant", "boundaries": [10.0], "factors": [1.0, 0.5]}, "as many factors"),
                      (3.0, "a schedule kind name")]:
        with pytest.raises(pk.StudyError, match=r"key 'model\.eta_schedule': .*" + what) as err:
            pk.parse_study(dict(study, model=dict(study["model"], eta_schedule=bad)))
        assert "\n" not in str(err.value)
    # what needs an autonomous flow is refused before any work
    for measure in ("eta_c", "eta_opt", "plateau", "plateau_length", "asymptotic_eg"):
        with pytest.raises(pk.StudyError, match=rf"measures\.{measure}': .*needs an autonomous flow"):
            pk.parse_study(dict(study, measures={measure: {}}))
    with pytest.raises(pk.StudyError, match=r"initial\.kind'.*autonomous"):
        pk.parse_study(dict(study, initial={"X": 1e-3, "kind": "plateau"}))
    with pytest.raises(pk.StudyError, match=r"model\.eta_over_eta_c'.*autonomous"):
        pk.parse_study(dict(study, grid={"eta_over_eta_c": [0.5]}))


def test_trajectories_carry_v_when_the_second_layer_is_trained():
    trained = {"name": "v", "model": {"K": 2, "M": 2, "activation": "erf", "second_order": False,
                                      "train_second_layer": True, "student_weights": [0.5, 0.5],
                                      "normalisation": "1/K"},
               "grid": {"eta": [0.5, 1.0]}, "initial": {"X": 1e-3, "Q0": [0.2, 0.3]},
               "integration": {"alpha_max": 300.0, "n_points": 51}, "measures": {"final_eg": {}},
               "report": {"trajectories": [{"eta": 1.0}]}}
    m = pk.Committee(2, 2, "erf", eta=1.0, second_order=False, train_second_layer=True,
                     student_weights=[0.5, 0.5], normalisation="1/K")
    tr = pk.integrate(m, pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]), v=[0.5, 0.5]), 300.0, n_points=51)
    assert np.ptp(tr["v"].values[:, 0]) > 0.05  # v moves: the comparison below can fail
    ds = pk.run_study(trained, progress=False)
    assert ds["trajectory_v"].dims == ("trajectory", "sample", "i")
    assert np.array_equal(ds["trajectory_v"].values[0], tr["v"].values)
    ds = pk.run_study(dict(trained, measures={"trajectory": {}}, report={}), progress=False)
    assert ds["v"].dims == ("eta", "sample", "i") and np.array_equal(ds["v"].values[1], tr["v"].values)
    # a fixed second layer is not part of the state: no v
    fixed = dict(trained, model=dict(trained["model"], train_second_layer=False))
    ds = pk.run_study(fixed, progress=False)
    assert "trajectory_v" not in ds and "trajectory_eg" in ds
    # a grid over train_second_layer: v where trained, NaN where fixed
    both = dict(fixed, grid={"eta": [1.0], "train_second_layer": [False, True]},
                report={"trajectories": [{"eta": 1.0, "train_second_layer": True},
                                         {"eta": 1.0, "train_second_layer": False}]})
    v = pk.run_study(both, progress=False)["trajectory_v"].values
    assert np.array_equal(v[0], tr["v"].values) and np.isnan(v[1]).all()


def test_steady_eg_is_the_steady_state_of_each_point():
    study = {"name": "steady", "model": {"K": 2, "M": "K", "activation": "erf", "second_order": True, "eta": 0.5},
             "grid": {"drift": [0.0, 0.02], "weight_decay": [0.0, 0.01]}, "measures": {"steady_eg": {}}}
    ds = pk.run_study(study, progress=False)
    for i, d in enumerate([0.0, 0.02]):
        for j, lam in enumerate([0.0, 0.01]):
            fp = pk.steady_state(pk.Committee(2, 2, "erf", eta=0.5, drift=d, weight_decay=lam))
            assert fp.success and float(ds["steady_eg"].values[i, j]) == float(fp.eg)
            assert float(ds["steady_R"].values[i, j]) == float(np.mean(np.diag(fp.state.R)))
    assert float(ds["steady_eg"].values[0, 0]) == 0.0 and np.all(ds["steady_eg"].values.ravel()[1:] > 1e-4)
    assert np.all(ds["steady_n_unstable"].values == 0)
    pk.parse_study(dict(study, model=dict(study["model"], M=3)))  # K != M: the steady state is sought too
    with pytest.raises(pk.StudyError, match=r"measures\.steady_eg'.*autonomous"):
        pk.parse_study(dict(study, model=dict(study["model"], eta_schedule={"kind": "power_law", "alpha0": 10.0})))


def test_steady_eta_is_the_best_learning_rate_of_each_point():
    study = {"name": "steady_eta", "model": {"K": 1, "M": "K", "activation": "linear", "eta": 0.3},
             "grid": {"drift": [0.05, 0.1]}, "measures": {"steady_eta": {"eta_low": 0.05, "eta_high": 1.5}}}
    ds = pk.run_study(study, progress=False)
    for i, d in enumerate([0.05, 0.1]):
        ref = pk.optimal_steady_eta(pk.Committee(1, 1, "linear", eta=0.3, drift=d), (0.05, 1.5))
        assert ref.status == "ok"
        assert float(ds["steady_eta"].values[i]) == float(ref) and float(ds["steady_eta_eg"].values[i]) == ref.eg
    assert list(status_names(ds["status"].values)) == ["ok", "ok"]
    bad = dict(study, measures={"steady_eta": {"eta_low": 2.0, "eta_high": 1.5}})
    with pytest.raises(pk.StudyError, match=r"measures\.steady_eta'.*eta_low must be < eta_high, got eta_low = 2, "
                                            r"eta_high = 1\.5"):
        pk.parse_study(bad)
    with pytest.raises(pk.StudyError, match=r"measures\.steady_eta\.eta_low"):
        pk.parse_study(dict(study, measures={"steady_eta": {"eta_low": -1.0}}))
    with pytest.raises(pk.StudyError, match=r"measures\.steady_eta'.*autonomous"):
        pk.parse_study(dict(study, model=dict(study["model"], eta_schedule={"kind": "power_law", "alpha0": 10.0})))


def test_annealing_asymptote_measure_is_the_direct_call_and_nan_without_a_schedule():
    sched = {"kind": "power_law", "alpha0": 20.0, "p": 1.0}
    study = {"name": "ann", "model": {"K": 1, "M": "K", "activation": "linear", "eta": 0.5, "noise": 0.5,
                                      "second_order": True},
             "grid": {"case": [{"name": "constant"}, {"name": "annealed", "eta_schedule": sched}]},
             "integration": {"alpha_max": 10.0, "n_points": 2}, "measures": {"annealing_asymptote": {}}}
    ds = pk.run_study(study, progress=False)
    ref = pk.annealing_asymptote(pk.Committee(1, 1, "linear", eta=0.5, noise=0.5, second_order=True,
                                              eta_schedule=sched))
    assert float(ds["annealing_C"].values[1]) == float(ref) and ref.status == "ok"
    assert np.isnan(ds["annealing_C"].values[0]) and status_names(ds["status"].values)[0] == "not_reached"


def test_the_kept_plateau_belongs_to_each_point_of_a_grid_over_general_parameters():
    # one process evaluates every point, so a plateau kept under too coarse a key would be reused
    study = parse_study({"name": "pl", "model": {"K": 2, "M": "K", "activation": "erf", "second_order": False,
                                                 "eta": 0.5},
                         "grid": {"weight_decay": [0.0, 0.01, 0.05]}, "measures": {"plateau": {}}})
    egs = [evaluate_point(study, j)["values"]["plateau_eg"] for j in range(3)]
    for eg, lam in zip(egs, [0.0, 0.01, 0.05]):
        fp = pk.symmetric_plateau(pk.Committee(2, 2, "erf", eta=0.5, second_order=False, weight_decay=lam))
        assert fp.success and eg == pytest.approx(float(fp.eg), rel=1e-10)
    assert len(set(egs)) == 3


def test_noise_floor_against_the_flow_and_the_small_eta_closed_form():
    study = {"name": "floor", "model": {"K": 2, "M": 2, "activation": "erf", "second_order": True, "noise": 0.1},
             "grid": {"eta": [0.002, 0.01], "K": [2, 3], "train_second_layer": [False, True]},
             "measures": {"noise_floor": {}}}
    ds = pk.run_study(study, progress=False)
    eg, cf = ds["floor_eg"].values, ds["floor_closed_form"].values
    # the closed form, by hand: eta sigma^2 / (2 pi) [M / sqrt 3 + K - M] (first layer), sum_n 1 / (2 sqrt 3 pi c_n)
    s2 = 0.01
    by_hand = np.array([[[2 / math.sqrt(3), 2 / math.sqrt(3)], [2 / math.sqrt(3) + 1, 1.5 / math.sqrt(3)]]]) / (2 * math.pi)
    np.testing.assert_allclose(cf, by_hand * np.array([0.002, 0.01])[:, None, None] * s2, rtol=1e-12)
    # Newton's fixed point lies above the closed form by an O(eta) correction: five times smaller at eta / 5
    excess = eg / cf - 1
    assert np.all(excess > 0) and np.all(excess[1] < 0.015)
    np.testing.assert_allclose(excess[1] / excess[0], 5.0, rtol=0.1)
    np.testing.assert_allclose(ds["floor_v"].values[1, 1, 1], [0.5, 1.0, 0.5], atol=2e-3)  # the copies share w
    # independent route: the flow from next to the noiseless solution ends at the same eps_g
    model = pk.Committee(3, 2, "erf", eta=0.05, second_order=True, noise=0.1)
    traj = pk.integrate(model, pk.State(np.eye(3, 2), np.diag([1.0, 1.0, 1e-3])), 2e4, n_points=3)
    floor = pk.run_study(dict(study, model=dict(study["model"], eta=0.05, K=3), grid={"train_second_layer": [False]}),
                         progress=False)
    assert float(traj["eg"].values[-1]) == pytest.approx(float(floor["floor_eg"].values[0]), rel=1e-6)
    # the unused unit's norm: eta sigma^2 / 2 to leading order
    assert float(traj["Q"].values[-1, 2, 2]) == pytest.approx(0.05 * s2 / 2, rel=0.05)
    with pytest.raises(pk.StudyError, match=r"measures\.noise_floor'.*K >= M"):
        pk.parse_study(dict(study, model=dict(study["model"], M=3), grid={"eta": [0.01]}))


def test_plateau_second_layer_is_the_plateau_of_the_flow_in_v():
    study = {"name": "pv", "model": {"K": 2, "M": 2, "activation": "erf", "eta": 0.1, "train_second_layer": True},
             "grid": {"second_order": [False, True]}, "measures": {"plateau": {}, "plateau_second_layer": {}}}
    ds = pk.run_study(study, progress=False)
    first, exact = ds.sel(second_order=0), ds.sel(second_order=1)
    # first order: Saad and Solla's plateau with v = 1 (dv/dalpha cancels there), and their escape rate
    assert float(first["plateau_v"]) == pytest.approx(1.0, abs=1e-12)
    assert float(first["plateau_R"]) == pytest.approx(1 / math.sqrt(6), abs=1e-10)
    assert float(first["escape_eigenvalue"]) == pytest.approx(0.1 * 4 / (math.pi * math.sqrt(3) * 5 ** 1.5), rel=1e-8)
    assert abs(float(first["plateau_v_escape"])) < 1e-8  # the escape mode leaves v alone
    # with the eta^2 term v moves below 1: the flow from an exactly symmetric start ends there
    model = pk.Committee(2, 2, "erf", eta=0.1, second_order=True, train_second_layer=True)
    traj = pk.integrate(model, initial_state(model, 0.0, Q0=0.25), 2e4, n_points=3)
    assert float(exact["plateau_v"]) < 0.99
    np.testing.assert_allclose(traj["v"].values[-1], float(exact["plateau_v"]), atol=1e-5)
    assert float(traj["eg"].values[-1]) == pytest.approx(float(exact["plateau_eg"]), rel=1e-5)


# --- a study restricted to the site-symmetric subspace ------------------------------------------------

_SUBSPACE_STUDY = {"name": "ss", "model": {"M": "K", "activation": "erf", "eta": 0.5, "second_order": True},
                   "grid": {"K": [2, 3]}, "initial": {"X": 1e-3, "Q0": 0.5},
                   "integration": {"alpha_max": 300.0, "n_points": 31}, "solver": {"rtol": 1e-10, "atol": 1e-12},
                   "measures": {"trajectory": {}, "final_eg": {}, "convergence_time": {"threshold": 5e-3},
                                "plateau": {}, "eta_c": {}, "eta_opt": {}}}


def _restricted_study(**model):
    return dict(_SUBSPACE_STUDY, model=dict(_SUBSPACE_STUDY["model"], subspace="site_symmetric", **model))


def test_site_symmetric_study_equals_the_full_study_where_they_coincide():
    """erf K = M = 2, 3 from the site-symmetric start R = X I, Q = Q0 I: the reduced flow's trajectory, final
    and threshold times, the plateau (R, Q, C, eps_g, escape rate) and eta_c, eta_opt (which for erf the
    full space shares with the subspace) equal the full-space study's; eta_c and eta_opt are the restricted
    values of critical_eta / optimal_eta, and the dataset names its subspace."""
    full = pk.run_study(_SUBSPACE_STUDY, progress=False)
    red = pk.run_study(_restricted_study(), progress=False)
    assert str(red["subspace"].values) == "site_symmetric" and "subspace" not in full.coords
    assert "R" not in red and "i" not in red.dims and "R" in full
    assert (red["status"].values == full["status"].values).all()
    # two integrations of one flow (rtol 1e-10): the escape from the plateau amplifies their difference to ~1e-7
    np.testing.assert_allclose(red["eg"].values, full["eg"].values, rtol=1e-5, atol=1e-9)
    for mine, (var, i, k) in {"R_ii": ("R", 0, 0), "R_in": ("R", 0, 1), "Q_ii": ("Q", 0, 0),
                              "Q_ik": ("Q", 0, 1)}.items():
        np.testing.assert_allclose(red[mine].values, full[var].values[:, :, i, k], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(red["final_eg"].values, full["final_eg"].values, rtol=1e-6)
    assert red["convergence_time"].values[0] == pytest.approx(full["convergence_time"].values[0], rel=1e-7)
    assert np.isinf(red["convergence_time"].values[1]) and np.isinf(full["convergence_time"].values[1])
    for v in ("plateau_eg", "escape_eigenvalue", "plateau_R", "plateau_Q", "plateau_C", "eta_c", "eta_opt"):
        np.testing.assert_allclose(red[v].values, full[v].values, rtol=1e-7, err_msg=v)
    # inside the subspace the escape mode is simple; at K = 3 the full space has more modes of that rate
    assert (red["escape_multiplicity"].values == 1).all() and full["escape_multiplicity"].values[1] > 1
    for j, K in enumerate((2, 3)):
        model = pk.Committee(K, K, "erf", second_order=True)
        assert red["eta_c"].values[j] == pytest.approx(float(pk.critical_eta(model, subspace="site_symmetric")),
                                                       rel=1e-9)
        assert red["eta_opt"].values[j] == pytest.approx(float(pk.optimal_eta(model, subspace="site_symmetric")),
                                                         rel=1e-9)


def test_site_symmetric_relu_eta_opt_is_the_restricted_one():
    """ReLU K = M = 2: eta_c 3 - sqrt 3 = 1.26795 in both, but the optimal eta inside the subspace (0.835) is
    below the full space's (1.179, where the standard sector is the slowest)."""
    st = {"name": "r", "model": {"K": 2, "M": 2, "activation": "relu", "second_order": True},
          "measures": {"eta_c": {}, "eta_opt": {}}}
    full = pk.run_study(st, progress=False)
    red = pk.run_study(dict(st, model=dict(st["model"], subspace="site_symmetric")), progress=False)
    assert float(red["eta_c"]) == pytest.approx(3 - math.sqrt(3), rel=1e-7)
    assert float(full["eta_c"]) == pytest.approx(3 - math.sqrt(3), rel=1e-7)
    assert float(red["eta_opt"]) == pytest.approx(0.835, abs=2e-3)
    assert float(full["eta_opt"]) == pytest.approx(1.179, abs=2e-3)


@pytest.mark.parametrize("change, words", [
    ({"measures": {"simulation": {}}}, "key 'measures.simulation': needs the full model, but model.subspace"),
    ({"measures": {"noise_floor": {}}}, "key 'measures.noise_floor': needs the full model"),
    ({"measures": {"final_eg": {}}, "initial": {"X": 1e-3}}, "key 'measures.final_eg': a start in the site-symmetric"
                                                             " subspace needs equal student norms"),
    ({"measures": {"trajectory": {}}, "initial": {"Q0": 0.5, "kind": "uniform"}}, "initial.kind is not"),
    ({"model": {"subspace": "symmetric"}}, "key 'model.subspace': must be one of site_symmetric, grouped, got 'symmetric'"),
    ({"model": {"subspace": "site_symmetric", "M": 3}}, "key 'model.subspace': the site-symmetric subspace needs "
                                                        "K == M"),
])
def test_a_measure_or_model_the_subspace_cannot_serve_is_refused_at_parse_time(change, words):
    d = _restricted_study()
    d = dict(d, **{k: (dict(d[k], **v) if k == "model" else v) for k, v in change.items()})
    with pytest.raises(pk.StudyError) as info:
        parse_study(d)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_plateau_length_in_the_subspace_equals_the_full_one():
    """ReLU K = M = 2, first order, from R = X I, Q = Q0 I: entry, exit and length of the plateau band."""
    st = {"name": "pl", "model": {"K": 2, "M": 2, "activation": "relu", "second_order": False, "eta": 0.5},
          "initial": {"X": 1e-3, "Q0": 0.5}, "solver": {"rtol": 1e-10, "atol": 1e-12},
          "measures": {"plateau_length": {}}}
    full = pk.run_study(st, progress=False)
    red = pk.run_study(dict(st, model=dict(st["model"], subspace="site_symmetric")), progress=False)
    for v in ("plateau_entry", "plateau_exit", "plateau_length"):
        assert float(red[v]) == pytest.approx(float(full[v]), rel=1e-6), v
    assert np.isfinite(float(red["plateau_length"]))


def test_grouped_study_follows_the_full_flow():
    """K = 4 students in groups of 2 per teacher unit (M = 2), model.subspace = "grouped": the trajectory equals
    the full flow's from the embedded start, C1 and C2 are reported, eta_c is critical_eta(subspace="grouped")."""
    st = {"name": "gr", "model": {"K": 4, "M": 2, "activation": "erf", "eta": 0.5, "second_order": True,
                                  "normalisation": "1/K", "subspace": "grouped"},
          "initial": {"X": 1e-2, "Q0": 0.5}, "integration": {"alpha_max": 40.0, "n_points": 5},
          "solver": {"rtol": 1e-10, "atol": 1e-12}, "measures": {"trajectory": {}, "eta_c": {}}}
    red = pk.run_study(st, progress=False)
    assert str(red["subspace"].values) == "grouped" and "Q_ik" not in red
    model = pk.Committee(4, 2, "erf", eta=0.5, second_order=True, normalisation="1/K")
    start = model.restrict("grouped").embed([1e-2, 0.0, 0.5, 0.0, 0.0])
    full = pk.integrate(model, start, 40.0, n_points=5, solver={"rtol": 1e-10, "atol": 1e-12})
    for mine, (var, i, k) in {"R_ii": ("R", 0, 0), "R_in": ("R", 0, 1), "Q_ii": ("Q", 0, 0),
                              "Q_ik_in_group": ("Q", 0, 1), "Q_ik_across_groups": ("Q", 0, 2)}.items():
        np.testing.assert_allclose(red[mine].values, full[var].values[:, i, k], rtol=1e-6, atol=1e-9, err_msg=mine)
    assert float(red["eta_c"]) == pytest.approx(float(pk.critical_eta(model, subspace="grouped")), rel=1e-9)


def test_stored_trajectories_in_a_subspace_are_the_reduced_order_parameters_and_are_drawn():
    """``[report] trajectories`` in a subspace study: stored as R_ii, R_in, Q_ii, Q_ik, equal to the full
    study's entries (erf K = M = 2, 3 from R = X I, Q = Q0 I), and every trajectory figure draws them."""
    from phasekit.plotting import draw, layout_problems, trajectories

    d = dict(_SUBSPACE_STUDY, measures={"final_eg": {}}, report={"trajectories": [{"K": 2}, {"K": 3}]})
    full = pk.run_study(d, progress=False)
    red = pk.run_study(dict(d, model=dict(d["model"], subspace="site_symmetric")), progress=False)
    assert "trajectory_R" not in red and "trajectory_R_in" in red
    pairs = list(zip(trajectories(full), trajectories(red)))
    assert len(pairs) == 2
    for (_, f), (_, r) in pairs:
        assert r.attrs["subspace"] == "site_symmetric" and list(r.data_vars) == ["R", "S", "Q", "C", "eg"]
        for mine, (var, i, k) in {"R": ("R", 0, 0), "S": ("R", 0, 1), "Q": ("Q", 0, 0), "C": ("Q", 0, 1)}.items():
            np.testing.assert_allclose(r[mine].values, f[var].values[:, i, k], rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(r["eg"].values, f["eg"].values, rtol=1e-5, atol=1e-9)
    stored_C = red["trajectory_Q_ik"].values
    last_C = {float(row[np.isfinite(row)][-1]) for row in stored_C}
    # (the figure "trajectories" draws order_parameters: studies/site_symmetric_trajectories.toml draws it)
    for kind in ("order_parameters", "stacked_order_parameters", "learning_curves"):
        for name, _, fig in draw(red, {"kind": kind}):
            if kind != "stacked_order_parameters":  # that one: in studies/site_symmetric_trajectories.toml
                assert layout_problems(fig) == [], name
            labels = {ln.get_label() for ax in fig.axes for ln in ax.lines}
            assert {"R = R_ii", "S = R_in, i != n", "Q = Q_ii", "C = Q_ik, i != k"} <= labels, name
            # the curves drawn are the stored reduced values
            drawn = {float(ln.get_ydata()[-1]) for ax in fig.axes for ln in ax.lines
                     if ln.get_label() == "C = Q_ik, i != k"}
            assert drawn and drawn <= last_C, name


def test_asymptotic_eg_in_a_subspace_study_equals_the_full_study():
    """erf K = M = 2, second order with noise 0.3 from R = X I, Q = Q0 I: the end of the reduced flow is the
    full flow's noise floor (the measure was refused in a subspace)."""
    d = {"name": "ae", "model": {"M": "K", "activation": "erf", "eta": 0.5, "second_order": True, "noise": 0.3},
         "grid": {"K": [2]}, "initial": {"X": 1e-2, "Q0": 0.5}, "measures": {"asymptotic_eg": {}}}
    full = pk.run_study(d, progress=False)
    red = pk.run_study(dict(d, model=dict(d["model"], subspace="site_symmetric")), progress=False)
    assert status_names(red["status"].values).tolist() == status_names(full["status"].values).tolist()
    mine, theirs = red["asymptotic_eg"].values.item(), full["asymptotic_eg"].values.item()
    assert mine == pytest.approx(theirs, rel=1e-9) and mine > 1e-3


def test_a_subspace_study_with_the_trajectory_measure_gets_the_trajectory_figure_by_default():
    from phasekit.plotting import default_figures, draw

    d = _restricted_study()
    red = pk.run_study(dict(d, grid={"K": [2]}, measures={"trajectory": {}}, integration={"alpha_max": 20.0,
                                                                                           "n_points": 11}),
                       progress=False)
    spec = next(s for s in default_figures(red) if s["kind"] == "trajectories")
    (_, _, fig), = draw(red, spec)
    assert {"R = R_ii", "S = R_in, i != n"} <= {ln.get_label() for ln in fig.axes[0].lines}


def test_steady_state_measures_in_a_subspace_study_equal_the_full_study():
    """erf K = M = 2 under drift 0.01: steady_eg (eps_g, R_ii, Q_ii) and steady_eta inside the subspace equal
    the full space's (they were refused in a subspace)."""
    d = {"name": "st", "model": {"K": 2, "M": 2, "activation": "erf", "eta": 0.5, "drift": 0.01},
         "measures": {"steady_eg": {}, "steady_eta": {"eta_low": 0.05, "eta_high": 2.0}}}
    full = pk.run_study(d, progress=False)
    red = pk.run_study(dict(d, model=dict(d["model"], subspace="site_symmetric")), progress=False)
    for v, rel in (("steady_eg", 1e-9), ("steady_R", 1e-9), ("steady_Q", 1e-9), ("steady_eta", 1e-6),
                   ("steady_eta_eg", 1e-9)):
        assert red[v].values.item() == pytest.approx(full[v].values.item(), rel=rel), v
    assert red["steady_n_unstable"].values.item() == 0


def test_annealing_asymptote_in_a_subspace_study_equals_the_full_study():
    d = {"name": "an", "model": {"K": 2, "M": 2, "activation": "erf", "eta": 1.0, "noise": 0.5, "second_order": True,
                                 "eta_schedule": {"kind": "power_law", "alpha0": 50.0, "p": 1.0}},
         "measures": {"annealing_asymptote": {}}}
    full = pk.run_study(d, progress=False)
    red = pk.run_study(dict(d, model=dict(d["model"], subspace="site_symmetric")), progress=False)
    assert red["annealing_C"].values.item() == pytest.approx(full["annealing_C"].values.item(), rel=1e-6)
    assert red["annealing_rate"].values.item() == pytest.approx(full["annealing_rate"].values.item(), rel=1e-8)
