"""Critical and optimal learning rates of the perfect solution inside the site-symmetric subspace and in the full space.

For K = M in 2..10 (ReLU and erf, second order, soft committee machine), prints

* the restricted eta_c and optimal eta from the reduced flow
  (``critical_eta(model, subspace="site_symmetric")``, cost independent of K),
* the same from the full Jacobian projected onto the subspace (an independent route),
* the full-space eta_c and optimal eta (with the slowest decay rate at the optimum),
* eta_c of each sector of S_K (:func:`phasekit.sector_stability`) and the sector that limits the full space.

With ``--wide K1 K2 ...`` a second table: the full-space values for wide committees from the flow with
units 1 and 2 distinguished (``sector_stability(model, method="pair")``, no full Jacobian), as K eta.

Usage: ``python benchmarks/subspace_stability.py [--K 2 3 ... 10] [--activations relu erf] [--wide 100 1000 10000]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import phasekit as pk
from phasekit.committee.pencil import EtaStructure
from phasekit.committee.subspaces import site_symmetric_basis


def projected(model: pk.Committee, st: EtaStructure) -> EtaStructure:
    P = site_symmetric_basis(model.K)
    Pp = np.linalg.pinv(P)
    return EtaStructure(A=Pp @ st.A @ P, B=Pp @ st.B @ P, error=st.error, state=st.state, scheme=st.scheme,
                        residual=st.residual)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, nargs="+", default=list(range(2, 11)))
    ap.add_argument("--activations", nargs="+", default=["relu", "erf"])
    ap.add_argument("--wide", type=int, nargs="*", default=[])
    args = ap.parse_args()
    if args.wide:
        wide(args.wide, args.activations)
        return
    head = (f"{'act':5} {'K':>3} | {'eta_c sub':>12} {'(proj.)':>12} {'eta_opt sub':>12} {'rate':>8} | "
            f"{'eta_c full':>12} {'eta_opt full':>12} {'rate':>8} | limiting sector; sector eta_c | time")
    print(head)
    print("-" * len(head))
    for act in args.activations:
        for K in args.K:
            t0 = time.perf_counter()
            model = pk.Committee(K, K, act, second_order=True)
            c_sub = pk.critical_eta(model, subspace="site_symmetric")
            o_sub = pk.optimal_eta(model, subspace="site_symmetric")
            sec = pk.sector_stability(model, method="full")  # the full Jacobian: its projection is checked
            c_proj = pk.critical_eta(model, structure=projected(model, sec.full_critical.structure))
            sectors = ", ".join(f"{k} {float(c.value):.6g}" for k, c in sec.critical.items())
            print(f"{act:5} {K:3d} | {c_sub.value:12.9f} {c_proj.value:12.9f} {o_sub.value:12.9f} {o_sub.rate:8.5f} | "
                  f"{sec.full_critical.value:12.9f} {sec.full_optimal.value:12.9f} {sec.full_optimal.rate:8.5f} | "
                  f"{sec.limiting}; {sectors} | {time.perf_counter() - t0:.1f}s", flush=True)


def wide(Ks: list[int], activations: list[str]) -> None:
    head = (f"{'act':5} {'K':>6} | {'K eta_c':>10} {'K eta_opt':>10} {'rate':>10} | {'K eta_opt sub':>13} "
            f"{'rate':>10} | limiting; slowest sector at eta_opt; K eta_c per sector | time")
    print(head)
    print("-" * len(head))
    for act in activations:
        for K in Ks:
            t0 = time.perf_counter()
            sec = pk.sector_stability(pk.Committee(K, K, act, second_order=True), method="pair")
            o, sub = sec.full_optimal, sec.optimal["trivial"]
            rates = {k: s.structure.decay_rate(o.value) for k, s in sec.optimal.items() if s.structure is not None}
            slow = min(rates, key=rates.get)
            sectors = ", ".join(f"{k} {K * float(c.value):.6g}" for k, c in sec.critical.items())
            print(f"{act:5} {K:6d} | {K * sec.full_critical.value:10.6f} {K * o.value:10.5f} {o.rate:10.4e} | "
                  f"{K * sub.value:13.5f} {sub.rate:10.4e} | {sec.limiting}; {slow}; {sectors} | "
                  f"{time.perf_counter() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
