"""Checkpoint files, their manifest and the folder lock: one run at a time, damaged manifests rebuilt,
read-only folders re-assembled without writing."""

import json
import os
import signal
import socket
import subprocess

import numpy as np
import pytest
import xarray as xr

from helpers_study import (
    LONG_ETA,
    MEASURE_VARS,
    SMALL_TOML,
    env,
    kill_study,
    phasekit_cmd,
    small_study,
    wait_for_checkpoints,
)
from phasekit.study.checkpoints import OutdirInUse, _FolderLock, checkpoint_dir, load_checkpoints
from phasekit.study.runner import run_study
from phasekit.study.schema import StudyError


def test_checkpoints_carry_the_hash_and_foreign_files_are_skipped(tmp_path):
    st = small_study()
    run_study(st, outdir=tmp_path, progress=False, parallel={"batch_size": 3})
    files = sorted(checkpoint_dir(tmp_path).glob("batch-*.nc"))
    assert len(files) == 2 and all(xr.load_dataset(f, engine="scipy").attrs["study_hash"] == st.hash() for f in files)
    other = xr.load_dataset(files[0], engine="scipy")
    other.attrs["study_hash"] = "0" * 16
    other.to_netcdf(checkpoint_dir(tmp_path) / "batch-foreign-00000.nc", engine="scipy")
    (checkpoint_dir(tmp_path) / "batch-broken-00000.nc").write_bytes(b"not netcdf")
    with pytest.warns(UserWarning) as seen:
        recs = load_checkpoints(tmp_path, study_hash=st.hash())
    texts = " ".join(str(w.message) for w in seen)
    assert "of another study" in texts and "unreadable" in texts
    assert sorted(recs["point"].values.tolist()) == list(range(6))
    assert {"status", "message", "seconds", "worker", "key", "has_record", "invocation"} <= set(recs.data_vars)
    assert json.loads(recs["key"].values[0]) in [{"eta": 0.5, "K": 1}, {"eta": 0.5, "K": 2}, {"eta": 1.5, "K": 1},
                                                 {"eta": 1.5, "K": 2}, {"eta": 40.0, "K": 1}, {"eta": 40.0, "K": 2}]


def test_second_run_on_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    cmd = phasekit_cmd("run", kill_study(tmp_path, LONG_ETA), "--outdir", out, "--workers", "0", "--no-report",
                       "--no-progress")
    first = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_checkpoints(out / "checkpoints", 1, first)
        second = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=120)
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
    ds = run_study(small_study(), outdir=tmp_path, progress=False)
    assert ds.attrs["n_failed"] == ds.attrs["n_missing"] == 0
    assert not (ckdir / "run.lock").exists()
    held = _FolderLock(ckdir / "run.lock")
    held.acquire()
    try:
        with pytest.raises(OutdirInUse, match=f"pid {os.getpid()} on"):
            run_study(small_study(), outdir=tmp_path, fresh=True, progress=False)
        # a finished study is only read: no lock needed
        assert run_study(small_study(), outdir=tmp_path, progress=False).sizes == ds.sizes
    finally:
        held.release()


def test_damaged_manifest_is_rebuilt_never_discarded(tmp_path):
    st = small_study()
    first = run_study(st, outdir=tmp_path, progress=False)
    manifest = tmp_path / "checkpoints" / "study.json"
    manifest.write_text(manifest.read_text()[:20])  # e.g. the disk filled up while it was written
    n = len(list((tmp_path / "checkpoints").glob("batch-*.nc")))
    with pytest.warns(UserWarning, match=f"was damaged: rebuilt for this study from {n} checkpoint files"):
        again = run_study(st, outdir=tmp_path, progress=False)
    np.testing.assert_array_equal(again["invocation"].values, first["invocation"].values)  # nothing recomputed
    assert json.loads(manifest.read_text())["hash"] == st.hash()
    # Checkpoints that do not carry the study's hash (older phasekit) cannot be matched automatically.
    for f in (tmp_path / "checkpoints").glob("batch-*.nc"):
        ds = xr.load_dataset(f, engine="scipy")
        ds.attrs.pop("study_hash")
        ds.to_netcdf(f, engine="scipy")
    manifest.write_text("{not json")
    with pytest.raises(StudyError) as info:
        run_study(st, outdir=tmp_path, progress=False)
    msg = str(info.value)
    assert "unreadable (not valid JSON" in msg and "--repair" in msg and "keeps every checkpoint" in msg
    assert "different study" not in msg and "--fresh" not in msg
    with pytest.warns(UserWarning, match=f"{n} adopted by --repair"):
        repaired = run_study(st, outdir=tmp_path, progress=False, repair=True)
    np.testing.assert_array_equal(repaired["invocation"].values, first["invocation"].values)
    for v in MEASURE_VARS:
        np.testing.assert_array_equal(repaired[v].values, first[v].values)


def test_folder_of_an_older_hash_is_recognised(tmp_path):
    # Earlier versions hashed the grid values too: the manifest's study, hashed again, is this study.
    st = small_study()
    first = run_study(st, outdir=tmp_path, progress=False)
    ckdir = tmp_path / "checkpoints"
    manifest = ckdir / "study.json"
    older = "0123456789abcdef"
    manifest.write_text(json.dumps({"hash": older, "study": st.to_dict()}))
    for f in ckdir.glob("batch-*.nc"):
        ds = xr.load_dataset(f, engine="scipy")
        ds.attrs["study_hash"] = older
        ds.to_netcdf(f, engine="scipy")
    more = small_study(grid={"eta": [0.5, 1.5, 40.0, 60.0], "K": [1, 2]})
    for _ in range(2):  # the older hash is kept in the manifest: recognised again on the next run
        again = run_study(more, outdir=tmp_path, progress=False)
        assert json.loads(manifest.read_text())["aliases"] == [older]
        np.testing.assert_array_equal(again["invocation"].values[:3], first["invocation"].values)
    assert load_checkpoints(tmp_path).sizes["point"] == 8
    manifest.write_text(json.dumps({"hash": older, "study": small_study(solver={"rtol": 1e-6}).to_dict()}))
    with pytest.raises(StudyError, match="the solver options changed"):
        run_study(more, outdir=tmp_path, progress=False)


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
        ds = run_study(study_file, outdir=out, progress=False)
        assert ds.attrs["n_failed"] + ds.attrs["n_missing"] == 0
        if os.geteuid() != 0:  # root may write anyway
            capsys.readouterr()
            assert main(run) == 0
            assert "report not written" in capsys.readouterr().err
    finally:
        for p in paths:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*")} == snapshot  # nothing written
