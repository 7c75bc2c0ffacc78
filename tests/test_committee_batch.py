"""Committee grid points integrated as one batch by the runner (phasekit.study.committee_batch)."""

import json

import numpy as np
from helpers_study import small_study

from phasekit.study import committee_batch, runner
from phasekit.study.runner import run_study


def test_a_study_batched_equals_it_point_by_point(tmp_path, monkeypatch):
    """erf, K = 1 and 2, converging and diverging, with convergence times off the stop threshold."""
    grid = {"eta": [0.5, 1.5, 40.0], "K": [1, 2]}
    st = small_study(grid=grid, integration={"eta_alpha_max": 100.0, "n_points": 41, "stop_eg": 1e-3},
                     measures={"convergence_time": {"threshold": 1e-2}, "final_eg": {}, "trajectory": {}})
    batches = []
    real = committee_batch.integrate_batch

    def spy(models, *args, **kwargs):
        batches.append(len(models))
        return real(models, *args, **kwargs)

    monkeypatch.setattr(committee_batch, "integrate_batch", spy)
    per = run_study(st, progress=False)
    assert batches == []  # the default, batch_points = 1: every point alone
    bat = run_study(st, progress=False, parallel={"batch_points": 64})
    assert sorted(batches) == [3, 3]  # K = 1 and K = 2
    assert (bat["status"].values == per["status"].values).all()
    for v in ("convergence_time", "final_eg", "alpha_end"):
        np.testing.assert_allclose(bat[v].values, per[v].values, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(bat["R"].values, per["R"].values, rtol=0, atol=1e-6)
    np.testing.assert_allclose(bat["alpha"].values, per["alpha"].values, rtol=1e-6)  # the last: alpha_end
    # resumed from checkpoints, a point is the same whichever points it is batched with
    st = small_study(grid=grid, integration={"eta_alpha_max": 100.0, "n_points": 41, "stop_eg": 1e-3},
                     measures={"convergence_time": {"threshold": 1e-2}, "final_eg": {}, "trajectory": {}},
                     run={"batch_points": 64})  # (the study's own [run] table)
    disk = run_study(st, outdir=tmp_path, progress=False)
    files = sorted((tmp_path / "checkpoints").glob("batch-*.nc"))
    assert len(files) == 6  # each point checkpointed alone
    for f in files[::2]:
        f.unlink()
    again = run_study(st, outdir=tmp_path, progress=False)
    for v in ("convergence_time", "alpha_end", "R"):
        np.testing.assert_array_equal(again[v].values, disk[v].values)
        np.testing.assert_array_equal(again[v].values, bat[v].values)
    # (eps_g of the samples is computed for a batch at once: equal to its last bits)
    np.testing.assert_allclose(again["final_eg"].values, bat["final_eg"].values, rtol=1e-13)


def test_only_models_rounded_alone_are_batched():
    """A quadrature activation (its expectations rounded with the batch) stays per point; relu is batched."""
    st = small_study(grid={"eta": [0.5, 1.5]}, model={"K": 2, "M": "K", "activation": "tanh", "second_order": True})
    pf = committee_batch.Prefetch(st, [(0, True, False), (1, True, False)])
    assert pf.enabled and pf._point(0) is None and pf.take(0) is None
    relu2 = small_study(grid={"eta": [0.5, 1.5]}, model={"K": 2, "M": "K", "activation": "relu",
                                                          "second_order": True})
    assert committee_batch.Prefetch(relu2, [(0, True, False)])._point(0) is not None
    first = small_study(grid={"eta": [0.5, 1.5]}, model={"K": 2, "M": "K", "activation": "relu",
                                                          "second_order": False})
    assert committee_batch.Prefetch(first, [(0, True, False)])._point(0) is not None
    lsoda = small_study(solver={"method": "LSODA"})
    assert not committee_batch.Prefetch(lsoda, [(0, True, False)]).enabled


def test_points_without_stored_samples_take_two_samples(monkeypatch):
    """Only a point whose samples are read is sampled densely; the others keep their start and their
    end, with the very same end, crossing and eps_g; relu second order batched."""
    grid = {"eta": [0.5, 1.5], "activation": ["erf", "relu"]}
    kw = dict(grid=grid, model={"K": 2, "M": "K", "second_order": True},
              integration={"eta_alpha_max": 60.0, "n_points": 41, "stop_eg": 1e-2})
    calls = []
    real = committee_batch.integrate_batch

    def spy(models, *args, **kwargs):
        calls.append((tuple(np.asarray(kwargs["n_points"]).tolist()), len(models)))
        return real(models, *args, **kwargs)

    monkeypatch.setattr(committee_batch, "integrate_batch", spy)
    ends = small_study(measures={"convergence_time": {"threshold": 3e-2}, "final_eg": {}}, **kw)
    per = run_study(ends, progress=False)
    bare = run_study(ends, progress=False, parallel={"batch_points": 64})
    assert sorted(calls) == [((2, 2), 2), ((2, 2), 2)]  # erf and relu, start and end only
    calls.clear()
    sampled = run_study(small_study(measures={"convergence_time": {"threshold": 3e-2}, "final_eg": {},
                                              "trajectory": {}}, **kw), progress=False,
                        parallel={"batch_points": 64})
    assert sorted(calls) == [((41, 41), 2), ((41, 41), 2)]
    assert (bare["status"].values == per["status"].values).all()
    for v in ("convergence_time", "final_eg", "alpha_end"):
        np.testing.assert_allclose(bare[v].values, per[v].values, rtol=1e-6, atol=1e-12)
    for v in ("convergence_time", "alpha_end"):
        np.testing.assert_array_equal(bare[v].values, sampled[v].values)
    # (eps_g of the samples is computed for a batch at once: equal to its last bits)
    np.testing.assert_allclose(bare["final_eg"].values, sampled["final_eg"].values, rtol=1e-13)


def test_stored_trajectories_are_batched_with_their_shape(monkeypatch):
    """A [report] trajectory point shares its shape's batch (sampled densely, its mates at their start
    and end); its stored trajectory is the one `integrate` gives, and its mates' numbers are unchanged."""
    report = {"trajectories": [{"eta": 1.5, "K": 2}]}
    kw = dict(grid={"eta": [0.5, 1.5], "K": [2]}, integration={"eta_alpha_max": 100.0, "n_points": 61})
    st = small_study(report=report, **kw)
    j = st.trajectory_points()[0]
    calls = []
    real = committee_batch.integrate_batch

    def spy(models, *args, **kwargs):
        calls.append(tuple(np.asarray(kwargs["n_points"]).tolist()))
        return real(models, *args, **kwargs)

    monkeypatch.setattr(committee_batch, "integrate_batch", spy)
    bat = run_study(st, progress=False, parallel={"batch_points": 64})
    assert calls == [tuple(61 if i == j else 2 for i in range(st.n_points))]
    per = run_study(st, progress=False)  # every point alone: the stored trajectory by `integrate`
    np.testing.assert_array_equal(bat["trajectory_status"].values, per["trajectory_status"].values)
    for v in ("alpha", "eg", "R", "Q"):
        np.testing.assert_allclose(bat[f"trajectory_{v}"].values, per[f"trajectory_{v}"].values, rtol=1e-6,
                                   atol=1e-12)
    plain = run_study(small_study(**kw), progress=False, parallel={"batch_points": 64})
    for v in ("status", "convergence_time", "alpha_end"):
        np.testing.assert_array_equal(bat[v].values, plain[v].values)
    np.testing.assert_allclose(bat["final_eg"].values, plain["final_eg"].values, rtol=1e-13)


def test_worker_tasks_hold_one_shape_each_the_largest_first(monkeypatch):
    """Two workers get tasks of one shape each (K = 2 before K = 1), and their results are the serial ones."""
    grid = {"K": [1, 2], "eta": [0.5, 1.5, 40.0]}
    st = small_study(grid=grid, integration={"eta_alpha_max": 60.0, "n_points": 41, "stop_eg": 1e-2},
                     run={"batch_points": 64})
    tasks = [(j, True, False) for j in range(st.n_points)]
    K = [json.loads(st.point_key(j))["K"] for j in range(st.n_points)]
    groups = committee_batch.Prefetch(st, tasks).worker_tasks(tasks, 2)
    assert [[K[t[0]] for t in g] for g in groups] == [[2, 2], [2], [1, 1], [1]]
    assert sorted(t for g in groups for t in g) == tasks
    serial = run_study(st, progress=False)
    sent = []
    real = runner.imap_unordered

    def spy(func, batches, *args, **kwargs):
        sent.extend(batches)
        return real(func, batches, *args, **kwargs)

    monkeypatch.setattr(runner, "imap_unordered", spy)
    two = run_study(st, progress=False, parallel={"n_workers": 2, "batch_size": 3})
    assert [[K[t[0]] for t in g] for g in sent] == [[2, 2, 2], [1, 1, 1]]
    for v in ("status", "convergence_time", "final_eg", "alpha_end"):
        np.testing.assert_array_equal(two[v].values, serial[v].values)
