"""Shared studies and process helpers for the runner, checkpoint and command-line tests (not collected)."""

import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from phasekit.study.assembly import assemble, record_dataset
from phasekit.study.schema import parse_study

REPO = Path(__file__).resolve().parents[1]
MEASURE_VARS = ["convergence_time", "final_eg", "alpha_end"]

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
    [solver]
    rtol = 1e-8
    atol = 1e-11
    [measures.convergence_time]
    threshold = 1e-2
    [measures.final_eg]
""")

KILL_STUDY = textwrap.dedent("""
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
    [solver]
    rtol = 1e-8
    atol = 1e-11
    [measures.convergence_time]
    threshold = 1e-3
    [measures.final_eg]
""")


def small_study(**over):
    d = {
        "name": "t",
        "model": {"K": 2, "M": "K", "activation": "erf", "second_order": True},
        "grid": {"eta": [0.5, 1.5, 40.0], "K": [1, 2]},
        "integration": {"eta_alpha_max": 150.0, "n_points": 301},
        "solver": {"rtol": 1e-8, "atol": 1e-11},
        "measures": {"convergence_time": {"threshold": 1e-2}, "final_eg": {}},
    }
    d.update(over)
    return parse_study(d)


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("PHASEKIT_MAX_WORKERS", None)
    return e


def alive(pid):
    """Whether process ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid):
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


def wait_for_checkpoints(ckdir, n, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and len(list(ckdir.glob("batch-*.nc"))) < n and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended early: {proc.communicate()[1][-2000:]}"
    assert len(list(ckdir.glob("batch-*.nc"))) >= n, "no checkpoints in time"


def kill_study(tmp_path, n_eta=12):
    """The study file of the interruption tests: ``2 * n_eta`` points.

    Tests that stop a run midway use a long grid (``n_eta = LONG_ETA``), so that
    the run is still busy when the signal comes, however fast the machine is.
    """
    study = tmp_path / "killme.toml"
    study.write_text(KILL_STUDY.replace("num = 12", f"num = {int(n_eta)}"))
    return study


LONG_ETA = 100  # 200 points: minutes of work, never finished before the interruption


def phasekit_cmd(*args):
    return [sys.executable, "-m", "phasekit", *map(str, args)]


def synthetic(study_dict, values):
    """A study dataset with made-up measure values (no computation), via the real assembler."""
    st = parse_study(study_dict)
    recs = []
    for j in range(st.n_points):
        status = "diverged" if j == 1 else "converged"
        recs.append({"index": j, "status": status, "message": "left the cone at alpha = 3" if j == 1 else "",
                     "seconds": 1.0, "worker": "w", "has_record": 1, "has_trajectory": 0,
                     "values": {k: float(v[j]) for k, v in values.items()}})
    return st, assemble(st, record_dataset(st, recs))


GRID_STUDY = {
    "name": "rep",
    "model": {"M": "K", "activation": "erf"},
    "grid": {"activation": ["erf", "relu"], "K": [1, 2], "eta": [0.5, 1.0, 2.0]},
    "integration": {"eta_alpha_max": 20.0, "n_points": 51},
    "measures": {"convergence_time": {}, "final_eg": {}, "eta_c": {}},
}


def _values(n=12, **over):
    v = {"convergence_time": np.ones(n), "final_eg": np.ones(n), "alpha_end": np.ones(n), "eta_c": np.ones(n)}
    v.update(over)
    return v


def local_cluster(n_workers=1, processes=True):
    """A dask LocalCluster without a dashboard, its HTTP server on a free port.

    ``dashboard_address=None`` alone still binds the scheduler's HTTP server to
    port 8787, and dask warns "Port 8787 is already in use" when another
    cluster (another test run) holds it.
    """
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes, dashboard_address=":0",
                        scheduler_kwargs={"dashboard": False})
