"""Right-hand side and trajectory cost: phasekit against the loop reference.

For K = M in {1, 2, 5, 10, 20}, first and second order, relu and erf, prints
the time of one right-hand-side evaluation and of one trajectory to
eta * alpha = 300, for phasekit and for ``reference.py`` (loops over units and
fields, one closed-form call per index tuple), measured in the same run.

The reference trajectory runs the same adaptive solver on the reference RHS.
Where that would take more than ``--budget`` seconds, its time is the measured
per-evaluation time times phasekit's evaluation count (marked ``~``); where a
single reference evaluation would exceed the budget, the per-evaluation time
is extrapolated from a measured subset of index tuples (also marked ``~``).

Usage: ``python benchmarks/rhs.py [--K 1 2 5 10 20] [--budget 20]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference  # noqa: E402

import phasekit as pk  # noqa: E402


def best_time(func, min_time=0.3, max_reps=1000):
    """Smallest wall time of repeated calls (at least one call, about ``min_time`` in total)."""
    func()
    best, total, reps = np.inf, 0.0, 0
    while (total < min_time and reps < max_reps) or reps == 0:
        t0 = time.perf_counter()
        func()
        dt = time.perf_counter() - t0
        best, total, reps = min(best, dt), total + dt, reps + 1
    return best


def start_state(K):
    rng = np.random.default_rng(0)
    return pk.State(1e-3 * rng.uniform(size=(K, K)), 0.5 * np.eye(K))


def reference_eval_time(model, state, budget):
    """Reference RHS time: measured, or (beyond ``budget``) estimated from its parts.

    The estimate is one first-order reference evaluation (all I3 calls) plus
    ``K^2 L^2`` times the cost of one I4 call.  Returns ``(seconds, estimated)``.
    """
    K, L = model.K, model.L
    probe = model.replace(second_order=False)
    estimate = best_time(lambda: reference.reference_rhs(probe, state), min_time=0.0, max_reps=1)
    if model.second_order:
        C = model.covariance(state)[np.ix_([0, 0, 0, 0], [0, 0, 0, 0])].tolist()
        I4 = reference.FORMS[model.activation.name][1]
        estimate += K * K * L * L * best_time(lambda: I4(C), min_time=0.05)
    if estimate > budget:
        return estimate, True
    return best_time(lambda: reference.reference_rhs(model, state), min_time=0.0, max_reps=3), False


def trajectory(fun, v0, alpha_max):
    t0 = time.perf_counter()
    sol = solve_ivp(lambda a, v: fun(v), (0.0, alpha_max), v0, method="DOP853", rtol=1e-9, atol=1e-12)
    return time.perf_counter() - t0, sol.nfev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--K", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    ap.add_argument("--activations", nargs="+", default=["erf", "relu"])
    ap.add_argument("--budget", type=float, default=20.0, help="seconds allowed per reference measurement")
    args = ap.parse_args()

    head = (f"{'act':5} {'order':6} {'K=M':>4} | {'rhs phasekit':>13} {'rhs reference':>14} {'ratio':>8} | "
            f"{'traj phasekit':>13} {'traj reference':>15} {'ratio':>8} {'nfev':>6}")
    print(head)
    print("-" * len(head))
    for act in args.activations:
        for second in (False, True):
            for K in args.K:
                eta = 0.1 if second else 1.0
                model = pk.Committee(K, K, act, eta=eta, second_order=second)
                state = start_state(K)
                v0 = state.to_vector()
                t_pk = best_time(lambda: model.rhs_vector(v0))
                t_ref, est = reference_eval_time(model, state, args.budget)
                alpha_max = 300.0 / eta
                tt_pk, nfev = trajectory(model.rhs_vector, v0, alpha_max)
                if t_ref * nfev <= args.budget and not est:
                    tt_ref, _ = trajectory(lambda v: reference.reference_rhs(model, pk.State.from_vector(v, K, K)),
                                           v0, alpha_max)
                    mark = " "
                else:
                    tt_ref, mark = t_ref * nfev, "~"
                m1 = "~" if est else " "
                print(f"{act:5} {'2nd' if second else '1st':6} {K:4d} | {t_pk * 1e3:11.3f}ms {m1}{t_ref * 1e3:11.3f}ms "
                      f"{t_ref / t_pk:8.1f} | {tt_pk:12.3f}s {mark}{tt_ref:13.3f}s {tt_ref / tt_pk:8.1f} {nfev:6d}",
                      flush=True)
    print("\n~ : estimated (per-evaluation time x phasekit's evaluation count, or per-call cost x tuple count)")


if __name__ == "__main__":
    main()
