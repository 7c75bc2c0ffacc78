"""Sweep throughput: points per second with 1 and 2 dask workers on the same grid.

Usage::

    python benchmarks/sweep.py [--points 40] [--workers 1 2] [--repeat 1]

Each worker count gets its own local cluster (one single-threaded process
per worker); the cluster is started and warmed up (phasekit imported on every
worker) before the clock starts, so the numbers measure the sweep itself:
batching, scheduling, checkpoint writes and the point computations.
Parallel efficiency = rate(n workers) / (n * rate(1 worker)).  Worker
utilisation = summed point time / (workers * wall time) separates the sweep's
own overhead (idle workers: scheduling, batching, checkpoint writes) from
slower points (other processes competing for the cores); the load average
printed before and after tells whether the machine was shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from phasekit.study.runner import sweep
from phasekit.study.schema import parse_study


def study(n_points: int) -> "object":
    """A 2 x (n/2) grid of erf committee machines with the eta^2 term (K = M = 2, 3).

    Points take a few tenths of a second each: realistic sweep work, not scheduler noise.
    """
    n_eta = max(1, n_points // 2)
    return parse_study({
        "name": "bench_sweep",
        "model": {"M": "K", "activation": "erf", "second_order": True},
        "grid": {"K": [2, 3], "eta": {"start": 0.2, "stop": 1.5, "num": n_eta, "spacing": "log"}},
        "integration": {"eta_alpha_max": 300.0, "stop_eg": 1e-4, "n_points": 201, "rtol": 1e-10, "atol": 1e-13},
        "measures": {"convergence_time": {}, "final_eg": {}},
    })


def _warm() -> int:
    import phasekit.study.runner as sweeps  # noqa: F401  (import cost is paid before timing)

    return os.getpid()


def run(n_workers: int, st: object, outdir: Path) -> tuple[float, float]:
    """Seconds for the whole sweep on a fresh cluster of ``n_workers``; and the summed point time."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(_warm)
        t0 = time.perf_counter()
        ds = sweep(st, client=client, outdir=outdir, fresh=True, progress=False)
        elapsed = time.perf_counter() - t0
    return elapsed, float(ds["seconds"].sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=40, help="grid points (even)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    ap.add_argument("--repeat", type=int, default=1, help="runs per worker count (the fastest is kept)")
    args = ap.parse_args()
    st = study(args.points)
    tmp = Path(tempfile.mkdtemp(prefix="phasekit-bench-"))
    try:
        rates = {}
        print(f"grid: {st.n_points} points ({' x '.join(f'{d} {n}' for d, n in zip(st.dims, st.shape))}), "
              f"cpu_count = {os.cpu_count()}, load average before = {os.getloadavg()[0]:.2f}")
        for w in args.workers:
            best = None
            for r in range(args.repeat):
                elapsed, busy = run(w, st, tmp / f"w{w}-{r}")
                best = elapsed if best is None else min(best, elapsed)
                print(f"workers = {w}: {st.n_points} points in {elapsed:.2f} s "
                      f"(summed point time {busy:.2f} s, worker utilisation {busy / (w * elapsed):.1%}) "
                      f"-> {st.n_points / elapsed:.2f} points/s")
            rates[w] = st.n_points / best
        if 1 in rates:
            for w, rate in rates.items():
                if w > 1:
                    print(f"parallel efficiency with {w} workers: {rate / (w * rates[1]):.1%} "
                          f"(speed-up {rate / rates[1]:.2f}x)")
        print(f"load average after = {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
