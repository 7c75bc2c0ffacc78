"""A whole phase diagram: batched integration against point by point, fixed-step Euler and the floor.

For erf and relu, K = M = 1..4, second order, 64 learning rates, each run
from ``R = 1e-3 I``, ``Q = diag(0.2, 0.3, ...)`` to ``alpha = 300`` (stopped
where eps_g falls below ``1e-4``), the convergence time (eps_g < 1e-3) and
the final error (eps_g where the run ended) of every point, computed

* ``batch``: all 64 points as one batch (:func:`phasekit.committee.batch.integrate_batch`),
* ``loop``: point by point with :func:`phasekit.integrate` (timed on
  ``--loop-points`` of the 64 learning rates, scaled to 64; the same
  learning rates give the batch's error against it),
* ``euler``: fixed-step Euler at ``dt = 0.01`` on the same batched right-hand
  side (30,000 steps; timed on ``--euler-steps`` of them, scaled),
* ``floor``: the right-hand-side evaluations the adaptive batch needed,
  at the least cost per state of one call on batches of 64, 512 and 4096
  states (the per-call overhead spread out): the arithmetic floor of this method.

Every ratio comes from the same run (the machine's load changes all of them alike).
The acceptance case follows: the 64-point erf K = M = 2 second-order eta sweep,
serial, batched against looping :func:`phasekit.integrate` (both timed in full),
per point, with both errors of the convergence time against a tight reference
(rtol = 1e-12, every fourth learning rate) and that of Euler at dt = 0.01 (run
in full).  The loop's time is that of ``integrate`` alone (its convergence
times, located by a re-integration each, are not timed).

Usage: ``python benchmarks/phase_diagram.py [--small] [--acceptance-only] [--relu-K K ...]``
(``--small``: K = M = 1, 2 and 16 learning rates; the full run takes about ten minutes here,
relu K = M = 3 and 4 most of it).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import phasekit as pk
from phasekit.committee.batch import CommitteeBatch, _eg_near, integrate_batch

ALPHA_MAX, STOP, THRESHOLD, DT = 300.0, 1e-4, 1e-3, 0.01
TIGHT = {"rtol": 1e-12, "atol": 1e-16}


def start(K):
    return pk.State(1e-3 * np.eye(K), np.diag(0.2 + 0.1 * np.arange(K)))


def models_of(act, K, etas):
    return [pk.Committee(K, K, act, eta=float(e), second_order=True) for e in etas]


def run_batch(models, s0, n_points=101, cpu=None):
    t0, c0 = time.perf_counter(), time.process_time()
    res = integrate_batch(models, [s0] * len(models), ALPHA_MAX, n_points=n_points, stop_eg=STOP,
                          thresholds=[THRESHOLD])
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    return time.perf_counter() - t0, res


def run_loop(models, s0, n_points=101, solver=None, cpu=None):
    """Looping integrate (timed); the convergence times located afterwards (not timed: a re-integration)."""
    t0, c0 = time.perf_counter(), time.process_time()
    runs = [pk.integrate(m, s0, ALPHA_MAX, n_points=n_points, stop_eg=STOP, solver=solver) for m in models]
    elapsed = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    out = [(ds, float(pk.convergence_time(ds, THRESHOLD)) if ds.attrs["status"] != "diverged" else np.nan)
           for ds in runs]
    return elapsed, out


def euler(models, s0, n_steps, max_norm=1e6):
    """Fixed-step Euler on the batched flow; rows stop (frozen) at STOP, at blow-up or where not finite."""
    batch = CommitteeBatch(models)
    V = np.tile(models[0].state_vector(s0), (len(models), 1))
    live = np.ones(len(models), dtype=bool)
    t_cross = np.full(len(models), np.inf)
    eg = _eg_near(models[0], V, STOP)
    for step in range(n_steps):
        rows = np.flatnonzero(live)
        if rows.size == 0:
            break
        with np.errstate(all="ignore"):
            Vn = V[rows] + DT * batch.rhs(V[rows], rows)
        ok = np.all(np.isfinite(Vn), axis=1) & (np.abs(Vn).max(axis=1) < max_norm)
        V[rows[ok]] = Vn[ok]
        egn = _eg_near(models[0], Vn[ok], STOP)  # the plain sum: exact enough at these levels
        crossed = (egn < THRESHOLD) & ~np.isfinite(t_cross[rows[ok]])
        t_cross[rows[ok][crossed]] = (step + 1) * DT
        eg[rows[ok]] = egn
        live[rows[~ok]] = False
        live[rows[ok][egn < STOP]] = False
    return V, eg, t_cross


def floor_per_state(models, s0, sizes=(64, 512, 4096)):
    """Seconds per state of one batched right-hand side, the least over batches of ``sizes`` states.

    Large batches spread the per-call overhead; very large ones leave the cache, so the least
    cost per state over a few sizes is the floor.
    """
    best = np.inf
    for n in sizes:
        reps = (n + len(models) - 1) // len(models)
        batch = CommitteeBatch(models * reps)
        V = np.tile(models[0].state_vector(s0), (len(batch), 1))
        batch.rhs(V)
        for _ in range(3):
            t0 = time.perf_counter()
            batch.rhs(V)
            best = min(best, (time.perf_counter() - t0) / len(batch))
    return best


def compare(res, loop_out, idx):
    """Largest relative difference of convergence time and final error between batch and loop."""
    dt, de = 0.0, 0.0
    for j, (ds, ct) in zip(idx, loop_out):
        cb = float(res.crossings[THRESHOLD][j])
        if np.isfinite(ct) and np.isfinite(cb):
            dt = max(dt, abs(cb - ct) / ct)
        eb, el = float(res.datasets[j]["eg"][-1]), float(ds["eg"][-1])
        de = max(de, abs(eb - el) / max(el, 1e-300))
    return dt, de


def warm_up(act, K):
    """First calls fill caches and import lazily; not part of any timing."""
    models = models_of(act, K, [0.5, 1.0])
    integrate_batch(models, [start(K)] * 2, 1.0, n_points=3, stop_eg=STOP, thresholds=[THRESHOLD])
    pk.integrate(models[0], start(K), 1.0, n_points=3, stop_eg=STOP)
    euler(models, start(K), 2)


def table(cases, n_eta, loop_points, euler_steps):
    print(f"phase diagram: {n_eta} learning rates per (activation, K = M), second order, alpha <= {ALPHA_MAX:g}, "
          f"stop at eps_g < {STOP:g}; convergence time to {THRESHOLD:g}; load {os.getloadavg()[0]:.1f}")
    print(f"loop timed on {loop_points} learning rates (relu: half as many), Euler on {euler_steps} of "
          f"{int(ALPHA_MAX / DT)} steps, both scaled; times in s for all {n_eta} points")
    head = (f"{'act':5} {'K':>2} {'batch':>8} {'loop':>9} {'euler':>9} {'floor':>8} | {'loop/batch':>10} "
            f"{'euler/batch':>11} {'batch/floor':>11} | {'calls':>6} {'evals/pt':>9} {'d t_c':>8} {'d eg':>8}  status")
    print(head)
    print("-" * len(head))
    totals = np.zeros(4)
    for act, K in cases:
        if True:
            warm_up(act, K)
            etas = np.geomspace(0.1, 4.0, n_eta)
            models = models_of(act, K, etas)
            s0 = start(K)
            tb, res = run_batch(models, s0)
            n_loop = loop_points if act == "erf" else max(2, loop_points // 2)
            idx = np.unique(np.linspace(0, n_eta - 1, n_loop).round().astype(int))
            tl, loop_out = run_loop([models[j] for j in idx], s0)
            tl *= n_eta / len(idx)
            t0 = time.perf_counter()
            euler(models, s0, euler_steps)
            te = (time.perf_counter() - t0) * (ALPHA_MAX / DT) / euler_steps
            nfev = np.array([d.attrs["n_rhs"] for d in res.datasets])
            tf = floor_per_state(models, s0) * nfev.sum()
            d_t, d_e = compare(res, loop_out, idx)
            st = [d.attrs["status"] for d in res.datasets]
            counts = ", ".join(f"{st.count(s)} {s}" for s in ("converged", "ok", "diverged", "failed") if s in st)
            print(f"{act:5} {K:>2} {tb:8.2f} {tl:9.2f} {te:9.2f} {tf:8.3f} | {tl / tb:10.1f} {te / tb:11.1f} "
                  f"{tb / tf:11.1f} | {res.n_calls:>6} {nfev.mean():9.0f} {d_t:8.1e} {d_e:8.1e}  {counts}",
                  flush=True)
            totals += (tb, tl, te, tf)
    tb, tl, te, tf = totals
    print(f"{'all':5} {'':>2} {tb:8.2f} {tl:9.2f} {te:9.2f} {tf:8.3f} | {tl / tb:10.1f} {te / tb:11.1f} "
          f"{tb / tf:11.1f}")
    print("d t_c, d eg: largest relative difference batch vs loop of the convergence time and the final error "
          "(both runs to rtol = 1e-9)")


def acceptance():
    print("\nacceptance: 64-point erf K = M = 2 second-order eta sweep, serial, to alpha = 300 "
          f"(stop at eps_g < {STOP:g}), {os.getloadavg()[0]:.1f} load")
    etas = np.geomspace(0.1, 4.0, 64)
    models = models_of("erf", 2, etas)
    s0 = start(2)
    warm_up("erf", 2)
    cpu_b, cpu_l = [], []  # CPU time of this process: less sensitive to the other load on the machine
    tb1, res = run_batch(models, s0, cpu=cpu_b)
    tl, loop_out = run_loop(models, s0, cpu=cpu_l)
    tb2, _ = run_batch(models, s0, cpu=cpu_b)  # before and after the loop: the load changes during a run
    tb = 0.5 * (tb1 + tb2)
    sub = np.arange(0, 64, 4)  # the tight reference on every fourth learning rate
    _, ref = run_loop([models[j] for j in sub], s0, solver=TIGHT)
    V, eg_e, tc_e = euler(models, s0, int(ALPHA_MAX / DT))

    def err(values):
        ok = [(values[j], r) for j, (_, r) in zip(sub, ref) if np.isfinite(r) and np.isfinite(values[j])]
        return max(abs(v - r) / r for v, r in ok)

    e_b = err([float(c) for c in res.crossings[THRESHOLD]])
    e_l = err([ct for _, ct in loop_out])
    e_e = err(list(tc_e))
    print(f"  batched integrate_batch: {tb:6.2f} s  ({tb / 64 * 1e3:6.1f} ms per point; runs of {tb1:.2f} and "
          f"{tb2:.2f} s)  "
          f"max rel. error of the convergence time {e_b:.1e}")
    print(f"  looping integrate:       {tl:6.2f} s  ({tl / 64 * 1e3:6.1f} ms per point)  "
          f"max rel. error of the convergence time {e_l:.1e}")
    print(f"  Euler dt = 0.01 (batched, same flow): max rel. error of the convergence time {e_e:.1e}")
    print(f"  speed-up {tl / tb:.1f}x (target >= 20); per point {tb / 64:.3f} s (target < 0.05 s); "
          f"error ratio Euler / batch {e_e / max(e_b, 1e-300):.1e} (target >= 1e4)")
    cb = 0.5 * sum(cpu_b)
    print(f"  CPU time of the process: batched {cb:.2f} s, looping {cpu_l[0]:.2f} s: {cpu_l[0] / cb:.1f}x "
          f"(load {os.getloadavg()[0]:.1f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="K = M = 1, 2 and 16 learning rates")
    ap.add_argument("--acceptance-only", action="store_true")
    ap.add_argument("--loop-points", type=int, default=None, help="learning rates timed point by point")
    ap.add_argument("--euler-steps", type=int, default=300)
    ap.add_argument("--relu-K", type=int, nargs="*", default=None,
                    help="relu cases (default 1 2 3 4; with --small 1 2)")
    args = ap.parse_args()
    if not args.acceptance_only:
        erf_K, n_eta = ((1, 2), 16) if args.small else ((1, 2, 3, 4), 64)
        relu_K = args.relu_K if args.relu_K is not None else erf_K
        cases = [("erf", K) for K in erf_K] + [("relu", K) for K in relu_K]
        table(cases, n_eta, args.loop_points or (4 if args.small else 8), args.euler_steps)
    acceptance()


if __name__ == "__main__":
    main()
