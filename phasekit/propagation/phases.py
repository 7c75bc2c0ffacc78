"""The edge of chaos and the phase diagram of deep random networks."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from scipy import optimize

from ..core.activations import Activation
from ..core.activations import activation as _lookup
from ..core.datasets import provenance_attrs
from ..core.parallel import parallel_map
from .averages import Array, _is_registered, _Kernel, _kernel, _ReluKernel
from .maps import (
    _Q_MAX,
    _Q_SCAN_MIN,
    PHASE_CHAOTIC,
    PHASE_ORDERED,
    PHASE_UNBOUNDED,
    _check_nonneg,
    _check_sw,
    _q_eff,
    _slope_c,
    _xi,
    c_star,
    q_star,
)

__all__ = ['critical_line', 'edge_of_chaos', 'eoc_asymptote', 'phase_diagram']


def _eoc_scalar(k: _Kernel, sb: float) -> tuple[float, float]:
    def B(q: Array) -> Array:
        return q - k.V(q) / k.D(q)

    def B1(q: float) -> float:
        # One evaluation path for the scan and for Brent's method: batched and scalar
        # quadratures round differently, and at a root on a grid node (e.g. q* = 10)
        # a sign flip of 1e-15 between them would leave Brent without a bracket.
        return float(B(np.array([q]))[0])

    grid = np.geomspace(_Q_SCAN_MIN, _Q_MAX, 201)
    b = np.array([B1(q) for q in grid])
    if np.all(np.abs(b) <= 1e-10 * grid):
        # Positively homogeneous g (relu, linear): every q* lies on the single EOC point.
        if sb == 0.0:
            return float(1.0 / k.D(1.0)), float("nan")
        raise ValueError(
            f"sigma_b2: {k.act.name!r} is positively homogeneous; its edge of chaos is the "
            f"single point sigma_b2 = 0 (got {sb})"
        )
    if sb == 0.0 and b[0] > 0:
        # B(q) > 0 for q > 0 and B(0) = 0: the EOC meets sigma_b2 = 0 at q* = 0.
        return float(1.0 / k.D(_q_eff(0.0))), 0.0
    f = b - sb
    roots = []
    for j in np.nonzero(np.sign(f[:-1]) * np.sign(f[1:]) <= 0)[0]:
        lo, hi = grid[j], grid[j + 1]
        if f[j] == 0.0:
            roots.append(float(lo))
            continue
        r = optimize.brentq(lambda q: B1(q) - sb, lo, hi, xtol=1e-300,
                            rtol=4 * np.finfo(float).eps, maxiter=500)
        roots.append(float(r))
    if not roots:
        raise ValueError(
            f"sigma_b2: no edge of chaos for {k.act.name!r} at sigma_b2 = {sb} "
            f"(B(q*) = q* - V/E[g'^2] ranges over [{b.min():.4g}, {b.max():.4g}] on q* in "
            f"[{_Q_SCAN_MIN:g}, {_Q_MAX:g}])"
        )
    roots = sorted(set(roots))
    # Prefer a q* that attracts the variance map (slope sigma_w2 dV/dq < 1).
    for r in roots:
        sw = 1.0 / float(k.D(r))
        if sw * float(k.dV(r)) < 1.0:
            return sw, r
    return 1.0 / float(k.D(roots[0])), roots[0]


def edge_of_chaos(activation: str | Activation, sigma_b2: Any) -> tuple[Any, Any]:
    """Weight variance on the edge of chaos for a given bias variance.

    Solves ``B(q*) = q* - V(q*) / E[g'(sqrt(q*) Z)^2] = sigma_b2`` for ``q*`` (the
    critical line parameterised by ``q*``), then ``sigma_w2 = 1 / E[g'^2]``.

    Parameters
    ----------
    activation : str or Activation
    sigma_b2 : float or array_like
        Bias variance(s) ``>= 0``.

    Returns
    -------
    sigma_w2, q_star : float or ndarray (shape of ``sigma_b2``)
        For positively homogeneous activations (relu, linear) the EOC is the
        single point ``sigma_b2 = 0`` with every ``q*`` critical: ``q_star`` is NaN.
        When ``B(q*) = sigma_b2`` has several roots the smallest whose variance map
        is attracting is returned; if none attracts (swish at small ``sigma_b2``:
        the variance map's slope at ``q*`` exceeds 1, so deep networks leave this
        ``q*``) the smallest root is returned.

    Raises
    ------
    ValueError
        If there is no edge of chaos at this ``sigma_b2`` (e.g. relu with
        ``sigma_b2 > 0``, softplus).
    """
    sb = _check_nonneg(sigma_b2, "sigma_b2")
    k = _kernel(activation)
    if sb.ndim == 0:
        return _eoc_scalar(k, float(sb))
    out = [_eoc_scalar(k, float(v)) for v in sb.ravel()]
    sw = np.array([o[0] for o in out]).reshape(sb.shape)
    qs = np.array([o[1] for o in out]).reshape(sb.shape)
    return sw, qs


def critical_line(activation: str | Activation, sigma_b2: Any) -> tuple[Array, Array]:
    """:func:`edge_of_chaos` on an array of ``sigma_b2``, NaN where there is none."""
    sb = np.atleast_1d(_check_nonneg(sigma_b2, "sigma_b2"))
    k = _kernel(activation)
    sw = np.full(sb.shape, np.nan)
    qs = np.full(sb.shape, np.nan)
    for i, v in enumerate(sb.ravel()):
        try:
            sw.flat[i], qs.flat[i] = _eoc_scalar(k, float(v))
        except ValueError:
            pass
    return sw, qs


def _phase_point(item: tuple[str | Activation, float, float, int, float]) -> tuple[float, ...]:
    """Order parameters of one ``(sigma_w2, sigma_b2)`` point (module level: picklable)."""
    act, sw, sb, n_angle, q0 = item
    k = _kernel(act, n_angle=n_angle)
    qs = q_star(act, sw, sb, q0=q0)
    chi = float(sw * k.D(_q_eff(qs)))
    if not np.isfinite(qs):
        return (qs, float("nan"), chi, float("nan"), float("nan"), float("nan"), PHASE_UNBOUNDED)
    cq = float(sw * k.dV(_q_eff(qs)))
    cs = c_star(act, sw, sb, q=qs, n_angle=n_angle)
    slope = chi if cs == 1.0 else _slope_c(k, sw, qs, cs)
    phase = PHASE_CHAOTIC if chi > 1.0 else PHASE_ORDERED
    return (qs, cs, chi, cq, _xi(cq), _xi(slope), phase)


def phase_diagram(
    activation: str | Activation,
    sigma_w2: Any = None,
    sigma_b2: Any = None,
    *,
    n_angle: int = 24,
    q0: float = 1.0,
    client: Any = None,
    n_workers: int | None = None,
) -> xr.Dataset:
    """Order/chaos phase diagram over a grid of ``(sigma_b2, sigma_w2)``.

    Points are independent: ``n_workers >= 2`` or a dask ``client`` spread them
    through :func:`phasekit.core.parallel.parallel_map` (default: in this process).

    Parameters
    ----------
    activation : str or Activation
    sigma_w2 : array_like, optional
        1-D grid of weight variances (default ``linspace(0.5, 5, 46)``).
    sigma_b2 : array_like, optional
        1-D grid of bias variances (default ``linspace(0, 0.5, 26)``).
    n_angle : int
        Gauss-Legendre nodes per angular wedge of the 2-D correlation integrals.
    q0 : float
        Input variance from which the variance map is iterated (:func:`q_star`).
    client, n_workers
        Passed to :func:`~phasekit.core.parallel.parallel_map` (``n_workers=1``: serial).

    Returns
    -------
    xarray.Dataset
        Dims ``(sigma_b2, sigma_w2)``; variables ``q_star``, ``c_star``, ``chi_1``,
        ``chi_q``, ``xi_q``, ``xi_c``, ``phase`` (0 ordered, 1 chaotic, 2
        unbounded variance), and the critical line ``eoc_sigma_w2``,
        ``eoc_q_star`` along ``sigma_b2`` (NaN where there is none) with
        ``eoc_q_attracting`` (1 where that ``q*`` attracts the variance map).
        Where the variance map has several attracting fixed points (swish), the
        one reached from ``q0`` is used.
    """
    act = _lookup(activation)
    sw = np.linspace(0.5, 5.0, 46) if sigma_w2 is None else np.atleast_1d(np.asarray(sigma_w2, float))
    sb = np.linspace(0.0, 0.5, 26) if sigma_b2 is None else np.atleast_1d(np.asarray(sigma_b2, float))
    if sw.ndim != 1 or sb.ndim != 1:
        raise ValueError("sigma_w2, sigma_b2: must be 1-D grids")
    _check_sw(sw)
    _check_nonneg(sb, "sigma_b2")
    # Registered activations travel by name so that workers use the same closed forms.
    token = act.name if _is_registered(act) else act
    items = [(token, float(w), float(b), int(n_angle), float(q0)) for b in sb for w in sw]
    results = np.array(parallel_map(_phase_point, items, client=client, n_workers=n_workers),
                       dtype=float).reshape(sb.size, sw.size, 7)
    eoc_sw, eoc_q = critical_line(act, sb)
    k = _kernel(act)
    with np.errstate(invalid="ignore"):
        # Whether q* on the line attracts the variance map (it need not: swish at small sigma_b2).
        eoc_attr = np.where(np.isfinite(eoc_q) & (eoc_q > 0),
                            (eoc_sw * k.dV(np.where(np.isfinite(eoc_q), eoc_q, 1.0)) < 1.0), True)
    eoc_attr = np.where(np.isfinite(eoc_sw), eoc_attr, False).astype(np.int32)
    dims = ("sigma_b2", "sigma_w2")
    specs = [
        ("q_star", "fixed point of the variance map q*", "1"),
        ("c_star", "attracting fixed point of the correlation map c*", "1"),
        ("chi_1", "slope of the correlation map at c = 1, chi_1", "1"),
        ("chi_q", "slope of the variance map at q*", "1"),
        ("xi_q", "depth scale of the variance map xi_q", "layers"),
        ("xi_c", "depth scale of the correlation map xi_c", "layers"),
    ]
    data_vars = {
        name: (dims, results[..., j], {"long_name": ln, "units": u})
        for j, (name, ln, u) in enumerate(specs)
    }
    data_vars["phase"] = (dims, results[..., 6].astype(np.int32), {
        "long_name": "phase (0 ordered, 1 chaotic, 2 unbounded variance)", "units": "1",
        "flag_values": "0 1 2", "flag_meanings": "ordered chaotic unbounded"})
    data_vars["eoc_sigma_w2"] = ("sigma_b2", eoc_sw, {
        "long_name": "weight variance on the edge of chaos", "units": "1"})
    data_vars["eoc_q_star"] = ("sigma_b2", eoc_q, {
        "long_name": "q* on the edge of chaos", "units": "1"})
    data_vars["eoc_q_attracting"] = ("sigma_b2", eoc_attr, {
        "long_name": "q* on the edge of chaos attracts the variance map (1) or not (0)",
        "units": "1"})
    coords = {
        "sigma_b2": ("sigma_b2", sb, {"long_name": "bias variance sigma_b^2", "units": "1"}),
        "sigma_w2": ("sigma_w2", sw, {"long_name": "weight variance sigma_w^2", "units": "1"}),
    }
    params = {"activation": act.name, "sigma_w2": sw, "sigma_b2": sb, "n_angle": n_angle,
              "q0": q0}
    return xr.Dataset(data_vars, coords, attrs=provenance_attrs(
        params, activation=act.name, kind="phase_diagram"))


def eoc_asymptote(activation: str | Activation, sigma_w2: float, sigma_b2: float) -> float:
    """Predicted large-depth constant of ``1 - c_l`` on the edge of chaos.

    Smooth ``g``: ``delta' = delta - (sigma_w2 J'(1) / 2) delta^2 + ...`` with
    ``J'(1) = q* E[g''(sqrt(q*) Z)^2]``, so ``l (1 - c_l) -> 2 / (sigma_w2 q* E[g''^2])``.
    relu: ``delta' = delta - (2 sqrt 2 / (3 pi)) delta^(3/2) + ...``, so
    ``l^2 (1 - c_l) -> 9 pi^2 / 2``.  Returns NaN when ``g''`` is not available.
    """
    act = _lookup(activation)
    k = _kernel(act)
    if isinstance(k, _ReluKernel):
        return 4.5 * np.pi**2
    qs = q_star(act, sigma_w2, sigma_b2)
    d2 = float(k.d2(qs))
    if not np.isfinite(d2) or d2 <= 0 or not np.isfinite(qs) or qs <= 0:
        return float("nan")
    return 2.0 / (sigma_w2 * qs * d2)
