"""Parallel execution: in-process by default, worker processes from any script, dask when asked."""

import os
import subprocess
import sys
import textwrap
import time
import warnings
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
    from distributed import Client
    from helpers_study import local_cluster

    with warnings.catch_warnings(record=True) as seen, local_cluster(1, processes=False) as cluster, \
            Client(cluster) as client:
        warnings.simplefilter("always")
        assert choose_backend().kind == "dask"
        out = parallel_map(_on_dask_worker, [1, 2, 3])
        assert [sq for _, sq in out] == [1, 4, 9]
        assert {addr for addr, _ in out} == set(client.nthreads())
        # n_workers = 1 asks for this process, client or not
        assert choose_backend(n_workers=1).kind == "serial"
    assert choose_backend().kind == "serial"  # the client is closed
    assert not [w for w in seen if "already in use" in str(w.message)]  # no HTTP server on a fixed port


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


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_is_silent_at_first_then_reports_the_time_left():
    import io

    from phasekit.core.parallel import Progress

    clock, out = _Clock(), io.StringIO()
    bar = Progress(10, what="simulate", unit="runs", stream=out, delay=3.0, every=5.0, clock=clock)
    clock.t = 1.0
    bar.update(1)
    assert out.getvalue() == ""  # a quick computation says nothing
    clock.t = 4.0
    bar.update(1)  # 2 runs in 4 s: 0.5 runs/s, 8 left -> 16 s
    assert out.getvalue() == "simulate [######........................] 2/10 runs  0.5 runs/s  00:04 elapsed, " \
                             "00:16 left\n"
    clock.t = 5.0
    bar.update(1)  # within `every` of the last line: nothing new off a terminal
    assert out.getvalue().count("\n") == 1
    clock.t = 20.0
    bar.update(7)  # the end is always shown once something was
    assert out.getvalue().splitlines()[-1].endswith("10/10 runs  0.5 runs/s  00:20 elapsed, 00:00 left")
    bar.close()
    # already-done units count towards the fraction, not the rate
    clock.t, out = 0.0, io.StringIO()
    bar = Progress(10, done=5, stream=out, delay=0.0, clock=clock)
    clock.t = 10.0
    bar.update(1)
    assert "6/10 points  0.1 points/s  00:10 elapsed, 00:40 left" in out.getvalue()


def test_progress_can_be_turned_off_and_ends_a_terminal_line():
    import io

    from phasekit.core.parallel import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    clock, out = _Clock(), Tty()
    bar = Progress(3, stream=out, delay=0.0, clock=clock)
    clock.t = 1.0
    bar.update(1)
    bar.update(1)
    assert out.getvalue().count("\r") == 2 and "\n" not in out.getvalue()  # rewritten in place
    bar.close()
    assert out.getvalue().endswith("\n")
    off = io.StringIO()
    quiet = Progress(3, enabled=False, stream=off, delay=0.0, clock=clock)
    clock.t = 100.0
    quiet.update(3)
    quiet.note("waiting for workers")
    quiet.close()
    assert off.getvalue() == ""


def test_progress_shows_the_elapsed_time_before_the_first_result():
    import io

    from phasekit.core.parallel import Progress

    clock, out = _Clock(), io.StringIO()
    bar = Progress(4, stream=out, delay=0.0, every=0.0, clock=clock, tick=0.01)
    clock.t = 7.0
    for _ in range(500):  # the refresh thread writes while no unit is done
        if out.getvalue():
            break
        time.sleep(0.01)
    bar.close()
    assert "0/4 points  first result pending  00:07 elapsed, --:-- left" in out.getvalue()


def test_parallel_map_advances_a_progress_by_item(capsys):
    from phasekit.core.parallel import Progress, parallel_map

    clock = _Clock()
    bar = Progress(5, delay=0.0, clock=clock)
    clock.t = 2.0
    assert parallel_map(abs, [-1, -2, 3, -4, 5], progress=bar) == [1, 2, 3, 4, 5]
    bar.close()
    assert capsys.readouterr().err.splitlines()[-1].startswith("[##############################] 5/5 points")


def test_no_dask_dashboard_is_started_unless_asked():
    """phasekit starts no dask cluster (it connects to a scheduler it is given, or uses the active client), so it
    starts no dashboard and no 'Port 8787 is already in use' warning can come from it."""
    import re

    root = Path(__file__).resolve().parents[1]
    sources = list((root / "phasekit").rglob("*.py")) + [root / "README.md"]
    call = "LocalCluster" + "("  # (not written out here: this file is scanned too)
    for path in sources:
        text = path.read_text()
        assert call not in text, path
        assert not re.search(r"\bClient\(\s*\)", text), path  # a bare Client() starts a local cluster with one
    # the tests' clusters: no dashboard, their HTTP server on a free port
    for path in (root / "tests").glob("test_*.py"):
        assert call not in path.read_text(), f"{path.name}: use helpers_study.local_cluster"
