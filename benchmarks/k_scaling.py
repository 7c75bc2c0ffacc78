"""K-scaling of the site-symmetric committee (K = M, second order) on a wider K grid than the study's.

Runs ``studies/k_scaling.toml`` (eta_c and the optimal eta inside the site-symmetric subspace; at
eta = eta_c / 5 the symmetric plateau's eps_g and escape eigenvalue and the convergence time to
eps_g / K = 1e-4 from R = 1e-3, S = 0, Q = 0.5, C = 0) with its K axis replaced by ``--K`` (default up
to 1e4), prints the table with the timing of each point, and the study's fits ``K eta_c = a + b / K``
(and ``K eta_opt``) restricted to ``--fit`` (default 100 <= K <= 1000).  Writes the dataset and the
study's figure under ``--out``.

Above K ~ 1e3 the finite-difference Jacobian of the reduced flow loses digits to the cancellation of
O(K^2) terms at the perfect solution (the relative error estimate eta_c_error / eta_c grows like K^2;
for ReLU above K = 1e3 the one-sided limit fails outright, with an estimate that does not show it),
and so does the escape eigenvalue of the erf plateau (~1e-6 at K = 200) above K ~ 200 (negative at
K = 500): this is why the study's own grid stops at K = 200.

Usage: ``python benchmarks/k_scaling.py [--K 2 5 10 ...] [--fit 100 1000] [--out outputs/k_scaling_wide]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import phasekit as pk
from phasekit.plotting import FIGURES, save_figure

STUDY = Path(__file__).resolve().parents[1] / "studies" / "k_scaling.toml"
DEFAULT_K = [2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 10000]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, nargs="+", default=DEFAULT_K)
    ap.add_argument("--activations", nargs="+", default=["erf", "relu"])
    ap.add_argument("--fit", type=float, nargs=2, default=[100.0, 1000.0], metavar=("K_MIN", "K_MAX"))
    ap.add_argument("--out", default="outputs/k_scaling_wide")
    args = ap.parse_args()
    data = tomllib.loads(STUDY.read_text())
    data.pop("quick")
    data["grid"] = {"activation": args.activations, "K": [{"K": K, "stop_eg": 1e-4 * K} for K in args.K]}
    for name in ("K_eta_c", "K_eta_opt"):
        data["analyses"][name].update(x_min=args.fit[0], x_max=args.fit[1])
    out = Path(args.out)
    ds = pk.run_study(pk.parse_study(data, str(STUDY)), outdir=out, progress=True)
    print(f"{'act':5} {'K':>6} | {'K eta_c':>10} {'rel err':>8} {'K eta_opt':>10} | {'eg_plat/K':>10} "
          f"{'K escape':>10} {'t_conv/K':>10} | time")
    for act in args.activations:
        for K in args.K:
            p = ds.sel(activation=act, K=K)
            print(f"{act:5} {K:6d} | {K * float(p.eta_c):10.6f} {float(p.eta_c_error / p.eta_c):8.1e} "
                  f"{K * float(p.eta_opt):10.6f} | {float(p.plateau_eg) / K:10.4g} "
                  f"{K * float(p.escape_eigenvalue):10.4g} {float(p.convergence_time) / K:10.4g} | "
                  f"{float(p.seconds):.1f}s", flush=True)
    print()
    for act in args.activations:
        for name in ("K_eta_c", "K_eta_opt"):
            sel = {"activation": act}
            print(f"{act}: {name.replace('_', ' ')} = {float(ds[name + '_limit'].sel(sel)):.6f} + "
                  f"{float(ds[name + '_slope'].sel(sel)):.4f} / K   ({args.fit[0]:g} <= K <= {args.fit[1]:g}, "
                  f"{int(ds[name + '_n_fit'].sel(sel))} points)")
    path = save_figure(FIGURES["k_scaling"](ds), out / "k_scaling.png")
    print(f"wrote {out / 'k_scaling.nc'} and {path}")


if __name__ == "__main__":
    main()
