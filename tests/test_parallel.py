"""Parallel execution: in-process by default, worker processes from any script, dask when asked."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from phasekit.core import parallel
from phasekit.core.parallel import (
    ParallelError,
    check_workers,
    choose_backend,
    parallel_map,
)

REPO = Path(__file__).resolve().parents[1]

# A plain script without a main guard: every library call must work from it, as a
# file and piped to `python -`.
UNGUARDED = """
import sys
import phasekit as pk
from phasekit.study.runner import sweep

model = pk.Committee(2, 2, "erf", eta=1.0, second_order=False)
ds = pk.plateau_scaling(model, [1e-3, 1e-4])
print("plateau_scaling", ds["plateau_length"].values.tolist())
study = {"name": "tiny", "model": {"K": 1, "M": "K", "activation": "erf"},
         "grid": {"eta": [0.5, 1.0], "K": [1, 2]},
         "integration": {"eta_alpha_max": 20.0, "n_points": 21}, "measures": {"final_eg": {}}}
res = sweep(study, parallel={"n_workers": 2}, outdir="out", progress=False)
from phasekit.core.results import status_names
print("sweep", sorted(set(status_names(res["status"].values).ravel())), len(set(res["worker"].values.ravel())))
sim = pk.simulate(pk.Committee(1, 1, "relu", eta=0.1), pk.State([[0.0]], [[0.25]]), 50, 1.0, n_runs=4,
                  n_points=3, n_workers=2)
print("simulate", sim.sizes["run"])
fps = pk.fixed_points(pk.Committee(1, 1, "relu", second_order=True), n_starts=4)
print("fixed_points", len(fps))
print("ALL DONE")
"""


def _alive(pid):
    """Whether process ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop(parallel.START_METHOD_ENV, None)
    env.update(extra)
    return env


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are forked on Linux only")
@pytest.mark.parametrize("how", ["file", "stdin"])
def test_unguarded_script_runs_to_the_end(tmp_path, how):
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    if how == "file":
        res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True,
                             text=True, timeout=300)
    else:
        res = subprocess.run([sys.executable, "-"], input=UNGUARDED, cwd=tmp_path, env=_env(),
                             capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert lines[-1] == "ALL DONE"
    assert "sweep ['ok'] 2" in lines  # two worker processes computed the grid
    assert "Traceback" not in res.stderr


def test_spawn_that_cannot_work_says_what_to_do(tmp_path):
    """With the spawn start method the workers re-run the main script: a script on
    stdin cannot be re-run, an unguarded file re-runs its work; one line says what to do."""
    code = textwrap.dedent("""
        from phasekit.core.parallel import parallel_map
        print(parallel_map(abs, [-1, -2, -3], n_workers=2))
    """)
    script = tmp_path / "spawned.py"
    script.write_text(code)
    env = _env(**{parallel.START_METHOD_ENV: "spawn"})
    for cmd, stdin in (([sys.executable, "-"], code), ([sys.executable, str(script)], None)):
        res = subprocess.run(cmd, input=stdin, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode != 0
        last = res.stderr.strip().splitlines()[-1]
        assert last.startswith("phasekit.core.parallel.ParallelError") and 'if __name__ == "__main__":' in last, last
        assert "n_workers=1" in last
    # guarded, the same script works with spawn
    script.write_text("if __name__ == '__main__':\n" + textwrap.indent(code, "    "))
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[1, 2, 3]"


def _pid(_):
    return os.getpid()


def test_default_runs_in_this_process():
    assert choose_backend().kind == "serial"
    assert set(parallel_map(_pid, range(5))) == {os.getpid()}
    assert set(parallel_map(_pid, range(5), n_workers=1)) == {os.getpid()}
    assert set(parallel_map(_pid, range(5), n_workers=0)) == {os.getpid()}
    pids = set(parallel_map(_pid, range(8), n_workers=2, batch_size=1))
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def _on_dask_worker(x):
    from distributed import get_worker

    return get_worker().address, x * x


def test_active_dask_client_is_used():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        assert choose_backend().kind == "dask"
        out = parallel_map(_on_dask_worker, [1, 2, 3])
        assert [sq for _, sq in out] == [1, 4, 9]
        assert {addr for addr, _ in out} == set(client.nthreads())
        # n_workers = 1 asks for this process, client or not
        assert choose_backend(n_workers=1).kind == "serial"
    assert choose_backend().kind == "serial"  # the client is closed


@pytest.mark.parametrize("bad", [-1, 10_000, 2.5, True, "2"])
def test_worker_count_is_validated(bad, monkeypatch):
    monkeypatch.delenv(parallel.MAX_WORKERS_ENV, raising=False)
    with pytest.raises(ValueError) as info:
        check_workers(bad)
    msg = str(info.value)
    assert msg.startswith("n_workers: must be an integer in [0, ") and parallel.MAX_WORKERS_ENV in msg
    assert str(parallel.max_workers()) in msg
    with pytest.raises(ValueError, match="n_workers"):
        parallel_map(abs, [1], n_workers=bad)


def test_worker_limit_can_be_raised(monkeypatch):
    limit = parallel.max_workers()
    with pytest.raises(ValueError, match=f"got {limit + 1}"):
        check_workers(limit + 1)
    monkeypatch.setenv(parallel.MAX_WORKERS_ENV, str(limit + 5))
    assert check_workers(limit + 1) == limit + 1
    monkeypatch.setenv(parallel.MAX_WORKERS_ENV, "many")
    with pytest.raises(ValueError, match=parallel.MAX_WORKERS_ENV):
        check_workers(2)


def _die_once(arg):
    marker, x = arg
    if x == 3 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # as if killed (e.g. out of memory)
    return x * 10


def _always_die(x):
    os._exit(1)


def test_dead_worker_process_is_replaced(tmp_path):
    marker = str(tmp_path / "died")
    out = parallel_map(_die_once, [(marker, x) for x in range(6)], n_workers=2, batch_size=1)
    assert out == [0, 10, 20, 30, 40, 50] and os.path.exists(marker)
    with pytest.raises(ParallelError, match="worker processes died 3 times"):
        parallel_map(_always_die, [1, 2], n_workers=2, batch_size=1)


def _fail_on_two(x):
    if x == 2:
        raise ArithmeticError("two")
    return x


def test_item_errors_reach_the_caller():
    items = [1, 2, 3]
    with pytest.raises(ArithmeticError, match="two"):
        parallel_map(_fail_on_two, items, n_workers=2, batch_size=1)
    got = sorted((i, r, type(e).__name__ if e else None)
                 for i, r, e in parallel.imap_unordered(_fail_on_two, items, choose_backend(n_workers=2)))
    assert got == [(0, 1, None), (1, None, "ArithmeticError"), (2, 3, None)]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_workers_do_not_outlive_a_killed_main_process(tmp_path):
    code = textwrap.dedent("""
        import os, sys, time
        from phasekit.core.parallel import parallel_map

        def slow(x):
            open(os.path.join(sys.argv[1], f"worker-{os.getpid()}"), "w").close()
            time.sleep(60)

        parallel_map(slow, range(4), n_workers=2, batch_size=1)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(tmp_path.glob("worker-*"))) < 2:
        time.sleep(0.05)
    pids = [int(f.name.split("-")[1]) for f in tmp_path.glob("worker-*")]
    assert len(pids) == 2
    proc.kill()  # SIGKILL: no chance to stop the workers
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(map(_alive, pids)):
        time.sleep(0.1)
    alive = [p for p in pids if _alive(p)]
    for p in alive:  # clean up before failing
        os.kill(p, 9)
    assert not alive
