"""Sweeps: measures against direct integration, failure recording, checkpoint/resume, dask clusters."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

try:
    from tomllib import loads as _toml_loads
except ModuleNotFoundError:  # Python 3.10
    from tomli import loads as _toml_loads

import phasekit as pk
from phasekit.study import runner as sweeps
from phasekit.study.checkpoints import OutdirInUse, load_checkpoints
from phasekit.study.measures import MEASURES, register_measure
from phasekit.study.runner import evaluate_point, sweep
from phasekit.study.schema import StudyError, parse_study

REPO = Path(__file__).resolve().parents[1]
MEASURE_VARS = ["convergence_time", "final_eg", "alpha_end"]


# small_study() as a study file
SMALL_TOML = textwrap.dedent("""
    name = "t"
    [model]
    K = 2
    M = "K"
    activation = "erf"
    second_order = true
    [grid]
    eta = [0.5, 1.5, 40.0]
    K = [1, 2]
    [integration]
    eta_alpha_max = 150.0
    n_points = 301
    rtol = 1e-8
    atol = 1e-11
    [measures.convergence_time]
    threshold = 1e-2
    [measures.final_eg]
""")


def small_study(**over):
    d = {
        "name": "t",
        "model": {"K": 2, "M": "K", "activation": "erf", "second_order": True},
        "grid": {"eta": [0.5, 1.5, 40.0], "K": [1, 2]},
        "integration": {"eta_alpha_max": 150.0, "n_points": 301, "rtol": 1e-8, "atol": 1e-11},
        "measures": {"convergence_time": {"threshold": 1e-2}, "final_eg": {}},
    }
    d.update(over)
    return parse_study(d)


def test_measures_match_direct_integration():
    st = small_study()
    j = 2  # C order over (eta, K): index 2 -> eta = 1.5, K = 1
    p = st.point_parameters(j)
    assert (p["eta"], p["K"]) == (1.5, 1)
    rec = evaluate_point(st, j)
    assert rec["status"] == "ok", rec["message"]
    model = pk.Committee(1, 1, "erf", eta=1.5)
    s0 = sweeps.initial_state(model, 1e-3)
    # Independent route to the crossing time: stop the solver exactly at the threshold (event location).
    exact = pk.integrate(model, s0, 100.0, stop_eg=1e-2, solver={"rtol": 1e-10, "atol": 1e-13})
    assert exact.attrs["status"] == "converged"
    assert rec["convergence_time"] == pytest.approx(exact.attrs["alpha_end"], rel=2e-3)
    full = pk.integrate(model, s0, 100.0, solver={"rtol": 1e-10, "atol": 1e-13})
    assert rec["final_eg"] == pytest.approx(float(full["eg"][-1]), rel=1e-5, abs=1e-9)
    assert rec["alpha_end"] == pytest.approx(100.0)


def test_initial_state_is_diagonal_overlap():
    model = pk.Committee(3, 2, "erf")
    s = sweeps.initial_state(model, 0.01)
    np.testing.assert_allclose(s.R, [[0.01, 0], [0, 0.01], [0, 0]])
    assert np.allclose(s.Q, np.diag(np.diag(s.Q))) and np.all((np.diag(s.Q) >= 0.2) & (np.diag(s.Q) <= 0.3))


def test_sweep_records_divergence_and_failures_without_stopping(tmp_path):
    calls = []

    @register_measure("fragile", {"fragile": ("a test measure", "1")})
    def fragile(model, state0, settings):
        calls.append(model.K)
        if model.K == 2:
            raise RuntimeError("boom at K = 2")
        return {"fragile": float(model.eta)}

    try:
        st = small_study(measures={"convergence_time": {"threshold": 1e-2}, "final_eg": {}, "fragile": {}},
                         model={"K": 2, "M": "K", "activation": "linear"}, grid={"eta": [0.5, 1.0, 40.0], "K": [1, 2]})
        ds = sweep(st, n_workers=0, outdir=tmp_path, progress=False)
    finally:
        MEASURES.pop("fragile")
    assert ds.sizes == {"eta": 3, "K": 2}
    assert len(calls) == 6  # every point was attempted
    # eta = 40 is far beyond eta_c: the linear network's overlaps blow up.
    big = ds.sel(eta=40.0)
    assert list(big["status"].values) == ["diverged", "diverged"]
    assert np.all(np.isnan(big["convergence_time"].values))
    assert all("diverg" in m or "cone" in m or "exceeded" in m for m in big["message"].values)
    k2 = ds.sel(eta=[0.5, 1.0], K=2)
    assert set(k2["status"].values) == {"failed"}
    assert all("fragile: RuntimeError: boom at K = 2" in m for m in k2["message"].values)
    # The other measures of the failed points were still computed.
    assert np.all(np.isfinite(k2["final_eg"].values))
    ok = ds.sel(eta=[0.5, 1.0], K=1)
    assert set(ok["status"].values) == {"ok"}
    np.testing.assert_allclose(ok["fragile"].values, [0.5, 1.0])
    # Provenance and attributes; the written file round-trips.
    assert ds.attrs["study_hash"] == st.hash() and ds.attrs["n_diverged"] == 2 and ds.attrs["n_failed"] == 2
    for v in list(ds.data_vars) + list(ds.coords):
        assert "long_name" in ds[v].attrs and "units" in ds[v].attrs, v
    back = xr.load_dataset(tmp_path / "t.nc", engine="scipy")
    np.testing.assert_array_equal(back["final_eg"].values, ds["final_eg"].values)
    assert list(back["status"].values.ravel()) == list(ds["status"].values.ravel())
    assert back.attrs["study"] == st.to_json() and back.attrs["study_hash"] == st.hash()


def test_resume_computes_only_missing_points(tmp_path):
    st = small_study()
    first = sweep(st, n_workers=0, outdir=tmp_path, progress=False, batch_size=1)
    files = sorted((tmp_path / "checkpoints").glob("batch-*.nc"))
    assert len(files) == 6
    removed = []
    for f in files[:2]:
        removed += [int(j) for j in xr.load_dataset(f, engine="scipy")["point"].values]
        f.unlink()
    again = sweep(st, n_workers=0, outdir=tmp_path, progress=False, batch_size=1)
    recs = load_checkpoints(tmp_path)
    assert sorted(recs["point"].values.tolist()) == list(range(6))  # each point exactly once
    inv_first = set(first["invocation"].values.ravel())
    assert len(inv_first) == 1
    new_points = [int(p) for p, inv in zip(recs["point"].values, recs["invocation"].values) if inv not in inv_first]
    assert sorted(new_points) == sorted(removed)
    for v in MEASURE_VARS:
        np.testing.assert_array_equal(again[v].values, first[v].values)
    # Nothing missing: a third run computes nothing.
    third = sweep(st, n_workers=0, outdir=tmp_path, progress=False)
    assert len(list((tmp_path / "checkpoints").glob("batch-*.nc"))) == 6
    np.testing.assert_array_equal(third["invocation"].values, again["invocation"].values)


def test_changed_study_is_refused_or_fresh(tmp_path):
    st = small_study()
    sweep(st, n_workers=0, outdir=tmp_path, progress=False)
    changed = small_study(grid={"eta": [0.5, 1.5, 40.0], "K": [1, 3]})
    with pytest.raises(StudyError, match="different study"):
        sweep(changed, n_workers=0, outdir=tmp_path, progress=False)
    tighter = small_study(integration={"eta_alpha_max": 150.0, "n_points": 301, "rtol": 1e-9, "atol": 1e-11})
    with pytest.raises(StudyError, match="--fresh"):
        sweep(tighter, n_workers=0, outdir=tmp_path, progress=False)
    ds = sweep(changed, n_workers=0, outdir=tmp_path, progress=False, fresh=True)
    assert list(ds["K"].values) == [1, 3] and set(ds["status"].values.ravel()) <= {"ok", "diverged"}
    recs = load_checkpoints(tmp_path)
    assert len(recs["point"]) == 6 and len(set(recs["invocation"].values)) == 1


def test_recipe_study_is_not_a_sweep(tmp_path):
    st = parse_study({"name": "r", "recipe": "relu_perceptron"})
    with pytest.raises(StudyError, match="recipe"):
        sweep(st, n_workers=0, outdir=tmp_path)


def test_batches_cover_points_once():
    idx = list(range(103))
    for workers, bs in [(1, None), (2, None), (8, None), (2, 7)]:
        batches = sweeps._batches(idx, workers, bs)
        assert sorted(j for b in batches for j in b) == idx
        if bs:
            assert max(map(len, batches)) <= bs
        else:
            assert len(batches) == min(len(idx), 8 * workers) and max(map(len, batches)) <= 64
            assert max(map(len, batches)) - min(map(len, batches)) <= 1


def test_sweep_on_local_cluster_by_scheduler_address(tmp_path):
    from dask.distributed import LocalCluster

    from phasekit.cli import main

    st = small_study()
    serial = sweep(st, n_workers=0, outdir=tmp_path / "serial", progress=False)
    study_file = tmp_path / "t.toml"
    study_file.write_text(SMALL_TOML)
    assert parse_study(_toml_loads(study_file.read_text())).hash() == st.hash()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        # the command line's --scheduler: an existing cluster, addressed by its scheduler address
        code = main(["run", str(study_file), "--scheduler", cluster.scheduler_address, "--outdir",
                     str(tmp_path / "cluster"), "--batch-size", "1", "--no-report", "--no-progress"])
        assert code == 0
        assert len(cluster.scheduler_info["workers"]) == 2  # the cluster was used, not replaced
    ds = xr.load_dataset(tmp_path / "cluster" / "t.nc", engine="scipy")
    pids = {w.split(":")[1] for w in ds["worker"].values.ravel()}
    assert str(os.getpid()) not in pids  # computed by the cluster's worker processes
    for v in MEASURE_VARS:
        np.testing.assert_array_equal(ds[v].values, serial[v].values)
    assert list(ds["status"].values.ravel()) == list(serial["status"].values.ravel())


KILL_STUDY = """
name = "killme"
[model]
K = 2
M = "K"
activation = "erf"
[grid]
eta = {start = 0.2, stop = 1.0, num = 12, spacing = "log"}
K = [2, 3]
[integration]
eta_alpha_max = 150.0
n_points = 201
rtol = 1e-8
atol = 1e-11
[measures.convergence_time]
threshold = 1e-3
[measures.final_eg]
"""


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_killed_sweep_resumes_without_loss_or_repetition(tmp_path):
    study = tmp_path / "killme.toml"
    study.write_text(textwrap.dedent(KILL_STUDY))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "phasekit.cli", "run", str(study), "--outdir", str(out), "--workers", "2",
           "--batch-size", "1", "--no-report", "--no-progress"]
    # A session of its own, so that SIGKILL reaches the sweep and its worker processes (and only them).
    proc = subprocess.Popen(cmd, env=_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckdir = out / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(ckdir.glob("batch-*.nc"))) < 3 and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = load_checkpoints(out)
    assert before is not None, "no checkpoint was written before the kill"
    n_before = len(before["point"])
    assert 0 < n_before < 24, f"the kill came too late ({n_before} points done)"
    assert not (out / "killme.nc").exists()
    assert len(set(before["invocation"].values)) == 1

    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    recs = load_checkpoints(out)
    points = recs["point"].values.tolist()
    assert sorted(points) == list(range(24))  # no finished point was computed twice, none is missing
    inv = dict(zip(points, recs["invocation"].values))
    first_inv = before["invocation"].values[0]
    for p in before["point"].values:  # everything finished before the kill was kept, not recomputed
        assert inv[int(p)] == first_inv
    assert sum(v != first_inv for v in inv.values()) == 24 - n_before

    resumed = xr.load_dataset(out / "killme.nc", engine="scipy")
    whole = sweep(study, n_workers=0, outdir=tmp_path / "whole", progress=False)
    for v in MEASURE_VARS:
        np.testing.assert_array_equal(resumed[v].values, whole[v].values)
    assert list(resumed["status"].values.ravel()) == list(whole["status"].values.ravel())
    np.testing.assert_array_equal(resumed["eta"].values, whole["eta"].values)


def test_plateau_and_fixed_point_measures_against_model_reference(tmp_path):
    """ReLU K = M = 2, first order: MODEL.md's plateau eps_g and escape eigenvalue, and the
    plateau length growing like (1 / lambda_esc) ln(1 / X)."""
    eta = 0.5
    st = parse_study({
        "name": "pl", "model": {"K": 2, "M": 2, "activation": "relu", "second_order": False, "eta": eta},
        "grid": {"X": [1e-2, 1e-3, 1e-4, 1e-5]},
        "integration": {"eta_alpha_max": 120.0, "stop_eg": 1e-4, "rtol": 1e-9, "atol": 1e-12},
        "measures": {"plateau_length": {}, "escape_eigenvalue": {}, "plateau_eg": {}, "convergence_time": {}},
    })
    ds = sweep(st, n_workers=0, outdir=tmp_path, progress=False)
    assert set(ds["status"].values) == {"ok"}, ds["message"].values
    np.testing.assert_allclose(ds["plateau_eg"].values, 0.073613, rtol=1e-4)
    # MODEL.md gives 0.2392 per unit eta * alpha; the measure is per unit alpha.
    np.testing.assert_allclose(ds["escape_eigenvalue"].values, 0.2392 * eta, rtol=1e-3)
    slope = np.polyfit(np.log(1 / ds["X"].values), ds["plateau_length"].values, 1)[0]
    assert slope == pytest.approx(1 / (0.2392 * eta), rel=0.01)
    # Leaving the plateau later means converging later, by the same amount.
    np.testing.assert_allclose(np.diff(ds["convergence_time"].values), np.diff(ds["plateau_length"].values),
                               rtol=0.02)


def test_eta_c_and_asymptotic_eg_measures(tmp_path):
    st = parse_study({
        "name": "ec", "model": {"K": 1, "M": 1, "activation": "relu", "second_order": True},
        "grid": {"eta": [0.3, 1.0]},
        "measures": {"eta_c": {}},
    })
    ds = sweep(st, n_workers=0, outdir=tmp_path / "ec", progress=False)
    # The ReLU perceptron's eta_c = 2 (MODEL.md), whatever eta.
    np.testing.assert_allclose(ds["eta_c"].values, 2.0, rtol=1e-6)

    st = parse_study({
        "name": "ae", "model": {"K": 2, "M": 3, "activation": "erf", "second_order": False, "eta": 0.5},
        "grid": {"X": [1e-2]}, "measures": {"asymptotic_eg": {"tol": 1e-7}},
    })
    ds = sweep(st, n_workers=0, outdir=tmp_path / "ae", progress=False)
    model = pk.Committee(2, 3, "erf", eta=0.5, second_order=False)
    long = pk.integrate(model, sweeps.initial_state(model, 1e-2), 4000.0, n_points=11)
    assert float(ds["asymptotic_eg"].values[0]) == pytest.approx(float(long["eg"][-1]), rel=1e-5)
    assert float(ds["asymptotic_eg"].values[0]) > 0.01  # unrealisable: K < M cannot reach zero error


# --- faults: bad arguments, interruption, lost workers, shared and read-only folders ----------------


def _alive(pid):
    """Whether process ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False



