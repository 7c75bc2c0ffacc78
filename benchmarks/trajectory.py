"""phasekit's adaptive integration against fixed-step Euler (dt = 0.01).

Erf, K = M = 10, second order, eta = 0.2, R = 1e-3 * uniform (seeded),
Q = 0.5 * identity, to alpha = 300.  Both use the same right-hand side
(``model.rhs_vector``); the error is |eg(alpha = 300) - reference| with the
reference from ``integrate`` at rtol = 1e-12.

Usage: ``python benchmarks/trajectory.py [--K 10] [--dt 0.01]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import phasekit as pk


def euler(model, v0, alpha_max, dt):
    v = v0.copy()
    for _ in range(int(round(alpha_max / dt))):
        v = v + dt * model.rhs_vector(v)
    return v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--alpha", type=float, default=300.0)
    args = ap.parse_args()
    K = args.K
    model = pk.Committee(K, K, "erf", eta=0.2, second_order=True)
    rng = np.random.default_rng(0)
    s0 = pk.State(1e-3 * rng.uniform(size=(K, K)), 0.5 * np.eye(K))
    v0 = s0.to_vector()

    ref = pk.integrate(model, s0, args.alpha, n_points=2, rtol=1e-12, atol=1e-14)
    eg_ref = float(ref.eg[-1])

    t0 = time.perf_counter()
    ds = pk.integrate(model, s0, args.alpha, n_points=2)
    t_pk = time.perf_counter() - t0
    err_pk = abs(float(ds.eg[-1]) - eg_ref)

    t0 = time.perf_counter()
    v = euler(model, v0, args.alpha, args.dt)
    t_eu = time.perf_counter() - t0
    err_eu = abs(float(model.eg_vector(v)) - eg_ref)

    print(f"erf K = M = {K}, second order, eta = 0.2, alpha = {args.alpha:g}; eg_ref = {eg_ref:.12e}")
    print(f"{'method':28} {'wall time':>10} {'|eg error|':>12} {'rhs evals':>10}")
    print(f"{'phasekit integrate (rtol 1e-9)':28} {t_pk:9.3f}s {err_pk:12.3e} {ds.attrs['n_rhs']:10d}")
    print(f"{'Euler dt = %g' % args.dt:28} {t_eu:9.3f}s {err_eu:12.3e} {int(round(args.alpha / args.dt)):10d}")
    print(f"speed-up {t_eu / t_pk:.1f}x, error ratio {err_eu / max(err_pk, 1e-300):.3g}x")


if __name__ == "__main__":
    main()
