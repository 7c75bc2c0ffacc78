"""K-scaling of the site-symmetric committee (K = M, second order) on a chosen K grid, and its precision.

Runs ``studies/k_scaling.toml`` (eta_c and the optimal eta inside the site-symmetric subspace; at
eta = eta_c / 5 the symmetric plateau's eps_g and escape eigenvalue and the convergence time to
eps_g / K = 1e-4 from R = 1e-3, S = 0, Q = 0.5, C = 0) with its K axis replaced by ``--K`` (default
the study's, up to 1e4), prints the table with the timing of each point, and the study's fits
``K eta_c = a + b / K`` (and ``K eta_opt``) restricted to ``--fit`` (default 500 <= K <= 1e4).  Writes
the dataset and the study's figure under ``--out``.

``--precision`` instead prints, for erf at ``--K``, the relative errors of eta_c and of the plateau's
escape eigenvalue (at eta = eta_c / 5) against a 40-digit evaluation of the same reduced flow
(mpmath, a test extra; ``tests/helpers_mp.py``): with the complex-step Jacobians the model uses, and
with the one-sided / central finite differences it used before (``_complex_step`` off).  The Newton
polish of the plateau stays on in both columns; without it (before) the escape eigenvalue was off
by 5.5e-9, 4.3e-6, 2.7e-6 at K = 200, 1e3, 1e4, the fixed point by ~2e-8 in Q.

Usage: ``python benchmarks/k_scaling.py [--K 2 5 10 ...] [--fit 500 10000] [--out outputs/k_scaling_wide]``
       ``python benchmarks/k_scaling.py --precision --K 200 1000 10000``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import phasekit as pk
from phasekit.plotting import FIGURES, save_figure

STUDY = Path(__file__).resolve().parents[1] / "studies" / "k_scaling.toml"
DEFAULT_K = [2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]


def precision(Ks: list[int]) -> None:
    """eta_c and the erf plateau's escape eigenvalue against the 40-digit evaluation, complex step and differences."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers_mp import mp_erf_plateau, mp_erf_reference

    print(f"{'K':>6} | {'eta_c: c-step':>13} {'differences':>11} | {'escape: c-step':>14} {'differences':>11} | "
          f"{'escape (40 digits)':>18}")
    for K in Ks:
        red = pk.Committee(K, K, "erf", second_order=True).restrict("site_symmetric")
        eta_ref = mp_erf_reference(red)[0]
        rows = []
        for complex_step in (True, False):
            model = red.replace()
            model._complex_step = complex_step
            ec = float(pk.critical_eta(model))
            plateau = model.replace(eta=eta_ref / 5)
            plateau._complex_step = complex_step
            rows.append((ec, plateau.symmetric_plateau()))
        z_ref, esc_ref = mp_erf_plateau(red.replace(eta=eta_ref / 5), rows[0][1].vector)
        (ec1, p1), (ec0, p0) = rows
        print(f"{K:6d} | {abs(ec1 / eta_ref - 1):13.1e} {abs(ec0 / eta_ref - 1):11.1e} | "
              f"{abs(p1.extra['escape_eigenvalue'] / esc_ref - 1):14.1e} "
              f"{abs(p0.extra['escape_eigenvalue'] / esc_ref - 1):11.1e} | {esc_ref:18.10e}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, nargs="+", default=DEFAULT_K)
    ap.add_argument("--activations", nargs="+", default=["erf", "relu"])
    ap.add_argument("--fit", type=float, nargs=2, default=[500.0, 10000.0], metavar=("K_MIN", "K_MAX"))
    ap.add_argument("--out", default="outputs/k_scaling_wide")
    ap.add_argument("--precision", action="store_true", help="errors against a 40-digit evaluation (erf)")
    args = ap.parse_args()
    if args.precision:
        precision(args.K)
        return
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
