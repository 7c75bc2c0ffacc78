"""Learning dynamics of deep linear networks on whitened inputs.

A chain of ``k`` weight matrices ``W = W_k ... W_1`` is trained by gradient flow
``tau dW_i/dt = -dL/dW_i`` on::

    L = (1/2) E|y - W x|^2 + (lambda / 2) sum_i |W_i|_F^2,    E[x x^T] = identity,

with input-output correlation ``E[y x^T] = U S V^T``.  From a small *balanced,
aligned* initialisation (``W_1 = R_1 A V^T``, ``W_i = R_i A R_{i-1}^T``,
``W_k = U A R_{k-1}^T`` with orthogonal ``R_i`` and ``A = diag(a_0)``) every mode
``alpha`` decouples: its layers carry one scalar each, ``a_1 .. a_k``, with::

    tau da_i/dt = (s - u) prod_{j != i} a_j - lambda a_i,       u = prod_j a_j,

and ``d(a_i^2 - a_j^2)/dt = -2 (lambda / tau) (a_i^2 - a_j^2)`` keeps the layers
balanced, ``a_i = v = u^(1/k)``.  The mode strength ``u = u_alpha^T W v_alpha`` obeys::

    tau du/dt = k u^(2 - 2/k) (s - u) - k lambda u.

- ``k = 2``: ``tau du/dt = 2 u (s' - u)`` with ``s' = s - lambda`` (weight decay
  shifts the target to ``s - lambda``) and
  ``u(t) = s' e^(2 s' t / tau) / (e^(2 s' t / tau) - 1 + s' / u0)``.
- ``k = 1``: ``u(t) = u* + (u0 - u*) e^(-(1 + lambda) t / tau)``, ``u* = s / (1 + lambda)``.
- ``k >= 3``: with ``v = u^(1/k)``, ``tau dv/dt = v P(v)``,
  ``P(v) = s v^(k-2) - v^(2k-2) - lambda``, so the learning time
  ``t = tau int dv / (v P(v))`` is a rational integral done by partial fractions::

      lambda > 0:  t / tau = -ln(v / v0) / lambda
                            + Re sum_r ln((v - r) / (v0 - r)) / (r P'(r)),   r: roots of P;
      lambda = 0:  t / tau = (v^(2-k) - v0^(2-k)) / (s (2 - k))
                            - Re sum_j r_j^(2-k) ln((v - r_j) / (v0 - r_j)) / (k s),
                   r_j = s^(1/k) e^(2 pi i j / k)

  (principal logarithms: along a real path the argument of ``v - r`` turns by
  less than pi).  ``u(t)`` follows by inverting the monotone ``t(v)`` (bisection
  in ``ln v`` to machine precision).  With ``k >= 3`` and weight decay the
  nonzero fixed points solve ``s - u = lambda u^(2/k - 1)``: a stable one near
  ``s`` and an unstable one near 0, so weight decay adds a barrier that a
  too-small initialisation cannot cross.

Fixed points are returned as :class:`phasekit.FixedPoint`, the committee
machine's result type (state vector, Jacobian eigenvalues and eigenvectors,
stability; ``model`` is ``None``), in layer coordinates ``(a_1, ..., a_k)`` or in the
mode strength ``u``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from ..core.datasets import coordinate, provenance_attrs, variable
from ..core.ode import solve_flow
from ..core.options import SolverOptions

__all__ = ['layer_rhs', 'learning_time', 'mode_rhs', 'mode_strength', 'mode_strength_ode', 'mode_trajectories']


Array = np.ndarray


def _check_depth(depth: Any) -> int:
    if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth: must be an integer >= 1, got {depth!r}")
    return int(depth)


def _check_params(s: Any, weight_decay: Any, tau: Any) -> tuple[float, float, float]:
    s = float(s)
    lam = float(weight_decay)
    tau = float(tau)
    if not np.isfinite(s) or s < 0:
        raise ValueError(f"s: singular value must be finite and >= 0, got {s!r}")
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"weight_decay: must be finite and >= 0, got {lam!r}")
    if not np.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau: must be finite and > 0, got {tau!r}")
    return s, lam, tau


def _check_u(u: Any, name: str, depth: int) -> Array:
    arr = np.asarray(u, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: must be finite, got {u!r}")
    if depth >= 2 and np.any(arr <= 0):
        raise ValueError(f"{name}: mode strengths of depth >= 2 chains must be > 0 "
                         f"(positive balanced branch), got {u!r}")
    return arr


def mode_rhs(u: Any, s: float, *, depth: int = 2, weight_decay: float = 0.0,
             tau: float = 1.0) -> Array:
    """``du/dt = (k / tau) (u^(2 - 2/k) (s - u) - lambda u)`` for mode strengths ``u >= 0``.

    Parameters
    ----------
    u : array_like
        Mode strength(s) (``>= 0`` for ``k >= 2``).
    s : float
        Singular value of the input-output correlation, ``>= 0``.
    depth : int
        Number of weight matrices ``k >= 1``.
    weight_decay : float
        ``lambda >= 0`` (the same on every layer).
    tau : float
        Time constant ``> 0``.
    """
    k = _check_depth(depth)
    s, lam, tau = _check_params(s, weight_decay, tau)
    u = np.asarray(u, dtype=float)
    return (k / tau) * (np.abs(u) ** (2.0 - 2.0 / k) * (s - u) - lam * u)


def layer_rhs(a: Any, s: float, *, weight_decay: float = 0.0, tau: float = 1.0) -> Array:
    """Per-layer flow of one mode: ``tau da_i/dt = (s - u) prod_{j != i} a_j - lambda a_i``.

    Parameters
    ----------
    a : array_like, shape (k,)
        The mode's scalar weight in each of the ``k`` layers.
    s, weight_decay, tau : float

    Returns
    -------
    ndarray, shape (k,)
    """
    s, lam, tau = _check_params(s, weight_decay, tau)
    a = np.asarray(a, dtype=float)
    if a.ndim != 1 or a.size < 1:
        raise ValueError(f"a: must be a 1-D array of layer weights, got shape {a.shape}")
    others = np.array([np.prod(np.delete(a, i)) for i in range(a.size)])
    u = np.prod(a)
    return ((s - u) * others - lam * a) / tau


def _layer_jacobian(a: Array, s: float, lam: float, tau: float) -> Array:
    k = a.size
    Jm = np.empty((k, k))
    for i in range(k):
        pi = np.prod(np.delete(a, i))
        for m in range(k):
            if m == i:
                Jm[i, m] = -pi * pi - lam
            else:
                pm = np.prod(np.delete(a, m))
                pim = np.prod(np.delete(a, [i, m]))
                Jm[i, m] = -pi * pm + (s - np.prod(a)) * pim
    return Jm / tau


def _phi(x: Array) -> Array:
    """``expm1(x) / x`` with the limit 1 at 0."""
    x = np.asarray(x, dtype=float)
    safe = np.where(x == 0, 1.0, x)
    return np.where(x == 0, 1.0, np.expm1(safe) / safe)


def _u_depth2(t: Array, s: float, u0: float, lam: float, tau: float) -> Array:
    # u = u0 e^x / (1 + u0 (e^x - 1) / s'), x = 2 s' t / tau, written without overflow
    # and continuous through s' = s - lambda = 0 (where u = u0 / (1 + 2 u0 t / tau)).
    sp = s - lam
    x = 2.0 * sp * t / tau
    T = 2.0 * t / tau
    with np.errstate(over="ignore"):
        neg = u0 * np.exp(np.minimum(x, 0.0)) / (1.0 + u0 * T * _phi(np.minimum(x, 0.0)))
        pos = u0 / (np.exp(-np.maximum(x, 0.0)) + u0 * T * _phi(-np.maximum(x, 0.0)))
    return np.where(x <= 0, neg, pos)


def _u_depth1(t: Array, s: float, u0: float, lam: float, tau: float) -> Array:
    ustar = s / (1.0 + lam)
    return ustar + (u0 - ustar) * np.exp(-(1.0 + lam) * t / tau)


@dataclass(frozen=True)
class _RationalFlow:
    """``tau dv/dt = v P(v)`` for ``k >= 2`` with its partial-fraction learning time."""

    k: int
    s: float
    lam: float
    tau: float

    def P(self, v: Array) -> Array:
        k = self.k
        return self.s * v ** (k - 2) - v ** (2 * k - 2) - self.lam

    def roots(self) -> Array:
        """Roots of ``P`` (``lambda > 0``) or of ``s - v^k`` (``lambda = 0``), Newton-polished."""
        k = self.k
        if self.lam > 0:
            coeffs = np.zeros(2 * k - 1)
            coeffs[0] = -1.0
            coeffs[k] += self.s       # v^(k-2)
            coeffs[-1] -= self.lam
            r = np.roots(coeffs).astype(complex)
            P = lambda x: self.s * x ** (k - 2) - x ** (2 * k - 2) - self.lam  # noqa: E731
            dP = lambda x: (self.s * (k - 2) * x ** (k - 3) if k > 2 else 0.0) \
                - (2 * k - 2) * x ** (2 * k - 3)  # noqa: E731
        else:
            r = self.s ** (1.0 / k) * np.exp(2j * np.pi * np.arange(k) / k)
            P = lambda x: self.s - x ** k  # noqa: E731
            dP = lambda x: -k * x ** (k - 1)  # noqa: E731
        for _ in range(3):
            d = dP(r)
            r = np.where(d != 0, r - P(r) / np.where(d != 0, d, 1.0), r)
        return r

    def real_positive_roots(self) -> Array:
        r = self.roots()
        real = r[np.abs(r.imag) <= 1e-9 * np.maximum(1.0, np.abs(r.real))].real
        return np.sort(real[real > 0])

    def time(self, v: Array, v0: float) -> Array:
        """Learning time from ``v0`` to ``v`` (same side of every fixed point)."""
        k, s, lam, tau = self.k, self.s, self.lam, self.tau
        v = np.asarray(v, dtype=float)
        if lam > 0:
            # 1 / (v P(v)) = 1 / (P(0) v) + sum_r 1 / (r P'(r) (v - r)); P(0) = -lambda for k >= 3
            r = self.roots()
            dPr = (s * (k - 2) * r ** (k - 3) if k > 2 else 0.0) - (2 * k - 2) * r ** (2 * k - 3)
            coef = 1.0 / (r * dPr)
            p0 = (s if k == 2 else 0.0) - lam
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.log((v[..., None] - r) / (v0 - r))
                total = np.log(v / v0) / p0 + (logs @ coef).real
            return tau * total
        if s == 0.0:
            # tau dv/dt = -v^(2k-1)
            with np.errstate(over="ignore", divide="ignore"):
                return tau * (v ** (2.0 - 2 * k) - v0 ** (2.0 - 2 * k)) / (2 * k - 2)
        r = self.roots()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if k == 2:
                first = np.log(v / v0) / s
            else:
                first = (v ** (2.0 - k) - v0 ** (2.0 - k)) / (s * (2.0 - k))
            logs = np.log((v[..., None] - r) / (v0 - r))
            second = -(logs @ (r ** (2.0 - k))).real / (k * s)
        return tau * (first + second)

    def target(self, v0: float) -> float:
        """The fixed point ``v`` approaches from ``v0`` (0 or a positive root of P)."""
        p0 = float(self.P(np.array(v0)))
        roots = self.real_positive_roots()
        if p0 > 0:
            above = roots[roots > v0]
            return float(above[0]) if above.size else float("inf")
        if p0 < 0:
            below = roots[roots < v0]
            return float(below[-1]) if below.size else 0.0
        return v0

    def v_at(self, t: Array, v0: float) -> Array:
        """Invert ``t(v)``: bisection in ``ln v`` between ``v0`` and the target."""
        t = np.asarray(t, dtype=float)
        vt = self.target(v0)
        if vt == v0:
            return np.full(t.shape, v0)
        x0 = np.log(v0)
        if vt == 0.0:
            x_end = x0 - 745.0  # the smallest doubles
        elif np.isinf(vt):
            x_end = x0 + 745.0
        else:
            x_end = np.log(vt)
        lo = np.full(t.shape, x0)
        hi = np.full(t.shape, x_end)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            tm = self.time(np.exp(mid), v0)
            # t(v) increases from 0 at v0 to +inf at the target (NaN there counts as "beyond")
            go = tm <= t
            lo = np.where(go, mid, lo)
            hi = np.where(go, hi, mid)
            if np.all(np.abs(hi - lo) <= 4e-16 * np.maximum(1.0, np.abs(lo))):
                break
        out = np.exp(0.5 * (lo + hi))
        return np.where(t <= 0, v0, out)


def mode_strength(t: Any, s: float, u0: float, *, depth: int = 2, weight_decay: float = 0.0,
                  tau: float = 1.0) -> Array:
    """Mode strength ``u(t)`` in closed form.

    Explicit for ``k = 1, 2``; for ``k >= 3`` the exact learning time ``t(u)``
    (partial fractions, see the module docstring) is inverted to machine precision.

    Parameters
    ----------
    t : array_like
        Times ``>= 0`` (units of ``tau``).
    s : float
        Singular value ``>= 0``.
    u0 : float
        Initial strength (``> 0`` for ``k >= 2``).
    depth : int
        ``k >= 1`` weight matrices.
    weight_decay : float
        ``lambda >= 0`` on every layer.
    tau : float
        Time constant ``> 0``.

    Returns
    -------
    ndarray, shape of ``t``
    """
    k = _check_depth(depth)
    s, lam, tau = _check_params(s, weight_decay, tau)
    u0 = float(_check_u(u0, "u0", k))
    t = np.asarray(t, dtype=float)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"t: times must be finite and >= 0, got {t!r}")
    if k == 1:
        return _u_depth1(t, s, u0, lam, tau)
    if k == 2:
        return _u_depth2(t, s, u0, lam, tau)
    flow = _RationalFlow(k, s, lam, tau)
    return flow.v_at(t, u0 ** (1.0 / k)) ** k


def learning_time(u_start: float, u_end: Any, s: float, *, depth: int = 2,
                  weight_decay: float = 0.0, tau: float = 1.0) -> Array:
    """Time for a mode to go from strength ``u_start`` to ``u_end`` (closed form).

    ``k = 2``: ``(tau / (2 s')) ln(u_end (s' - u_start) / (u_start (s' - u_end)))``,
    ``s' = s - lambda`` (``(tau / 2)(1/u_start - 1/u_end)`` at ``s' = 0``).

    Returns ``inf`` when ``u_end`` lies beyond the fixed point the mode approaches,
    and ``nan`` when it lies on the other side of ``u_start``.
    """
    k = _check_depth(depth)
    s, lam, tau = _check_params(s, weight_decay, tau)
    u_start = float(_check_u(u_start, "u_start", k))
    u_end = _check_u(u_end, "u_end", k)
    if k == 1:
        ustar = s / (1.0 + lam)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = tau / (1.0 + lam) * np.log((u_start - ustar) / (u_end - ustar))
    elif k == 2:
        sp = s - lam
        with np.errstate(divide="ignore", invalid="ignore"):
            if sp == 0.0:
                out = 0.5 * tau * (1.0 / u_start - 1.0 / u_end)
            else:
                out = tau / (2.0 * sp) * np.log(u_end * (sp - u_start) / (u_start * (sp - u_end)))
    else:
        flow = _RationalFlow(k, s, lam, tau)
        v0 = u_start ** (1.0 / k)
        out = flow.time(u_end ** (1.0 / k), v0)
    out = np.asarray(out, dtype=float)
    # Reachable only between u_start and the fixed point the mode approaches.
    target = _target_u(k, s, lam, u_start)
    span = target - u_start
    if span == 0.0:
        return np.where(u_end == u_start, 0.0, np.nan)
    progress = (u_end - u_start) / span       # 0 at u_start, 1 at the fixed point
    out = np.where(progress < 0, np.nan, np.where(progress >= 1, np.inf, out))
    return out


def _target_u(k: int, s: float, lam: float, u0: float) -> float:
    if k == 1:
        return s / (1.0 + lam)
    if k == 2:
        sp = s - lam
        return sp if (sp > 0) else 0.0
    flow = _RationalFlow(k, s, lam, 1.0)
    return flow.target(u0 ** (1.0 / k)) ** k


def mode_strength_ode(t: Any, s: float, u0: float, *, depth: int = 2,
                      weight_decay: float = 0.0, tau: float = 1.0,
                      rtol: float = 1e-13, atol: float = 1e-16) -> Array:
    """``u(t)`` by integrating :func:`mode_rhs` (DOP853), the check on the closed form.

    Parameters as :func:`mode_strength`; ``t`` must be sorted ascending.
    """
    k = _check_depth(depth)
    s, lam, tau = _check_params(s, weight_decay, tau)
    u0 = float(_check_u(u0, "u0", k))
    t = np.asarray(t, dtype=float)
    if t.ndim != 1 or np.any(np.diff(t) < 0) or np.any(t < 0):
        raise ValueError("t: must be a 1-D ascending array of times >= 0")

    def rhs(_t: float, y: Array) -> Array:
        return (k / tau) * (np.abs(y) ** (2.0 - 2.0 / k) * (s - y) - lam * y)

    run = solve_flow(rhs, [u0], (0.0, float(t[-1]) if t.size else 0.0), t_eval=t,
                     options=SolverOptions(method="DOP853", rtol=rtol, atol=atol))
    if run.status != "ok":
        raise RuntimeError(f"mode_strength_ode: integration failed: {run.message}")
    return run.y[:, 0]


def _as_modes(singular_values: Any, u0: Any) -> tuple[Array, Array]:
    sv = np.atleast_1d(np.asarray(singular_values, dtype=float))
    if sv.ndim != 1 or np.any(~np.isfinite(sv)) or np.any(sv < 0):
        raise ValueError("singular_values: must be a 1-D array of finite values >= 0, "
                         f"got {singular_values!r}")
    u0 = np.broadcast_to(np.asarray(u0, dtype=float), sv.shape).copy()
    return sv, u0


def mode_trajectories(singular_values: Any, t: Any, u0: Any = 1e-3, *, depth: int = 2,
                      weight_decay: float = 0.0, tau: float = 1.0) -> xr.Dataset:
    """Closed-form ``u_alpha(t)`` for several modes.

    Parameters
    ----------
    singular_values : array_like, shape (n_modes,)
    t : array_like, shape (n_times,)
        Times ``>= 0`` in units of the learning time constant.
    u0 : float or array_like, shape (n_modes,)
        Initial strengths.
    depth, weight_decay, tau
        As :func:`mode_strength`.

    Returns
    -------
    xarray.Dataset
        ``u(mode, time)``, ``singular_value(mode)``, ``u0(mode)``, ``fixed_point(mode)``.
    """
    k = _check_depth(depth)
    sv, u0 = _as_modes(singular_values, u0)
    t = np.asarray(t, dtype=float)
    u = np.stack([mode_strength(t, s, a, depth=k, weight_decay=weight_decay, tau=tau)
                  for s, a in zip(sv, u0)])
    target = np.array([_target_u(k, s, float(weight_decay), a) for s, a in zip(sv, u0)])
    params = {"singular_values": sv, "u0": u0, "depth": k, "weight_decay": weight_decay, "tau": tau}
    return xr.Dataset(
        {
            "u": variable("u", ("mode", "time"), u),
            "singular_value": variable("singular_value", "mode", sv),
            "u0": variable("u0", "mode", u0),
            "fixed_point": variable("fixed_point", "mode", target),
        },
        coords={"mode": coordinate("mode", np.arange(sv.size)), "time": coordinate("time", t)},
        attrs=provenance_attrs(params, kind="deep_linear_theory", depth=k,
                               weight_decay=float(weight_decay), tau=float(tau)),
    )
