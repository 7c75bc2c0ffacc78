"""The grid runner: failures recorded, checkpoint and resume (also after SIGKILL, for every system's grid),
stored trajectories, analyses, dask clusters, interruption."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

from helpers_study import (
    LONG_ETA,
    MEASURE_VARS,
    SMALL_TOML,
    alive,
    children,
    env,
    kill_study,
    local_cluster,
    phasekit_cmd,
    small_study,
    wait_for_checkpoints,
)
from phasekit.core.results import status_names
from phasekit.study import runner
from phasekit.study.checkpoints import load_checkpoints
from phasekit.study.measures import MEASURES, register_measure
from phasekit.study.runner import run_study, sweep
from phasekit.study.schema import StudyError, load_study, parse_study


def names(ds):
    return list(status_names(ds["status"].values).ravel())


def test_run_records_divergence_and_failures_without_stopping(tmp_path):
    calls = []

    @register_measure("fragile", {"fragile": ("a test measure", "1")})
    def fragile(ctx, settings):
        calls.append(ctx.params["K"])
        if ctx.params["K"] == 2:
            raise RuntimeError("boom at K = 2")
        return {"fragile": float(ctx.params["eta"])}

    try:
        st = small_study(measures={"convergence_time": {"threshold": 1e-2}, "final_eg": {}, "fragile": {}},
                         model={"K": 2, "M": "K", "activation": "linear"}, grid={"eta": [0.5, 1.0, 40.0], "K": [1, 2]})
        ds = run_study(st, outdir=tmp_path, parallel={"n_workers": 0}, progress=False)
    finally:
        MEASURES.pop("fragile")
    assert ds.sizes == {"eta": 3, "K": 2}
    assert len(calls) == 6  # every point was attempted
    big = ds.sel(eta=40.0)
    assert list(status_names(big["status"].values)) == ["diverged", "diverged"]
    assert np.all(np.isnan(big["convergence_time"].values))
    assert all("exceeded" in m or "cone" in m for m in big["message"].values)
    k2 = ds.sel(eta=[0.5, 1.0], K=2)
    assert set(status_names(k2["status"].values)) == {"failed"}
    assert all("fragile: RuntimeError: boom at K = 2" in m for m in k2["message"].values)
    assert np.all(np.isfinite(k2["final_eg"].values))  # the other measures of the failed points still ran
    ok = ds.sel(eta=[0.5, 1.0], K=1)
    assert set(status_names(ok["status"].values)) <= {"ok", "converged", "not_reached"}
    np.testing.assert_allclose(ok["fragile"].values, [0.5, 1.0])
    # status: CF flags; provenance; M as a value over K; every variable has long_name and units
    assert ds["status"].attrs["flag_meanings"].split()[:2] == ["ok", "converged"]
    assert ds.attrs["study_hash"] == st.hash() and ds.attrs["n_diverged"] == 2 and ds.attrs["n_failed"] == 2
    assert ds["M"].dims == ("K",) and list(ds["M"].values) == [1, 2]
    for v in list(ds.data_vars) + list(ds.coords):
        assert "long_name" in ds[v].attrs and "units" in ds[v].attrs, v
    back = xr.load_dataset(tmp_path / "t.nc", engine="scipy")
    np.testing.assert_array_equal(back["final_eg"].values, ds["final_eg"].values)
    assert names(back) == names(ds)
    assert back.attrs["study"] == st.to_json()


def test_in_memory_run_equals_the_checkpointed_run(tmp_path):
    st = small_study()
    mem = run_study(st, progress=False)
    disk = run_study(st, outdir=tmp_path, progress=False, parallel={"batch_size": 2})
    for v in MEASURE_VARS:
        np.testing.assert_array_equal(mem[v].values, disk[v].values)
    assert names(mem) == names(disk)
    assert sweep(st, outdir=tmp_path, progress=False)["final_eg"].equals(disk["final_eg"])


def test_resume_computes_only_missing_points(tmp_path):
    st = small_study()
    first = run_study(st, outdir=tmp_path, progress=False, parallel={"n_workers": 0, "batch_size": 1})
    files = sorted((tmp_path / "checkpoints").glob("batch-*.nc"))
    assert len(files) == 6
    removed = []
    for f in files[:2]:
        removed += [int(j) for j in xr.load_dataset(f, engine="scipy")["point"].values]
        f.unlink()
    again = run_study(st, outdir=tmp_path, progress=False, parallel={"batch_size": 1})
    recs = load_checkpoints(tmp_path)
    assert sorted(recs["point"].values.tolist()) == list(range(6))  # each point exactly once
    inv_first = set(first["invocation"].values.ravel())
    assert len(inv_first) == 1
    new_points = [int(p) for p, inv in zip(recs["point"].values, recs["invocation"].values) if inv not in inv_first]
    assert sorted(new_points) == sorted(removed)
    for v in MEASURE_VARS:
        np.testing.assert_array_equal(again[v].values, first[v].values)
    third = run_study(st, outdir=tmp_path, progress=False)  # nothing missing: nothing computed
    assert len(list((tmp_path / "checkpoints").glob("batch-*.nc"))) == 6
    np.testing.assert_array_equal(third["invocation"].values, again["invocation"].values)


def test_finished_study_says_nothing_to_compute(tmp_path, capsys):
    st = small_study()
    run_study(st, outdir=tmp_path, progress=False)
    capsys.readouterr()
    run_study(st, outdir=tmp_path, progress=True)
    assert f"t: nothing to compute: all 6 points are checkpointed under {tmp_path / 'checkpoints'}" in \
        capsys.readouterr().err


def test_stored_trajectories_are_computed_for_the_points_that_lack_them(tmp_path):
    st = small_study(report={"trajectories": [{"eta": 1.5, "K": 2}]})
    first = run_study(st, outdir=tmp_path, progress=False)
    assert first.sizes["trajectory"] == 1 and list(first["trajectory_point"].values) == [3]
    a = first["trajectory_alpha"].values[0]
    n = int(np.isfinite(a).sum())
    assert a[n - 1] == first["trajectory_alpha_end"].values[0]  # sampled up to where the run stopped
    more = small_study(report={"trajectories": [{"eta": 1.5, "K": 2}, {"eta": 0.5, "K": 1}]})
    assert more.hash() == st.hash()  # the points are the same study
    second = run_study(more, outdir=tmp_path, progress=False)
    recs = load_checkpoints(tmp_path)
    assert recs.sizes["point"] == 7 and int(recs["has_record"].sum()) == 6  # one trajectory-only entry
    np.testing.assert_array_equal(second["trajectory_eg"].values[0], first["trajectory_eg"].values[0])
    np.testing.assert_array_equal(second["invocation"].values, first["invocation"].values)
    assert status_names(second["trajectory_status"].values).tolist() == ["ok", "ok"]


def test_analyses_are_stored_and_refine_probes_between_points():
    st = parse_study({"name": "o", "model": {"K": 1, "M": 1, "activation": "linear", "second_order": True},
                      "initial": {"X": 0.0, "Q0": 0.25}, "grid": {"eta": [0.4, 0.7, 0.9, 1.2, 1.5, 1.8]},
                      "integration": {"eta_alpha_max": 2000.0, "stop_eg": 1e-3, "n_points": 2},
                      "solver": {"rtol": 1e-10},
                      "measures": {"convergence_time": {}},
                      "analyses": {"optimum": {"var": "convergence_time", "over": "eta", "refine": True}}})
    ds = run_study(st, progress=False)
    # the linear perceptron: t(eta) = ln(eg0 / thr) / (2 eta - eta^2), smallest at eta = 1
    assert float(ds["eta_opt"]) == pytest.approx(1.0, abs=1e-4)
    assert float(ds["convergence_time_min"]) == pytest.approx(np.log(625.0), rel=1e-6)
    assert ds["eta_opt"].attrs["analysis"] == "optimum"


def test_extended_grid_computes_only_the_new_points(tmp_path, capsys):
    st = small_study(grid={"eta": [0.5, 1.5, 40.0], "K": [2]})
    first = run_study(st, outdir=tmp_path, progress=False)
    old_run = first["invocation"].values[0, 0]
    more = small_study(grid={"eta": [0.5, 1.0, 1.5, 40.0], "K": [2]})
    assert more.hash() == st.hash()  # new values on an axis are not a different study
    second = run_study(more, outdir=tmp_path, progress=False)
    runs = second["invocation"].values[:, 0]
    assert list(runs == old_run) == [True, False, True, True]  # eta = 1.0 only
    assert load_checkpoints(tmp_path).sizes["point"] == 4
    old = second.sel(eta=[0.5, 1.5, 40.0])
    for v in MEASURE_VARS + ["status", "message"]:
        np.testing.assert_array_equal(old[v].values, first[v].values)
    alone = run_study(small_study(grid={"eta": [1.0], "K": [2]}), progress=False)  # the new point by itself
    for v in MEASURE_VARS:
        np.testing.assert_array_equal(second[v].sel(eta=[1.0]).values, alone[v].values)
    # Values and axes reordered, values removed: nothing to compute, every value where it was.
    capsys.readouterr()
    shuffled = small_study(grid={"K": [2], "eta": [40.0, 1.0, 0.5]})
    third = run_study(shuffled, outdir=tmp_path, progress=True)
    assert "nothing to compute" in capsys.readouterr().err
    assert third["convergence_time"].dims == ("K", "eta") and load_checkpoints(tmp_path).sizes["point"] == 4
    for eta in (40.0, 1.0, 0.5):
        for v in MEASURE_VARS + ["invocation"]:
            np.testing.assert_array_equal(third[v].sel(K=2, eta=eta).values, second[v].sel(K=2, eta=eta).values)
    manifest = json.loads((tmp_path / "checkpoints" / "study.json").read_text())
    assert manifest["study"]["grid"] == {"K": [2], "eta": [40.0, 1.0, 0.5]}  # the study the dataset now holds


def test_changed_study_is_refused_or_fresh(tmp_path):
    st = small_study()
    run_study(st, outdir=tmp_path, progress=False)
    for changed, what in [
            (small_study(measures={"convergence_time": {"threshold": 1e-3}, "final_eg": {}}),
             "the measures or their settings changed"),
            (small_study(solver={"rtol": 1e-9, "atol": 1e-11}), "the solver options changed"),
            (small_study(model={"K": 2, "M": "K", "activation": "erf", "second_order": False}),
             "the model, initial or integration settings changed"),
            (small_study(grid={"eta": [0.5, 1.5, 40.0], "K": [1, 2], "X": [1e-3]}), "the grid's axes changed")]:
        assert changed.hash() != st.hash()
        with pytest.raises(StudyError) as info:
            run_study(changed, outdir=tmp_path, progress=False)
        msg = str(info.value)
        assert "\n" not in msg and "different study" in msg and what in msg and "--fresh" in msg, msg
    tighter = small_study(solver={"rtol": 1e-9, "atol": 1e-11})
    ds = run_study(tighter, outdir=tmp_path, progress=False, fresh=True)
    assert ds.attrs["study_hash"] == tighter.hash()
    recs = load_checkpoints(tmp_path)
    assert len(recs["point"]) == 6 and len(set(recs["invocation"].values)) == 1


def test_batches_cover_points_once():
    idx = list(range(103))
    for workers, bs in [(1, None), (2, None), (8, None), (2, 7)]:
        batches = runner._batches(idx, workers, bs)
        assert sorted(j for b in batches for j in b) == idx
        if bs:
            assert max(map(len, batches)) <= bs
        elif workers == 1:
            assert len(batches) == min(len(idx), 8 * workers) and max(map(len, batches)) <= 64
            assert max(map(len, batches)) - min(map(len, batches)) <= 1
        else:  # each worker's first task is one point (progress from the first point), the rest even
            assert [len(b) for b in batches[:workers]] == [1] * workers
            rest = list(map(len, batches[workers:]))
            assert len(rest) == min(len(idx), 8 * workers) and max(rest) <= 64 and max(rest) - min(rest) <= 1


@pytest.mark.parametrize("parallel, match", [
    ({"n_workers": -1}, r"n_workers: must be an integer in \[0, \d+\]"),
    ({"n_workers": 100_000}, "PHASEKIT_MAX_WORKERS"),
    ({"batch_size": -3}, "batch_size: must be an integer >= 1"),
    ({"batch_size": 0}, "batch_size: must be an integer >= 1"),
    ({"worker_timeout": 0}, "worker_timeout"),
    ({"workers": 2}, "unknown option"),
])
def test_bad_execution_arguments_are_refused_before_any_work(tmp_path, parallel, match):
    with pytest.raises(ValueError, match=match):
        run_study(small_study(), outdir=tmp_path / "o", progress=False, parallel=parallel)
    assert not (tmp_path / "o").exists()


def test_run_on_local_cluster_by_scheduler_address(tmp_path):
    from phasekit.cli import main

    st = small_study()
    serial = run_study(st, progress=False)
    study_file = tmp_path / "t.toml"
    study_file.write_text(SMALL_TOML)
    with local_cluster(2) as cluster:
        code = main(["run", str(study_file), "--scheduler", cluster.scheduler_address, "--outdir",
                     str(tmp_path / "cluster"), "--batch-size", "1", "--no-report", "--no-progress"])
        assert code == 0
        assert len(cluster.scheduler_info["workers"]) == 2  # the cluster was used, not replaced
    ds = xr.load_dataset(tmp_path / "cluster" / "t.nc", engine="scipy")
    pids = {w.split(":")[1] for w in ds["worker"].values.ravel()}
    assert str(os.getpid()) not in pids  # computed by the cluster's worker processes
    for v in MEASURE_VARS:
        np.testing.assert_array_equal(ds[v].values, serial[v].values)
    assert names(ds) == names(serial)


def _kill_and_resume(tmp_path, cmd, out, total, whole, n_ck=3):
    """SIGKILL ``cmd`` once ``n_ck`` checkpoints exist, rerun it, and check that nothing finished was
    recomputed and that the result equals the uninterrupted ``whole``."""
    proc = subprocess.Popen(cmd, env=env(), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_for_checkpoints(out / "checkpoints", n_ck, proc, timeout=180)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker processes (and only them)
    proc.wait()
    before = load_checkpoints(out)
    n_before = len(before["point"])
    assert 0 < n_before < total, f"the kill came too late ({n_before} points done)"
    assert len(set(before["invocation"].values)) == 1
    done = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    recs = load_checkpoints(out)
    points = recs["point"].values.tolist()
    assert sorted(points) == list(range(total))  # no finished point computed twice, none missing
    inv = dict(zip(points, recs["invocation"].values))
    first = before["invocation"].values[0]
    for p in before["point"].values:  # everything finished before the kill was kept
        assert inv[int(p)] == first
    assert sum(v != first for v in inv.values()) == total - n_before
    resumed = xr.load_dataset(next(out.glob("*.nc")), engine="scipy")
    for v in whole.data_vars:
        if v in ("seconds", "invocation", "worker") or whole[v].dtype.kind not in "fiu":
            continue
        np.testing.assert_array_equal(resumed[v].values, whole[v].values, err_msg=v)
    assert names(resumed) == names(whole)


def test_killed_study_file_run_resumes_without_loss_or_repetition(tmp_path):
    study = kill_study(tmp_path)
    out = tmp_path / "out"
    cmd = phasekit_cmd("run", study, "--outdir", out, "--workers", "2", "--batch-size", "1", "--no-report",
                       "--no-progress")
    _kill_and_resume(tmp_path, cmd, out, 24, run_study(load_study(study), progress=False))


GRID_SCRIPTS = {
    "plateau_scaling": ("import phasekit as pk, numpy as np\n"
                        "m = pk.Committee(2, 2, 'relu', eta=1.0, second_order=False)\n"
                        "pk.plateau_scaling(m, np.logspace(-2, -12, 16), outdir=OUT, n_workers=2)\n", 16),
    "phase_diagram": ("import phasekit as pk, numpy as np\n"
                      "pk.phase_diagram('tanh', np.linspace(0.5, 4.0, 12), np.linspace(0.0, 0.5, 8), outdir=OUT,"
                      " n_workers=2)\n", 96),
    "lazy_sweep": ("import phasekit as pk, numpy as np\n"
                   "pk.lazy_sweep(np.geomspace(0.05, 5.0, 12), [4], [0], d=6, m0=2, T=20.0, outdir=OUT, n_workers=2)\n",
                   12),
}


@pytest.mark.parametrize("grid", sorted(GRID_SCRIPTS))
def test_every_grid_survives_sigkill_and_resumes(tmp_path, grid):
    """plateau_scaling, a propagation phase diagram and a lazy-regime sweep: killed, resumed, equal to one run."""
    script, total = GRID_SCRIPTS[grid]
    out = tmp_path / "out"
    path = tmp_path / "grid.py"
    path.write_text(f"OUT = {str(out)!r}\n" + script)
    whole = _whole(script)
    cmd = [sys.executable, str(path)]
    _kill_and_resume(tmp_path, cmd, out, total, whole, n_ck=2)


def _whole(script):
    """The grid's dataset from one uninterrupted in-memory run."""
    ns: dict = {}
    code = script.replace("outdir=OUT, ", "").replace("n_workers=2", "n_workers=0")
    last = code.strip().splitlines()[-1]
    exec(compile("\n".join(code.strip().splitlines()[:-1]) + f"\nRESULT = {last}\n", "whole", "exec"), ns)
    return ns["RESULT"]


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads processes from /proc")
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_run_is_one_line_and_stops_its_workers(tmp_path, how):
    out = tmp_path / "out"
    cmd = phasekit_cmd("run", kill_study(tmp_path, LONG_ETA), "--outdir", out, "--workers", "2", "--batch-size",
                       "1", "--no-report", "--no-progress")
    proc = subprocess.Popen(cmd, env=env(), start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_checkpoints(out / "checkpoints", 3, proc)
    workers = children(proc.pid)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group gets it
    else:
        os.kill(proc.pid, signal.SIGTERM)  # what a batch system does: the main process only
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (130 if how == "ctrl-c" else 143), err[-2000:]
    n = len(load_checkpoints(out)["point"])
    word = "interrupted" if how == "ctrl-c" else "terminated"
    assert err.splitlines() == [f"phasekit run: {word}: {n} of {2 * LONG_ETA} points are checkpointed under "
                                f"{out / 'checkpoints'}; rerun to resume"]
    assert not (out / "checkpoints" / "run.lock").exists()
    assert workers and not any(map(alive, workers))


def test_failed_points_give_exit_status_1(tmp_path, capsys):
    from phasekit.cli import main
    from phasekit.report import write_report

    @register_measure("fragile", {"fragile": ("a test measure", "1")})
    def fragile(ctx, settings):
        if ctx.params["K"] == 2:
            raise RuntimeError("boom at K = 2\n  | second line of the message")
        return {"fragile": 1.0}

    try:
        study_file = tmp_path / "f.toml"
        study_file.write_text(textwrap.dedent('''
            name = "f"
            [grid]
            eta = [0.5, 1.0]
            K = [1, 2]
            [integration]
            eta_alpha_max = 10.0
            [measures.fragile]
        '''))
        code = main(["run", str(study_file), "--outdir", str(tmp_path / "o"), "--workers", "0", "--no-report",
                     "--no-progress"])
        err = capsys.readouterr().err.splitlines()
        text = write_report(tmp_path / "o" / "f.nc", trajectories=False).read_text()
    finally:
        MEASURES.pop("fragile")
    assert code == 1
    assert len(err) == 1 and err[0].startswith("phasekit run: 2 of 4 points failed or are missing")
    rows = [line for line in text.splitlines() if "| failed |" in line and "boom" in line]
    assert len(rows) == 2
    assert all(r.endswith("boom at K = 2 \\| second line of the message |") for r in rows), rows


def _cluster_run(tmp_path, cluster, *extra):
    out = tmp_path / "out"
    cmd = phasekit_cmd("run", kill_study(tmp_path, LONG_ETA), "--outdir", out, "--scheduler",
                       cluster.scheduler_address, "--batch-size", "1", "--no-report", "--no-progress", *extra)
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoints(out / "checkpoints", 2, proc)
    return proc, out


def test_lost_scheduler_stops_with_one_line_and_status_1(tmp_path):
    cluster = local_cluster(1)
    try:
        proc, out = _cluster_run(tmp_path, cluster)
    finally:
        cluster.close()  # the scheduler goes away mid-run
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    n = len(load_checkpoints(out)["point"])
    assert err.splitlines() == [f"phasekit run: lost the connection to the dask scheduler at "
                                f"{cluster.scheduler_address}: {n} of {2 * LONG_ETA} points are checkpointed under "
                                f"{out / 'checkpoints'}; rerun to resume"]
    assert not (out / "killme.nc").exists()


def test_no_worker_left_stops_with_one_line_and_status_1(tmp_path):
    with local_cluster(1) as cluster:
        proc, out = _cluster_run(tmp_path, cluster, "--worker-timeout", "1.5")
        cluster.scale(0)  # every worker gone, the scheduler still there
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"phasekit run: no dask worker for 1.5 s at "
                                                   f"{cluster.scheduler_address} (all workers gone?): ")
    assert lines[0].endswith(f"of {2 * LONG_ETA} points are checkpointed under {out / 'checkpoints'}; rerun to resume")
