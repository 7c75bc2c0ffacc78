"""What a ReLU run costs against the erf run of the same problem, side by side in one run.

1. Evaluations: K = M = 2, eta = 0.5, to alpha = 400 from the standard start
   (``initial_state(model, 1e-3)``: ``R = 1e-3 I``, ``Q = diag(0.2, 0.3)``),
   first and second order, default solver (DOP853, rtol 1e-9, atol 1e-14).
   Prints the right-hand-side evaluations of each run and the ratio
   ReLU / erf, and the ReLU run's |eps_g| difference to a run at rtol 1e-12.
2. Time: K = M = 5, second order, eta = 0.5, to alpha = 300 from the
   standard start, erf and ReLU one after the other; prints wall and CPU
   times, evaluations, the CPU time per evaluation and the ratios ReLU / erf,
   and the CPU cost of one ReLU right-hand side and of its I4 term.
3. With ``--steps``: where along the part-2 runs the evaluations fall: per
   window of alpha the evaluations of each run (the same solver through
   ``core.ode.solve_flow``, the right-hand side recording its alpha; no
   dense output, which costs DOP853 three evaluations per step, so the
   totals are below part 2's) and eps_g at the window's end.

Timings depend on the load of the machine (CPU time less than wall time);
the ratios are measured in the same run.  Usage: ``python benchmarks/relu.py [--K 5] [--alpha 300] [--steps]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import phasekit as pk
from phasekit.core.ode import solve_flow


def run(activation: str, K: int, second_order: bool, alpha_max: float, **solver):
    model = pk.Committee(K, K, activation, eta=0.5, second_order=second_order)
    start = pk.initial_state(model, 1e-3)
    t0, c0 = time.perf_counter(), time.process_time()
    ds = pk.integrate(model, start, alpha_max, n_points=101, solver=solver or None)
    return ds, (time.perf_counter() - t0, time.process_time() - c0), model, start


def best_cpu_time(func, reps: int = 5) -> float:
    func()
    best = np.inf
    for _ in range(reps):
        t0 = time.process_time()
        func()
        best = min(best, time.process_time() - t0)
    return best


def evaluation_alphas(model, start, alpha_max: float) -> np.ndarray:
    """The alpha of every right-hand-side evaluation of a default-solver run."""
    alphas = []

    def flow(a, v):
        alphas.append(a)
        return model.rhs_vector(v)

    solve_flow(flow, model.state_vector(start), (0.0, alpha_max))
    return np.array(alphas)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--K", type=int, default=5)
    ap.add_argument("--alpha", type=float, default=300.0)
    ap.add_argument("--steps", action="store_true", help="also part 3: evaluations per window of alpha")
    args = ap.parse_args()

    print("1. K = M = 2, eta = 0.5, alpha = 400, standard start: right-hand-side evaluations")
    print(f"{'order':8} {'erf':>8} {'relu':>8} {'relu/erf':>9} {'relu |d eg| vs rtol 1e-12':>27}")
    for second in (False, True):
        erf = run("erf", 2, second, 400.0)[0]
        relu = run("relu", 2, second, 400.0)[0]
        tight = run("relu", 2, second, 400.0, rtol=1e-12)[0]
        d_eg = float(np.abs(relu.eg.values - tight.eg.values).max())
        n_e, n_r = erf.attrs["n_rhs"], relu.attrs["n_rhs"]
        print(f"{'second' if second else 'first':8} {n_e:8d} {n_r:8d} {n_r / n_e:9.2f} {d_eg:27.2e}")

    K = args.K
    print(f"\n2. K = M = {K}, second order, eta = 0.5, alpha = {args.alpha:g}, standard start: wall time")
    print(f"{'activation':10} {'wall':>9} {'CPU':>9} {'evals':>7} {'CPU ms/eval':>12} {'eg(end)':>10}")
    times, runs = {}, {}
    for act in ("erf", "relu"):
        ds, (wall, cpu), model, start = run(act, K, True, args.alpha)
        times[act] = wall, cpu
        runs[act] = ds, model, start
        print(f"{act:10} {wall:8.2f}s {cpu:8.2f}s {ds.attrs['n_rhs']:7d} {1e3 * cpu / ds.attrs['n_rhs']:12.2f} "
              f"{float(ds.eg[-1]):10.3e}")
        if act == "relu":
            v = model.state_vector(start)
            t_rhs = best_cpu_time(lambda: model.rhs_vector(v))
            S = model._sigma(v)
            t_i4 = best_cpu_time(lambda: model._i4_sum(S))
    print(f"relu / erf trajectory time: {times['relu'][0] / times['erf'][0]:.1f}x wall, "
          f"{times['relu'][1] / times['erf'][1]:.1f}x CPU")
    print(f"one relu right-hand side at the start: {1e3 * t_rhs:.2f} ms CPU, of which I4 {1e3 * t_i4:.2f} ms")
    if not args.steps:
        return
    edges = np.linspace(0.0, args.alpha, 11)
    print(f"\n3. K = M = {K}: right-hand-side evaluations and eps_g per window of alpha")
    print(f"{'alpha':>13} {'erf evals':>10} {'relu evals':>11} {'erf eg(end)':>12} {'relu eg(end)':>13}")
    counts, egs = {}, {}
    for act, (ds, model, start) in runs.items():
        counts[act] = np.histogram(evaluation_alphas(model, start, args.alpha), edges)[0]
        egs[act] = ds.eg.interp(alpha=edges[1:]).values
    for j in range(len(edges) - 1):
        print(f"{edges[j]:6.0f}-{edges[j + 1]:<6.0f} {counts['erf'][j]:10d} {counts['relu'][j]:11d} "
              f"{egs['erf'][j]:12.3e} {egs['relu'][j]:13.3e}")


if __name__ == "__main__":
    main()
