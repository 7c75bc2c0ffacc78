"""Recipes for fixed points: the stability boundary of the perfect solution and plateau escape rates."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from ...committee.model import Committee
from ...core.datasets import provenance_attrs
from ...core.parallel import parallel_map
from ...plotting.common import save_figure
from ...plotting.fixed_points import plot_plateau_escape, plot_stability_boundary
from . import recipe

__all__ = ["stability_boundary_recipe", "stability_point", "plateau_point"]


def stability_point(item: tuple[str, int]) -> dict[str, float]:
    """eta_c and eta_opt of the perfect solution for ``(activation, K)``, K = M, eta^2 terms kept."""
    from ...committee.pencil import eta_structure
    from ...committee.stability import critical_eta, optimal_eta

    act, K = item
    model = Committee(int(K), int(K), str(act), eta=1.0, second_order=True)
    st = eta_structure(model)
    crit = critical_eta(model, structure=st)
    eta_c = crit.value
    out = {"eta_c": float(eta_c), "eta_c_error": float(crit.error),
           "eta_c_precision": float(crit.precision), "jacobian_error": float(st.error),
           "crossing_real": int(crit.crossing == "real")}
    if np.isfinite(eta_c) and eta_c > 0:
        opt = optimal_eta(model, structure=st)
        out.update(eta_opt=float(opt.value), rate_opt=float(opt.rate), kink=int(opt.kink))
    else:
        out.update(eta_opt=np.nan, rate_opt=np.nan, kink=0)
    return out


def plateau_point(item: tuple[str, int]) -> dict[str, float]:
    """Symmetric plateau of ``(activation, K)``, K = M, first order: escape eigenvalue per unit eta alpha."""
    from ...committee.landmarks import symmetric_plateau

    act, K = item
    nan = float("nan")
    out = {"escape_eigenvalue": nan, "escape_multiplicity": 0, "R": nan, "Q": nan, "C": nan, "eg": nan,
           "residual": nan, "n_unstable": -1, "converged": 0}
    if int(K) < 2:  # one student cannot break a permutation symmetry
        return out
    model = Committee(int(K), int(K), str(act), eta=1.0, second_order=False)
    fp = symmetric_plateau(model)
    Q = fp.state.Q
    out.update(escape_eigenvalue=nan if fp.escape_eigenvalue is None else float(np.real(fp.escape_eigenvalue)),
               escape_multiplicity=int(fp.escape_multiplicity), R=float(fp.state.R[0, 0]), Q=float(Q[0, 0]),
               C=float(Q[0, 1]), eg=float(fp.eg), residual=float(fp.residual), n_unstable=int(fp.n_unstable),
               converged=int(fp.success))
    return out


def _saad_solla_escape(K: int) -> float:
    return 2 * K / (math.pi * math.sqrt(2 * K - 1) * (2 * K + 1) ** 1.5)


@recipe("stability_boundary", checks={"activations": "activation", "K_values": ">= 1", "n_workers": "workers"})
def stability_boundary_recipe(
    outdir: Path,
    quick: bool = False,
    *,
    activations: Sequence[str] = ("erf", "relu"),
    K_values: Sequence[int] = tuple(range(1, 11)),
    n_workers: int | None = None,
) -> dict[str, Path]:
    """Critical and optimal learning rates of the perfect solution, and plateau escape rates, vs K = M.

    For each activation and K = M in ``K_values``: ``eta_c`` (the perfect
    solution loses linear stability; eta^2 terms kept) and the ``eta_opt``
    that maximises the slowest asymptotic decay rate, from
    :func:`phasekit.committee.stability.critical_eta` / :func:`~phasekit.committee.stability.optimal_eta`;
    and the escape eigenvalue of the symmetric plateau (first order, units
    1/(eta alpha)) from :func:`phasekit.committee.landmarks.symmetric_plateau`.

    Writes ``stability_boundary.nc``, ``plateau_escape.nc`` and the figures
    ``stability_boundary.png``, ``plateau_escape.png``.  ``quick``: K = 1..3.
    """
    outdir = Path(outdir)
    acts = [str(a) for a in activations]
    Ks = [int(k) for k in K_values]
    if not acts or not Ks or min(Ks) < 1:
        raise ValueError("K_values, activations: need at least one activation and K values >= 1")
    if quick:
        Ks = [k for k in Ks if k <= 3] or [1]
        n_workers = 1
    items = [(a, k) for a in acts for k in Ks]
    # largest (slowest) points first so that the workers finish together
    order = sorted(range(len(items)), key=lambda j: -items[j][1])
    stab = parallel_map(stability_point, [items[j] for j in order], n_workers=n_workers, batch_size=1)
    plat = parallel_map(plateau_point, [items[j] for j in order], n_workers=n_workers, batch_size=1)
    stab_by = {items[j]: r for j, r in zip(order, stab)}
    plat_by = {items[j]: r for j, r in zip(order, plat)}

    def table(results: dict, key: str, dtype=float) -> np.ndarray:
        return np.array([[results[(a, k)][key] for k in Ks] for a in acts], dtype=dtype)

    coords = {
        "activation": ("activation", acts, {"long_name": "activation", "units": "1"}),
        "K": ("K", np.array(Ks), {"long_name": "hidden units K = M", "units": "1"}),
    }
    params = {"activations": acts, "K_values": Ks, "quick": bool(quick)}
    dims = ("activation", "K")
    one = {"units": "1"}
    ds_s = xr.Dataset(
        {
            "eta_c": (dims, table(stab_by, "eta_c"),
                      {"long_name": "critical learning rate eta_c", **one}),
            "eta_c_error": (dims, table(stab_by, "eta_c_error"),
                            {"long_name": "eta_c error propagated from the Jacobian error", **one}),
            "eta_c_precision": (dims, table(stab_by, "eta_c_precision"),
                                {"long_name": "half width of the final eta_c bracket", **one}),
            "eta_opt": (dims, table(stab_by, "eta_opt"),
                        {"long_name": "learning rate of fastest asymptotic convergence eta_opt", **one}),
            "rate_opt": (dims, table(stab_by, "rate_opt"),
                         {"long_name": "slowest asymptotic decay rate at eta_opt", "units": "1/alpha"}),
            "kink": (dims, table(stab_by, "kink", int),
                     {"long_name": "eta_opt where two eigenvalues exchange the lead (1) or smooth maximum (0)",
                      **one}),
            "crossing_real": (dims, table(stab_by, "crossing_real", int),
                              {"long_name": "eigenvalue crossing zero at eta_c is real (1) or complex (0)", **one}),
            "jacobian_error": (dims, table(stab_by, "jacobian_error"),
                               {"long_name": "estimated max error of a Jacobian entry (A, B)", **one}),
        },
        coords=coords,
    )
    ds_s.attrs.update(provenance_attrs(params, recipe="stability_boundary", second_order=1, eta2_terms="kept",
                                       fixed_point="perfect solution R = Q = T = identity"))
    closed = np.array([[_saad_solla_escape(k) if (a == "erf" and k >= 2) else np.nan for k in Ks] for a in acts])
    ds_p = xr.Dataset(
        {
            "escape_eigenvalue": (dims, table(plat_by, "escape_eigenvalue"),
                                  {"long_name": "escape eigenvalue of the symmetric plateau",
                                   "units": "1/(eta alpha)"}),
            "escape_closed_form": (dims, closed,
                                   {"long_name": "Saad-Solla closed form of the erf escape eigenvalue",
                                    "units": "1/(eta alpha)"}),
            "escape_multiplicity": (dims, table(plat_by, "escape_multiplicity", int),
                                    {"long_name": "dimension of the escape eigenspace", **one}),
            "R": (dims, table(plat_by, "R"), {"long_name": "plateau student-teacher overlap R", **one}),
            "Q": (dims, table(plat_by, "Q"), {"long_name": "plateau student norm Q", **one}),
            "C": (dims, table(plat_by, "C"), {"long_name": "plateau student-student overlap C", **one}),
            "eg": (dims, table(plat_by, "eg"), {"long_name": "generalisation error on the plateau", **one}),
            "residual": (dims, table(plat_by, "residual"),
                         {"long_name": "max |d state / d (eta alpha)| at the plateau", "units": "1/(eta alpha)"}),
            "n_unstable": (dims, table(plat_by, "n_unstable", int),
                           {"long_name": "unstable directions of the plateau (-1: none computed)", **one}),
            "converged": (dims, table(plat_by, "converged", int),
                          {"long_name": "root finder converged (1) or not (0)", **one}),
        },
        coords=coords,
    )
    ds_p.attrs.update(provenance_attrs(params, recipe="stability_boundary", second_order=0, eta=1.0,
                                       fixed_point="symmetric plateau R_in = R, Q_ii = Q, Q_ik = C"))
    files: dict[str, Path] = {}
    for name, ds in (("stability_boundary", ds_s), ("plateau_escape", ds_p)):
        path = outdir / f"{name}.nc"
        ds.to_netcdf(path, engine="scipy")
        files[name] = path
    files["stability_boundary_figure"] = save_figure(plot_stability_boundary(ds_s), outdir / "stability_boundary.png")
    files["plateau_escape_figure"] = save_figure(plot_plateau_escape(ds_p), outdir / "plateau_escape.png")
    return files

