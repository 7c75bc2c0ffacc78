"""The figures a study gets when its file names none: chosen from its grid dims and variables."""

from __future__ import annotations

import xarray as xr

__all__ = ["default_figures"]

_HUES = ("K", "activation", "M", "X")


def default_figures(ds: xr.Dataset) -> list[dict]:
    """``[[report.figures]]`` tables for a committee grid (the trajectories of any system that stores them)."""
    dims = set(ds["status"].dims) if "status" in ds else set()
    have = set(ds.data_vars)
    specs: list[dict] = []
    if "eta_c" in have and {"K", "activation"} & dims:
        specs.append({"kind": "stability_boundary", "title": "Stability boundary",
                      "caption": "Critical learning rate eta_c of the perfect solution against the number of hidden "
                                 "units. For eta above eta_c the eta^2 term of on-line SGD destabilises the perfect "
                                 "solution."})
    hue = next((d for d in _HUES if d in dims and d != "eta"), None)
    if "convergence_time" in have:
        if {"eta", "K"} <= dims:
            specs.append({"kind": "heatmap", "name": "convergence_time_eta_K", "var": "convergence_time", "x": "eta",
                          "y": "K", "title": "Convergence time over eta x K",
                          "caption": "Time alpha (examples per input dimension) until eps_g first drops below the "
                                     "threshold. Hatched cells with x: the run diverged; grey circles: the "
                                     "threshold was not reached in time."})
        if "eta" in dims:
            specs.append({"kind": "lines", "name": "convergence_time_vs_eta", "var": "convergence_time", "x": "eta",
                          "hue": hue, "optimum": "convergence_time_min" in have,
                          "title": "Convergence time against eta",
                          "caption": "Too small eta learns slowly, too large eta diverges: the fastest learning "
                                     "rate lies in between."})
    for var in ("asymptotic_eg", "final_eg"):
        if var in have and {"K", "M"} <= dims:
            specs.append({"kind": "heatmap", "name": f"{var}_K_M", "var": var, "x": "M", "y": "K",
                          "caption": "Over-realisable students (K > M) can reach zero error; unrealisable ones "
                                     "(K < M) cannot."})
            break
    if "plateau_length" in have and "X" in dims:
        specs.append({"kind": "plateau_scaling", "title": "Plateau length against ln(1/X)",
                      "caption": "The time spent on the symmetric plateau grows like (1/lambda_esc) ln(1/X); "
                                 "solid lines are the stored straight-line fits, dashed lines the slope predicted "
                                 "by the escape eigenvalue."})
    if "eta" in dims:
        for var in ("plateau_length", "escape_eigenvalue", "asymptotic_eg"):
            if var in have and not (var == "plateau_length" and "X" in dims):
                specs.append({"kind": "lines", "name": f"{var}_vs_eta", "var": var, "x": "eta", "hue": hue})
    # the trajectory measure's: full R, Q, or a subspace's reduced order parameters (eps_g along the run both)
    if "trajectory" in ds.dims or ("eg" in have and "sample" in ds["eg"].dims):
        specs.append({"kind": "trajectories", "name": "trajectory",
                      "caption": "Overlaps and eps_g along the run, sampled as the study asks, up to where it "
                                 "stopped."})
    for s in specs:
        if s.get("hue") is None:
            s.pop("hue", None)
    return specs
