"""How correlations approach their fixed point with depth."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..core.activations import Activation
from ..core.activations import activation as _lookup
from ..core.datasets import coordinate, provenance_attrs, variable
from .maps import _check_corr, _check_nonneg, _check_sw, _scalar, q_star
from .phases import eoc_asymptote

__all__ = ['correlation_depth_profile']


def correlation_depth_profile(
    activation: str | Activation,
    sigma_w2: float,
    sigma_b2: float,
    depth: int,
    *,
    c0: float = 0.0,
    q: float | None = None,
    n_angle: int = 24,
) -> xr.Dataset:
    """Correlation ``c_l`` of two inputs through ``depth`` layers at the variance fixed point.

    Iterates the cancellation-free map of ``delta_l = 1 - c_l`` (:func:`delta_map`),
    so ``1 - c_l`` keeps full relative precision even at ``1e-300``.

    Parameters
    ----------
    activation : str or Activation
    sigma_w2, sigma_b2 : float
    depth : int
        Number of layers ``>= 1``.
    c0 : float
        Input correlation in ``[-1, 1]``.
    q : float, optional
        The fixed point ``q*`` (both inputs are taken to sit at it); default
        :func:`q_star`.  For relu at ``(2, 0)`` every ``q`` is fixed and the
        profile does not depend on it.
    n_angle : int
        Gauss-Legendre nodes per angular wedge of the 2-D integrals (quadrature activations).

    Returns
    -------
    xarray.Dataset
        Coordinate ``layer`` (0..depth); variables ``c`` and ``one_minus_c``;
        attrs ``q_star``, ``chi_1``, ``asymptote`` (:func:`eoc_asymptote`).
    """
    if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth: must be an integer >= 1, got {depth!r}")
    c0 = float(_check_corr(_scalar(c0, "c0"), "c0"))
    sw = float(_check_sw(_scalar(sigma_w2, "sigma_w2")))
    sb = float(_check_nonneg(_scalar(sigma_b2, "sigma_b2"), "sigma_b2"))
    act = _lookup(activation)
    qs = q_star(act, sw, sb) if q is None else float(q)
    if not np.isfinite(qs) or qs <= 0:
        raise ValueError(f"q: the variance fixed point q* = {qs} must be finite and positive")
    delta = np.empty(depth + 1)
    delta[0] = 1.0 - c0
    d = delta[0]
    for layer in range(1, depth + 1):
        d = sw * float(act.delta_kernel(qs, d, n_angle=n_angle))
        delta[layer] = d
    layers = np.arange(depth + 1)
    chi = float(sw * act.slope_moment(qs))
    attrs = provenance_attrs(
        {"activation": act.name, "sigma_w2": sw, "sigma_b2": sb, "depth": int(depth),
         "c0": c0, "q": qs, "n_angle": n_angle},
        activation=act.name, kind="correlation_depth_profile", q_star=qs, chi_1=chi,
        asymptote=float(eoc_asymptote(act, sw, sb)),
    )
    return xr.Dataset(
        {
            "c": variable("c", "layer", 1.0 - delta),
            "one_minus_c": variable("one_minus_c", "layer", delta),
        },
        coords={"layer": coordinate("layer", layers)},
        attrs=attrs,
    )
