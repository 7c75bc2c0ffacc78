"""K-scaling of the site-symmetric committee (K = M, soft committee machine, second order) from the reduced flow.

For erf and ReLU and K from 2 to 1e4, computes in the site-symmetric subspace

* eta_c and the optimal eta of the perfect solution (``critical_eta`` / ``optimal_eta`` of the reduced model),
* at eta = eta_c / 5: the symmetric plateau's eps_g and escape eigenvalue, and the convergence time
  (first alpha with eps_g / K < 1e-4, from R = 1e-3, S = 0, Q = 0.5, C = 0),

fits ``K eta_c = a + b / K`` (and the same for the optimal eta) on 100 <= K <= 1000, writes the results
as a dataset ``k_scaling.nc`` and a figure ``k_scaling.png`` under ``--out`` and prints the table and the
fits.  Above K ~ 1e3 the finite-difference Jacobian of the reduced flow loses digits to the cancellation
of O(K^2) terms at the perfect solution (the table's relative error estimate grows like K^2; for ReLU
above K = 1e3 the one-sided limit fails outright, with an estimate that does not show it), and so does
the escape eigenvalue of the erf plateau (~1/K^2) above K ~ 200: those points are outside the fits.

Usage: ``python benchmarks/k_scaling.py [--K 2 5 10 ...] [--out outputs/k_scaling]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import xarray as xr

import phasekit as pk

ETA_FRAC = 0.2

DEFAULT_K = [2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 10000]


def point(act: str, K: int) -> dict[str, float]:
    red = pk.Committee(K, K, act, second_order=True).restrict("site_symmetric")
    crit = pk.critical_eta(red)
    opt = pk.optimal_eta(red)
    out = {"eta_c": float(crit.value), "eta_c_error": float(crit.error), "eta_opt": float(opt.value),
           "rate_opt": float(opt.rate)}
    eta = ETA_FRAC * crit.value if np.isfinite(crit.value) and crit.value > 0 else np.nan
    out.update(plateau_eg=np.nan, escape=np.nan, t_conv=np.nan)
    if np.isfinite(eta):
        at = red.replace(eta=eta)
        try:
            plateau = at.symmetric_plateau()
        except (ValueError, np.linalg.LinAlgError):
            plateau = None
        if plateau is not None and plateau.success:
            out["plateau_eg"] = float(at.eg_vector(plateau.vector))
            out["escape"] = float(plateau.extra["escape_eigenvalue"])
        ds = pk.integrate(at, [1e-3, 0.0, 0.5, 0.0], 2e4 / eta, n_points=2,
                          solver={"method": "LSODA"}, stop_eg=1e-4 * K)
        out["t_conv"] = float(ds.attrs["alpha_end"]) if ds.attrs["status"] == "converged" else np.inf
    return out


def fit(K: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares ``y = a + b / K``."""
    A = np.stack([np.ones_like(K), 1.0 / K], axis=1)
    return tuple(np.linalg.lstsq(A, y, rcond=None)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, nargs="+", default=DEFAULT_K)
    ap.add_argument("--activations", nargs="+", default=["erf", "relu"])
    ap.add_argument("--out", default="outputs/k_scaling")
    args = ap.parse_args()
    Ks = np.array(args.K, dtype=float)
    names = ["eta_c", "eta_c_error", "eta_opt", "rate_opt", "plateau_eg", "escape", "t_conv"]
    data = {n: np.full((len(args.activations), len(Ks)), np.nan) for n in names}
    print(f"{'act':5} {'K':>6} | {'K eta_c':>10} {'rel err':>8} {'K eta_opt':>10} | {'eg_plat/K':>10} "
          f"{'K escape':>10} {'t_conv/K':>10} | time")
    for a, act in enumerate(args.activations):
        for j, K in enumerate(args.K):
            t0 = time.perf_counter()
            p = point(act, K)
            for n in names:
                data[n][a, j] = p[n]
            print(f"{act:5} {K:6d} | {K * p['eta_c']:10.6f} {p['eta_c_error'] / p['eta_c']:8.1e} "
                  f"{K * p['eta_opt']:10.6f} | {p['plateau_eg'] / K:10.4g} {K * p['escape']:10.4g} "
                  f"{p['t_conv'] / K:10.4g} | {time.perf_counter() - t0:.1f}s", flush=True)
    ds = xr.Dataset({n: (("activation", "K"), v) for n, v in data.items()},
                    coords={"activation": args.activations, "K": Ks})
    ds["eta_c"].attrs.update(long_name="critical learning rate of the perfect solution (site-symmetric subspace)")
    ds["eta_opt"].attrs.update(long_name="optimal learning rate (site-symmetric subspace)")
    ds["plateau_eg"].attrs.update(long_name="eps_g on the symmetric plateau at eta = eta_c / 5")
    ds["escape"].attrs.update(long_name="escape eigenvalue of the symmetric plateau at eta = eta_c / 5",
                              units="1/alpha")
    ds["t_conv"].attrs.update(long_name="first alpha with eps_g / K < 1e-4 at eta = eta_c / 5", units="alpha")
    print()
    for a, act in enumerate(args.activations):
        ok = (Ks >= 100) & (Ks <= 1000) & np.isfinite(data["eta_c"][a])
        if ok.sum() >= 2:
            for n in ("eta_c", "eta_opt"):
                c0, c1 = fit(Ks[ok], Ks[ok] * data[n][a, ok])
                ds.attrs[f"fit_{act}_K_{n}"] = f"{c0:.6f} + {c1:.4f} / K"
                print(f"{act}: K {n} = {c0:.6f} + {c1:.4f} / K   (100 <= K <= 1000, {ok.sum()} points)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(out / "k_scaling.nc")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for a, act in enumerate(args.activations):
        axes[0].semilogx(Ks, Ks * data["eta_c"][a], "o-", label=f"{act}: K eta_c")
        axes[0].semilogx(Ks, Ks * data["eta_opt"][a], "s--", label=f"{act}: K eta_opt")
        axes[1].loglog(Ks, data["plateau_eg"][a] / Ks, "o-", label=act)
        axes[2].loglog(Ks, data["t_conv"][a], "o-", label=act)
    axes[0].set(xlabel="K", ylabel="K eta", title="critical and optimal eta (subspace)")
    axes[1].set(xlabel="K", ylabel="eps_g / K", title="symmetric plateau at eta_c / 5")
    axes[2].set(xlabel="K", ylabel="alpha", title="convergence time (eps_g / K < 1e-4)")
    axes[0].legend(fontsize=8, loc="center right", bbox_to_anchor=(1.0, 0.42))  # between the curves
    for ax in axes[1:]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "k_scaling.png", dpi=120)
    print(f"wrote {out / 'k_scaling.nc'} and {out / 'k_scaling.png'}")


if __name__ == "__main__":
    main()