def _children(pid):
    """Pids of the running child processes of ``pid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _wait_for_checkpoints(ckdir, n, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and len(list(ckdir.glob("batch-*.nc"))) < n and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended early: {proc.communicate()[1][-2000:]}"
    assert len(list(ckdir.glob("batch-*.nc"))) >= n, "no checkpoints in time"


def _kill_study(tmp_path):
    study = tmp_path / "killme.toml"
    study.write_text(textwrap.dedent(KILL_STUDY))
    return study


@pytest.mark.parametrize("kwargs, match", [
    ({"n_workers": -1}, r"n_workers: must be an integer in \[0, \d+\]"),
    ({"n_workers": 100_000}, "PHASEKIT_MAX_WORKERS"),
    ({"batch_size": -3}, "batch_size: must be an integer >= 1"),
    ({"batch_size": 0}, "batch_size: must be an integer >= 1"),
    ({"worker_timeout": 0}, "worker_timeout"),
])
def test_bad_execution_arguments_are_refused_before_any_work(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sweep(small_study(), outdir=tmp_path / "o", progress=False, **kwargs)
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_sweep_is_one_line_and_stops_its_workers(tmp_path, how):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "phasekit", "run", str(_kill_study(tmp_path)), "--outdir", str(out),
           "--workers", "2", "--batch-size", "1", "--no-report", "--no-progress"]
    proc = subprocess.Popen(cmd, env=_env(), start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoints(out / "checkpoints", 3, proc)
    workers = _children(proc.pid)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group gets it
    else:
        os.kill(proc.pid, signal.SIGTERM)  # what a batch system does: the main process only
    _, err = proc.communicate(timeout=120)  # returns once no worker holds the pipes any more
    assert proc.returncode == (130 if how == "ctrl-c" else 143), err[-2000:]
    n = len(load_checkpoints(out)["point"])
    word = "interrupted" if how == "ctrl-c" else "terminated"
    assert err.splitlines() == [f"phasekit run: {word}: {n} of 24 points are checkpointed under "
                                f"{out / 'checkpoints'}; rerun to resume"]
    assert not (out / "checkpoints" / "run.lock").exists()
    assert workers and not any(map(_alive, workers))


def test_second_run_on_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "phasekit", "run", str(_kill_study(tmp_path)), "--outdir", str(out),
           "--workers", "0", "--no-report", "--no-progress"]
    first = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_checkpoints(out / "checkpoints", 1, first)
        second = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
        still_running = first.poll() is None
    finally:
        first.send_signal(signal.SIGINT)  # enough seen: stop the first run too
        _, err = first.communicate(timeout=120)
    assert still_running
    assert second.returncode == 1
    lines = second.stderr.splitlines()
    assert len(lines) == 1 and f"{out} is in use by another phasekit run (pid {first.pid} on " in lines[0], lines
    assert first.returncode == 130, err[-2000:]
    recs = load_checkpoints(out)
    points = recs["point"].values.tolist()
    assert len(points) == len(set(points))  # no point computed twice
    assert len(set(recs["invocation"].values)) == 1  # all by the first run
    assert not (out / "checkpoints" / "run.lock").exists()


def test_lock_of_a_dead_run_is_not_stale_and_a_live_one_refuses(tmp_path):
    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    # a run killed with SIGKILL leaves its lock file behind, but not the lock
    (ckdir / "run.lock").write_text(json.dumps({"pid": 2 ** 22 + 1, "host": socket.gethostname(), "started": "x"}))
    ds = sweep(small_study(), n_workers=0, outdir=tmp_path, progress=False)
    assert set(ds["status"].values.ravel()) <= {"ok", "diverged"}
    assert not (ckdir / "run.lock").exists()
    held = sweeps._FolderLock(ckdir / "run.lock")
    held.acquire()
    try:
        with pytest.raises(OutdirInUse, match=f"pid {os.getpid()} on"):
            sweep(small_study(), n_workers=0, outdir=tmp_path, fresh=True, progress=False)
        # a finished study is only read: no lock needed
        assert sweep(small_study(), n_workers=0, outdir=tmp_path, progress=False).sizes == ds.sizes
    finally:
        held.release()


def test_damaged_manifest_is_rebuilt_never_discarded(tmp_path):
    st = small_study()
    first = sweep(st, n_workers=0, outdir=tmp_path, progress=False)
    manifest = tmp_path / "checkpoints" / "study.json"
    manifest.write_text(manifest.read_text()[:20])  # e.g. the disk filled up while it was written
    with pytest.warns(UserWarning, match="was damaged: rebuilt for this study from 6 checkpoint files"):
        again = sweep(st, n_workers=0, outdir=tmp_path, progress=False)
    np.testing.assert_array_equal(again["invocation"].values, first["invocation"].values)  # nothing recomputed
    assert json.loads(manifest.read_text())["hash"] == st.hash()
    # Checkpoints that do not carry the study's hash (older phasekit) cannot be matched automatically.
    for f in (tmp_path / "checkpoints").glob("batch-*.nc"):
        ds = xr.load_dataset(f, engine="scipy")
        ds.attrs.pop("study_hash")
        ds.to_netcdf(f, engine="scipy")
    manifest.write_text("{not json")
    with pytest.raises(StudyError) as info:
        sweep(st, n_workers=0, outdir=tmp_path, progress=False)
    msg = str(info.value)
    assert "unreadable (not valid JSON" in msg and "--repair" in msg and "keeps every checkpoint" in msg
    assert "different study" not in msg and "--fresh" not in msg
    assert len(list((tmp_path / "checkpoints").glob("batch-*.nc"))) == 6
    with pytest.warns(UserWarning, match="6 adopted by --repair"):
        repaired = sweep(st, n_workers=0, outdir=tmp_path, progress=False, repair=True)
    np.testing.assert_array_equal(repaired["invocation"].values, first["invocation"].values)
    for v in MEASURE_VARS:
        np.testing.assert_array_equal(repaired[v].values, first[v].values)


def test_repair_from_the_command_line(tmp_path, capsys):
    from phasekit.cli import main

    study_file = tmp_path / "t.toml"
    study_file.write_text(SMALL_TOML)
    out = tmp_path / "o"
    args = ["run", str(study_file), "--outdir", str(out), "--workers", "0", "--no-report", "--no-progress"]
    assert main(args) == 0
    (out / "checkpoints" / "study.json").unlink()
    capsys.readouterr()
    assert main(args) == 0  # every checkpoint carries the hash: rebuilt with a one-line remark
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("phasekit: warning: ") and "was missing: rebuilt" in err[0]
    assert main(args + ["--repair", "--fresh"]) == 2


def test_finished_study_in_a_read_only_folder(tmp_path, capsys):
    from phasekit.cli import main

    study_file = tmp_path / "t.toml"
    study_file.write_text(SMALL_TOML)
    out = tmp_path / "ro"
    run = ["run", str(study_file), "--outdir", str(out), "--workers", "0", "--no-progress"]
    assert main(run + ["--no-report"]) == 0
    snapshot = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*")}
    paths = [out, *out.rglob("*")]
    for p in paths:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        assert main(run + ["--report-dir", str(tmp_path / "rep")]) == 0
        assert (tmp_path / "rep" / "report.md").stat().st_size > 0
        assert main(["report", str(out / "t.nc"), "--outdir", str(tmp_path / "rep2"), "--no-trajectories"]) == 0
        ds = sweep(study_file, outdir=out, progress=False)
        assert ds.attrs["n_ok"] + ds.attrs["n_diverged"] == 6
        if os.geteuid() != 0:  # root may write anyway
            capsys.readouterr()
            assert main(run) == 0
            assert "report not written" in capsys.readouterr().err
    finally:
        for p in paths:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*")} == snapshot  # nothing written


def test_failed_points_give_exit_status_1(tmp_path, capsys):
    from phasekit.cli import main
    from phasekit.report import write_report

    @register_measure("fragile", {"fragile": ("a test measure", "1")})
    def fragile(model, state0, settings):
        if model.K == 2:
            raise RuntimeError("boom at K = 2\n  | second line of the message")
        return {"fragile": 1.0}

    try:
        study_file = tmp_path / "f.toml"
        study_file.write_text('name = "f"\n[grid]\neta = [0.5, 1.0]\nK = [1, 2]\n[integration]\n'
                              'eta_alpha_max = 10.0\n[measures.fragile]\n')
        code = main(["run", str(study_file), "--outdir", str(tmp_path / "o"), "--workers", "0", "--no-report",
                     "--no-progress"])
        err = capsys.readouterr().err.splitlines()
        text = write_report(tmp_path / "o" / "f.nc", trajectories=False).read_text()
    finally:
        MEASURES.pop("fragile")
    assert code == 1
    assert len(err) == 1 and err[0].startswith("phasekit run: 2 of 4 points failed or are missing")
    # the report's status table keeps one row per point
    rows = [line for line in text.splitlines() if "| failed |" in line and "boom" in line]
    assert len(rows) == 2
    assert all(r.endswith("boom at K = 2 \\| second line of the message |") for r in rows), rows


def _cluster_run(tmp_path, cluster, *extra):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "phasekit", "run", str(_kill_study(tmp_path)), "--outdir", str(out),
           "--scheduler", cluster.scheduler_address, "--batch-size", "1", "--no-report", "--no-progress", *extra]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoints(out / "checkpoints", 2, proc)
    return proc, out


def test_lost_scheduler_stops_with_one_line_and_status_1(tmp_path):
    from dask.distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        proc, out = _cluster_run(tmp_path, cluster)
    finally:
        cluster.close()  # the scheduler goes away mid-run
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    n = len(load_checkpoints(out)["point"])
    assert err.splitlines() == [f"phasekit run: lost the connection to the dask scheduler at "
                                f"{cluster.scheduler_address}: {n} of 24 points are checkpointed under "
                                f"{out / 'checkpoints'}; rerun to resume"]
    assert not (out / "killme.nc").exists()


def test_no_worker_left_stops_with_one_line_and_status_1(tmp_path):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        proc, out = _cluster_run(tmp_path, cluster, "--worker-timeout", "1.5")
        cluster.scale(0)  # every worker gone, the scheduler still there
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"phasekit run: no dask worker for 1.5 s at "
                                                   f"{cluster.scheduler_address} (all workers gone?): ")
    assert lines[0].endswith(f"of 24 points are checkpointed under {out / 'checkpoints'}; rerun to resume")
