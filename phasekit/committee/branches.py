"""Continuation of a fixed point in a model parameter (tangent predictor, Newton corrector).

The parameter is the learning rate ``eta`` (default), the weight decay
``weight_decay``, the teacher drift ``drift`` or the output noise ``noise``.
Where the number of unstable directions changes between two values of the
branch, the crossing is bisected.  It is *located* when the bisection
reached the requested relative width ``xtol``, and only *bracketed* when it
stopped earlier (Newton failed inside the interval, or ``max_bisect`` steps
were not enough): then only the interval is known.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from ..core.datasets import coordinate, model_attrs, provenance_attrs, variable
from ..core.options import NewtonOptions, coerce_options
from ..core.parallel import Progress
from ..core.results import FixedPoint, status_attrs, status_codes
from .cone import _pull_inside
from .jacobians import _as_vector
from .dynamics import _reduced_variables
from .landmarks import perfect_solution, symmetric_plateau
from .linearisation import CommitteeFixedPoint, linearise
from .model import Committee, State, full_model_only, is_reduced
from .newton import _newton

__all__ = ['CROSSING_LOCATIONS', 'continuation']


# How well a crossing is known: bisected to the requested width, or only an interval.
CROSSING_LOCATIONS = ("located", "bracketed")


# Parameters a branch can follow, with the smallest allowed value (strict for eta).
PARAMETERS = {"eta": "> 0", "weight_decay": ">= 0", "drift": ">= 0", "noise": ">= 0"}


def _check_values(values: Sequence[float], parameter: str) -> np.ndarray:
    if parameter not in PARAMETERS:
        raise ValueError(f"parameter: must be one of {', '.join(PARAMETERS)}, got {parameter!r}")
    x = np.asarray(values, dtype=float)
    low_ok = (x > 0) if parameter == "eta" else (x >= 0)
    if x.ndim != 1 or len(x) < 2 or not np.all(np.isfinite(x)) or not np.all(low_ok) \
            or not (np.all(np.diff(x) > 0) or np.all(np.diff(x) < 0)):
        raise ValueError(f"values: need >= 2 strictly monotonic values of {parameter} "
                         f"(each {PARAMETERS[parameter]})")
    return x


def continuation(model: Committee, start: FixedPoint | State | np.ndarray | str, values: Sequence[float], *,
                 parameter: str = "eta", newton: NewtonOptions | Mapping[str, Any] | None = None,
                 xtol: float = 1e-10, max_bisect: int = 60, progress: bool = True) -> xr.Dataset:
    """Follow a fixed point as a model parameter varies (tangent predictor, Newton corrector).

    Parameters
    ----------
    model : Committee or a reduced model
        Everything but ``parameter`` is taken from here.  A reduced model
        (:meth:`Committee.restrict`) follows the fixed point of its reduced
        flow (``start`` a reduced state or a landmark name), linearised inside
        the subspace; the dataset then has its order parameters (``R``,
        ``S``, ``Q``, ``C`` [, ``v``]) along the parameter instead of ``R``,
        ``Q`` (no unit dims) and the attribute ``subspace``.
    start : CommitteeFixedPoint, State, ndarray or {"perfect", "symmetric_plateau"}
        Starting guess at ``values[0]``.
    values : sequence of float
        Strictly monotonic values of ``parameter`` along the branch.
    parameter : {"eta", "weight_decay", "drift", "noise"}
        The parameter followed (default the learning rate).  Under drift or
        weight decay the branch from ``"perfect"`` is the steady state.
    newton : NewtonOptions, mapping or None
        Newton's residual tolerance ``tol`` (units 1/alpha) and ``max_iter``.
    xtol : float
        Relative width (in ``(0, 1)``) to which each zero crossing is bisected.
    max_bisect : int
        Bisection steps per crossing at most (``>= 0``).
    progress : bool
        Report the values done and the time left on stderr once the branch has
        taken a few seconds (:class:`phasekit.core.parallel.Progress`).

    Returns
    -------
    xarray.Dataset
        Dims ``eta`` (the parameter's name), ``mode``, ``i``, ``k``, ``n``,
        ``crossing``.  Variables ``R``, ``Q``, ``v`` (trained second layer),
        ``eg``, ``residual``, ``status`` (``converged``,
        ``failed`` where Newton failed, ``missing`` beyond; codes of
        :data:`phasekit.core.results.STATUS` with CF flags), ``n_unstable``,
        ``max_real`` (largest real part, 1/alpha), ``eigenvalue_real``,
        ``eigenvalue_imag`` ``(eta, mode)``; per crossing ``crossing_eta``
        (``crossing_<parameter>``; midpoint), ``crossing_low``, ``crossing_high`` (the final bisection
        interval), ``crossing_precision`` (half its width),
        ``crossing_location`` (0 ``located``: bisected to ``xtol``; 1
        ``bracketed``: only the interval is known; CF flags),
        ``crossing_n_before``/``crossing_n_after`` (unstable directions on
        either side).  The branch stops (remaining entries nan) where Newton fails.
    """
    reduced = is_reduced(model)
    if not reduced:
        full_model_only(model, "continuation")
    etas = _check_values(values, parameter)
    model.require_autonomous("continuation")
    opts = coerce_options(newton, NewtonOptions, "newton")
    tol = opts.tol
    if isinstance(xtol, bool) or not (isinstance(xtol, (int, float, np.floating)) and 0 < xtol < 1):
        raise ValueError(f"xtol: relative width must be in (0, 1), got {xtol!r}")
    if isinstance(max_bisect, bool) or not isinstance(max_bisect, (int, np.integer)) or max_bisect < 0:
        raise ValueError(f"max_bisect: must be an integer >= 0, got {max_bisect!r}")
    if isinstance(start, str):
        m0 = model.replace(**{parameter: float(etas[0])})
        if start == "perfect":
            v = perfect_solution(m0, newton=opts).vector
        elif start == "symmetric_plateau":
            v = symmetric_plateau(m0, newton=opts).vector
        else:
            raise ValueError(f"start: unknown landmark {start!r}; use 'perfect' or 'symmetric_plateau'")
    else:
        v = model.state_vector(start, "start") if reduced else _as_vector(model, start, "start")
    K, M, n = model.K, model.M, model.n_state

    def solve(m: Any, guess: np.ndarray) -> tuple[bool, np.ndarray, int]:
        """Newton for the fixed point of ``m`` from ``guess``: (converged, vector, iterations)."""
        if reduced:
            fp = m.find_fixed_point(guess, tol=tol, max_iter=opts.max_iter)
            return fp.success, fp.vector, fp.iterations
        res = _newton(m, guess, tol=tol, max_iter=opts.max_iter)
        return res.converged, res.v, res.iterations

    points: list[CommitteeFixedPoint | None] = []
    prev_fp: CommitteeFixedPoint | None = None
    prev_eta = None
    prev_m = model
    bar = Progress(len(etas), enabled=progress, what=f"continuation in {parameter} (K = {K}, M = {M})", unit="values")
    for eta in etas:
        m = model.replace(**{parameter: float(eta)})
        guess = v
        if prev_fp is not None and prev_fp.success:
            # tangent predictor: J dv/dp = -df/dp
            dfde = prev_m.flow_parts(prev_fp.vector).derivative(parameter)
            try:
                tangent = np.linalg.solve(prev_fp.jacobian, -dfde)
                guess = prev_fp.vector + (eta - prev_eta) * tangent
                if reduced:  # a predictor outside the cone falls back to the last point
                    guess = guess if m.min_eigenvalue(guess) >= 0 else prev_fp.vector
                else:
                    guess = _pull_inside(m, guess)
            except np.linalg.LinAlgError:
                guess = prev_fp.vector
        ok, vec, iters = solve(m, guess)
        if not ok and prev_fp is not None:
            ok, vec, iters = solve(m, prev_fp.vector)
        if not ok:
            points.append(None)
            break
        fp = linearise(m, vec, status="converged", iterations=iters)
        points.append(fp)
        v, prev_fp, prev_eta, prev_m = vec, fp, eta, m
        bar.update()
    n_done = len(points)
    bar.close()

    crossings = []
    for j in range(n_done - 1):
        a, b = points[j], points[j + 1]
        if a is None or b is None or a.n_unstable == b.n_unstable:
            continue
        lo, hi = float(etas[j]), float(etas[j + 1])
        fp_lo, fp_hi = a, b
        # the eigenvalue that crosses: index min(n_lo, n_hi) in decreasing real part
        kc = min(a.n_unstable, b.n_unstable)

        def crossing_value(fp: CommitteeFixedPoint) -> float:
            return float(np.real(np.asarray(fp.eigenvalues)[kc]))

        def narrow(lo: float, hi: float) -> bool:
            return abs(hi - lo) <= xtol * max(abs(lo), abs(hi))

        side_lo = crossing_value(a) > 0
        for _ in range(max_bisect):
            if narrow(lo, hi):
                break
            mid = 0.5 * (lo + hi)
            mm = model.replace(**{parameter: mid})
            w_lo = (mid - lo) / (hi - lo)
            ok, vec, iters = solve(mm, (1 - w_lo) * fp_lo.vector + w_lo * fp_hi.vector)
            if not ok:
                break
            fm = linearise(mm, vec, status="converged", iterations=iters)
            if (crossing_value(fm) > 0) == side_lo:
                lo, fp_lo = mid, fm
            else:
                hi, fp_hi = mid, fm
        lo_, hi_ = min(lo, hi), max(lo, hi)
        location = CROSSING_LOCATIONS.index("located" if narrow(lo_, hi_) else "bracketed")
        crossings.append((0.5 * (lo_ + hi_), lo_, hi_, 0.5 * (hi_ - lo_), a.n_unstable, b.n_unstable, location))

    nan = np.nan
    p = parameter
    R = np.full((len(etas), K, M), nan) if not reduced else None
    vw = np.full((len(etas), K), nan) if not reduced else None
    Qm = np.full((len(etas), K, K), nan) if not reduced else None
    Z = np.full((len(etas), n), nan)  # the state vectors (a reduced model's order parameters)
    eg = np.full(len(etas), nan)
    resid = np.full(len(etas), nan)
    status = np.array(["missing"] * len(etas), dtype=object)
    nun = np.full(len(etas), -1, dtype=int)
    mx = np.full(len(etas), nan)
    ev_re = np.full((len(etas), n), nan)
    ev_im = np.full((len(etas), n), nan)
    for j, fp in enumerate(points):
        if fp is None:
            status[j] = "failed"
            continue
        Z[j] = fp.vector
        if reduced:
            eg[j] = float(model.eg_vector(fp.vector))
        else:
            R[j], Qm[j] = fp.state.R, fp.state.Q
            if fp.state.v is not None:
                vw[j] = fp.state.v
            eg[j] = fp.eg
        resid[j], status[j], nun[j] = fp.residual, fp.status, fp.n_unstable
        w = np.asarray(fp.eigenvalues, dtype=complex)
        ev_re[j], ev_im[j] = w.real, w.imag
        mx[j] = w.real.max()
    cr = np.array(crossings, dtype=float).reshape(-1, 7)
    one, rate = {"units": "1"}, {"units": "1/alpha"}
    what = {"eta": "learning rate", "weight_decay": "weight decay", "drift": "drift strength",
            "noise": "output noise"}[p]
    data = {
            **(_reduced_variables(model, Z, (p,)) if reduced else
               {"R": variable("R", (p, "i", "n"), R), "Q": variable("Q", (p, "i", "k"), Qm)}),
            "eg": variable("eg", p, eg),
            "residual": (p, resid, {"long_name": "max |d state / d alpha|", **rate}),
            "status": (p, status_codes(status), status_attrs("fixed-point status along the branch")),
            "n_unstable": (p, nun, {"long_name": "number of unstable directions (-1: no point)", **one}),
            "max_real": (p, mx, {"long_name": "largest real part of the spectrum", **rate}),
            "eigenvalue_real": ((p, "mode"), ev_re, {"long_name": "real part of Jacobian eigenvalue", **rate}),
            "eigenvalue_imag": ((p, "mode"), ev_im,
                                {"long_name": "imaginary part of Jacobian eigenvalue", **rate}),
            f"crossing_{p}": ("crossing", cr[:, 0], {"long_name": f"{what} of a zero crossing", **one}),
            "crossing_low": ("crossing", cr[:, 1], {"long_name": "lower end of the crossing interval", **one}),
            "crossing_high": ("crossing", cr[:, 2], {"long_name": "upper end of the crossing interval", **one}),
            "crossing_precision": ("crossing", cr[:, 3],
                                   {"long_name": "half width of the crossing interval", **one}),
            "crossing_location": ("crossing", cr[:, 6].astype(np.int8),
                                  {"long_name": "crossing located (bisected to xtol) or only bracketed", **one,
                                   "flag_values": np.arange(len(CROSSING_LOCATIONS), dtype=np.int8),
                                   "flag_meanings": " ".join(CROSSING_LOCATIONS)}),
            "crossing_n_before": ("crossing", cr[:, 4].astype(int),
                                  {"long_name": f"unstable directions at the lower-{p} side", **one}),
            "crossing_n_after": ("crossing", cr[:, 5].astype(int),
                                 {"long_name": f"unstable directions at the higher-{p} side", **one}),
    }
    if model.train_second_layer and not reduced:
        data["v"] = variable("v", (p, "i"), vw)
    units = {} if reduced else {"i": coordinate("i", np.arange(1, K + 1)), "k": coordinate("k", np.arange(1, K + 1)),
                                "n": coordinate("n", np.arange(1, M + 1))}
    ds = xr.Dataset(
        data,
        coords={
            p: coordinate(p, etas),
            "mode": coordinate("mode", np.arange(n), long_name="eigenmode (0 = largest real part)"),
            **units,
            "crossing": ("crossing", np.arange(len(cr)), {"long_name": "zero crossing index", **one}),
        },
    )
    params = model.parameters()
    ds.attrs.update(provenance_attrs({"model": params, "parameter": p, "values": etas.tolist(),
                                      "newton": opts.to_dict(), "xtol": float(xtol), "max_bisect": int(max_bisect)}))
    ds.attrs.update(model_attrs(params, exclude=(p,)), parameter=p,
                    n_points=int(n_done), complete=int(n_done == len(etas) and points[-1] is not None))
    if reduced:
        ds.attrs["subspace"] = model.subspace
    return ds
