"""Wide committees through the site-symmetric reduced flow: cost independent of K.

For K = M in {10, 1e3, 1e4, 1e5} (erf and ReLU, second order, soft committee
machine), builds ``Committee(K, K).restrict("site_symmetric")``, takes
``eta = eta_frac * eta_c`` with ``eta_c = c / K`` from the restricted critical
learning rate of the perfect solution at ``min(K, 1000)`` (computed from the
reduced flow), and
integrates from ``R = 1e-3``, ``S = 0``, ``Q = 0.5``, ``C = 0`` to
``alpha = 1e4`` (LSODA; a run that reaches ``eps_g < 1e-10 K`` stops there).
Prints, per run, the build time, eta_c, the trajectory's wall time, the number
of right-hand-side evaluations, the time per evaluation and its ratio to
K = 10, and where the run ended.

Usage: ``python benchmarks/large_k.py [--K 10 1000 10000 100000] [--alpha 1e4] [--eta-frac 0.5]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import phasekit as pk


def best_time(func, reps: int = 20) -> float:
    func()
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, nargs="+", default=[10, 1_000, 10_000, 100_000])
    ap.add_argument("--activations", nargs="+", default=["erf", "relu"])
    ap.add_argument("--alpha", type=float, default=1e4)
    ap.add_argument("--eta-frac", type=float, default=0.5)
    args = ap.parse_args()
    head = (f"{'act':5} {'K':>7} | {'build':>8} {'eta_c':>11} {'eta':>10} | {'traj':>7} {'n_rhs':>6} "
            f"{'per rhs':>9} {'ratio':>6} | {'alpha_end':>9} {'eps_g end':>10} status")
    # warm-up: the first dataset pays for xarray's lazy imports
    pk.integrate(pk.Committee(2, 2, "erf").restrict("site_symmetric"), [0.1, 0.0, 0.5, 0.0], 1.0, n_points=2)
    print(head)
    print("-" * len(head))
    for act in args.activations:
        ref = None
        for K in args.K:
            t0 = time.perf_counter()
            red = pk.Committee(K, K, act, second_order=True).restrict("site_symmetric")
            build = time.perf_counter() - t0
            # eta_c ~ c / K: c from the restricted eta_c at K <= 1000 (above, the finite-difference
            # Jacobian of the reduced flow loses digits to the cancellation of O(K^2) terms)
            k_ref = min(K, 1000)
            ref_model = red if k_ref == K else pk.Committee(k_ref, k_ref, act).restrict("site_symmetric")
            eta_c = float(pk.critical_eta(ref_model)) * k_ref / K
            red = red.replace(eta=args.eta_frac * eta_c)
            z0 = np.array([1e-3, 0.0, 0.5, 0.0])
            per = best_time(lambda: red.rhs_vector(z0))
            ref = per if ref is None else ref
            t0 = time.perf_counter()
            ds = pk.integrate(red, z0, args.alpha, n_points=101, solver={"method": "LSODA"}, stop_eg=1e-10 * K)
            traj = time.perf_counter() - t0
            print(f"{act:5} {K:7d} | {build * 1e3:6.2f}ms {eta_c:11.5g} {red.eta:10.4g} | {traj:6.2f}s "
                  f"{ds.attrs['n_rhs']:6d} {per * 1e3:7.3f}ms {per / ref:6.2f} | {ds.attrs['alpha_end']:9.4g} "
                  f"{float(ds['eg'][-1]):10.3g} {ds.attrs['status']}", flush=True)


if __name__ == "__main__":
    main()
