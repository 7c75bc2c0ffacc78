"""How close is ``model.rhs`` to the cost of its Gaussian integrals alone?

For K = M in {2, 5, 10, 20}, second order, erf and relu, prints
(a) the time of one right-hand-side evaluation,
(b) the floor: evaluating the closed forms alone -- H2 and J2 (the two parts
    of I3 after Stein's lemma) on the K (K + M) student-field pairs and I4 on
    the K(K+1)/2 x L(L+1)/2 distinct blocks -- on arrays that already hold
    exactly those covariance entries, contiguous, and
(c) the ratio a / b.
For relu the floor is dominated by the orthant quadrature inside I4.

Usage: ``python benchmarks/rhs_floor.py [--K 2 5 10 20]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import phasekit as pk
from phasekit.core.activations import _unpack4


def best_time(func, min_time=0.5):
    func()
    best, total = np.inf, 0.0
    while total < min_time:
        t0 = time.perf_counter()
        func()
        dt = time.perf_counter() - t0
        best, total = min(best, dt), total + dt
    return best


def floor_inputs(model, state):
    """Contiguous entry arrays for every distinct block the right-hand side evaluates."""
    S = model.covariance(state)
    K = model.K
    i, u = model._idx2.T
    pair = (np.ascontiguousarray(S[i, i]), np.ascontiguousarray(S[u, u]), np.ascontiguousarray(S[i, u]))
    si, sk = np.triu_indices(K)
    pu, pw = np.triu_indices(model.L)
    idx = np.stack(np.broadcast_arrays(si[:, None], sk[:, None], pu, pw), axis=-1).reshape(-1, 4)
    C4 = S[idx[:, :, None], idx[:, None, :]]
    quad = tuple(np.ascontiguousarray(c) for c in _unpack4(C4))
    assert len(pair[0]) == K * model.L
    return pair, quad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--K", type=int, nargs="+", default=[2, 5, 10, 20])
    ap.add_argument("--activations", nargs="+", default=["erf", "relu"])
    args = ap.parse_args()
    print(f"{'act':5} {'K=M':>4} {'I4 blocks':>10} | {'(a) rhs':>11} {'(b) floor':>11} {'(c) a/b':>8}")
    for act in args.activations:
        for K in args.K:
            model = pk.Committee(K, K, act, eta=0.2, second_order=True)
            rng = np.random.default_rng(0)
            state = pk.State(1e-3 * rng.uniform(size=(K, K)), 0.5 * np.eye(K))
            v = state.to_vector()
            forms = model.activation.closed_forms
            pair, quad = floor_inputs(model, state)
            t_rhs = best_time(lambda: model.rhs_vector(v))
            pair_forms = (lambda *c: forms["H2J2"](*c)) if "H2J2" in forms else (lambda *c: (forms["H2"](*c), forms["J2"](*c)))
            t_floor = best_time(lambda: (pair_forms(*pair), forms["I4"](*quad)))
            print(f"{act:5} {K:4d} {len(quad[0]):10d} | {t_rhs * 1e3:9.3f}ms {t_floor * 1e3:9.3f}ms "
                  f"{t_rhs / t_floor:8.2f}", flush=True)


if __name__ == "__main__":
    main()
