"""Activation functions with every Gaussian kernel phasekit's systems need, and a registry.

An :class:`Activation` carries its function ``g`` and derivatives and answers
every Gaussian expectation the systems ask for; no system looks an activation
up by name for its kernels.  Three families:

**Committee moments** (the order-parameter equations), for zero-mean Gaussian
arguments with covariance ``C`` (rows in the order of the arguments):

====  ==================================  ===========
name  expectation                         ``C`` shape
====  ==================================  ===========
I2    ``< g(a) g(b) >``                   (..., 2, 2)
J2    ``< g'(a) g'(b) >``                 (..., 2, 2)
H2    ``< g''(a) g(b) >``                 (..., 2, 2)
I3    ``< g'(a) b g(c) >``                (..., 3, 3)
I4    ``< g'(a) g'(b) g(c) g(d) >``       (..., 4, 4)
====  ==================================  ===========

Gaussian integration by parts (Stein's lemma) on the linear argument gives
``I3(a, b, c) = C_ab H2(a, c) + C_bc J2(a, c)``.  Closed forms where the
activation has them (erf, relu, linear: :mod:`phasekit.core.closed_forms`),
else the nested adaptive quadrature of
:func:`phasekit.core.quadrature.nested_expectation`, split at each activation's
``kinks``: I2, J2, H2 and I3 to ~1e-10 and I4 to ~1e-8 (absolute, for values
of order 1) for variances up to 10.  :meth:`Activation.J2grad` and
:meth:`Activation.D2` exist as closed forms only.

**Propagation kernels** (signal propagation in deep random networks), at
pre-activation variance ``q`` and correlation ``c = 1 - delta``:
:meth:`~Activation.variance_map` ``V(q) = E[g(sqrt(q) Z)^2]``,
:meth:`~Activation.variance_map_slope` ``dV/dq``,
:meth:`~Activation.slope_moment` ``E[g'^2]``,
:meth:`~Activation.curvature_moment` ``E[g''^2]``,
:meth:`~Activation.correlation_kernel` ``E[g(u) g(v)]``,
:meth:`~Activation.slope_correlation_kernel` ``J = E[g'(u) g'(v)]`` and
:meth:`~Activation.delta_kernel` ``W(q, delta) = int_{1-delta}^1 J(s) ds``, which
keeps the relative precision of ``delta`` however small.  Without closed
forms: the composite 1-D rule and the polar 2-D rule of
:mod:`phasekit.core.rules` (~1e-14 and ~1e-10), with ``W`` by Gauss-Legendre
over ``J`` below ``delta = 1e-4`` and as ``E[(g(u) - g(v))^2] / (2 q)`` above.

**Pair moments of two-layer networks** (the population loss, its gradient and
the tangent model of :mod:`phasekit.lazy_training`), in the covariance entries
``(c11, c22, c12)``: :meth:`~Activation.pair_moments`,
:meth:`~Activation.third_moments`, :meth:`~Activation.relu_moments`.  Closed
forms if the activation has them, else its probit mixture
(:class:`~phasekit.core.closed_forms.ProbitMixture`: exact for erf, ~2e-9 for
sigmoid and tanh, derivatives of every order exact), else Gauss-Hermite on
the Cholesky factor of each 2x2 covariance (smooth in the covariance).

Users add activations with :func:`register_activation`; closed forms are
optional and, where given, used by every system alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from . import closed_forms as _cf
from . import kernels as _kernels
from .closed_forms import ProbitMixture
from .quadrature import gaussian_expectation, nested_expectation

__all__ = ['Activation', 'activation', 'available_activations', 'expect_H2', 'expect_I2', 'expect_I3', 'expect_I4',
           'expect_J2', 'is_registered', 'register_activation']


Array = np.ndarray


Func = Callable[[Array], Array]


_COMMITTEE_KEYS = ("I2", "J2", "H2", "I4", "H2J2", "I4_blocks", "I4_entries", "I4_coinciding", "J2grad", "D2")


_PROPAGATION_KEYS = ("variance_map", "variance_map_slope", "slope_moment", "curvature_moment",
                     "correlation_kernel", "slope_correlation_kernel", "delta_kernel")


_CLOSED_FORM_KEYS = _COMMITTEE_KEYS + _PROPAGATION_KEYS + ("relu_moments",)


# Default Gauss-Hermite nodes per dimension of the pair moments without closed forms.
_PAIR_NODES = 32


@dataclass(frozen=True, eq=False)
class Activation:
    """A hidden-unit activation ``g`` with every Gaussian kernel the systems need.

    Parameters
    ----------
    name : str
        Registry name.
    g, dg : callable
        The function and its derivative, vectorised over ndarrays.
    d2g : callable, optional
        Second derivative.  Without it ``H2`` uses Stein's lemma on ``E[a g'(a) g(b)]``.
    closed_forms : mapping, optional
        Closed forms (any subset; missing ones use quadrature), each a function
        of broadcastable arrays:

        * committee moments of the covariance entries: ``"I2"``, ``"J2"``,
          ``"H2"`` as ``f(c11, c22, c12)``; ``"I4"`` as
          ``f(c11, c22, c33, c44, c12, c13, c14, c23, c24, c34)``;
          ``"H2J2"`` returns ``(H2, J2)`` together when they share work (used by
          the ODE right-hand side); ``"I4_blocks"``, ``f(ii, kk, ik, uu, iu, ku, uw,
          pu, pw)``, ``I4`` of many blocks at once from per-field tables (see
          :func:`phasekit.core.closed_forms.erf_I4_blocks`; used by the batched
          flow); ``"I4_entries"``, ``f(var, off, plan=None)``, ``I4`` of blocks
          from their variances ``(..., n, 4)`` and covariances ``(..., n, 6)`` (pair
          order ``12, 13, 14, 23, 24, 34``), with ``plan`` what ``"I4_coinciding"``,
          ``f(var_at, off_at)``, finds in labels of the entries (equal labels, equal
          entries; the flow applies it once to the positions of its blocks' entries).
          Two keys make :meth:`phasekit.Committee.eg`
          accurate to a few ulps near the perfect solution (where its sum over
          field pairs cancels): ``"J2grad"``, ``f(c11, c22, c12) -> (< g'(a) g'(b) >,
          < g''(a) g''(b) >, < g'''(a) g'(b) >, < g'(a) g'''(b) >)`` (``J2`` and, by
          Price's theorem, ``dJ2/dc12``, ``2 dJ2/dc11``, ``2 dJ2/dc22``; also the
          third moments of the tangent model), and, for an activation with a
          kink, ``"D2"``, ``f(c22, dq, dr) -> < (g(a) - g(b))^2 >`` for
          ``c11 = c22 + dq``, ``c12 = c22 + dr``, accurate when ``dq, dr`` are small;
        * propagation kernels: ``"variance_map"``, ``"variance_map_slope"``,
          ``"slope_moment"``, ``"curvature_moment"`` as ``f(q)``,
          ``"correlation_kernel"`` as ``f(q1, q2, c)``, ``"slope_correlation_kernel"``
          and ``"delta_kernel"`` as ``f(q, delta)`` (the methods of the same names);
        * ``"relu_moments"``, ``f(c11, c22, c12) -> (< g(u) relu(v) >,
          < g''(u) relu(v) >, < g'(u) step(v) >)``.
    quadrature_nodes : (int, int), optional
        ``None`` (default): committee moments without closed forms use the nested
        adaptive quadrature of :func:`phasekit.core.quadrature.nested_expectation`
        (I2, J2, H2 and I3 to ~1e-10, I4 to ~1e-8, for variances up to 10).
        A pair ``(n2, n4)`` selects tensor Gauss-Hermite with that many nodes
        per dimension for the 2-D and 4-D expectations instead: fast, but
        accurate only for smooth activations at variances of order 1.
    description : str
        One line for tables and reports.
    kinks : tuple of float
        Points where ``g`` or one of its derivatives is not analytic (``0`` for
        elu, where ``g''`` jumps); the quadrature splits its integrals there.
        Default ``(0.0,)``, which costs nothing for smooth activations.
    probit_mixture : ProbitMixture, optional
        ``g`` as a mixture of Gaussian CDFs; the pair moments of two-layer
        networks without closed forms then come from it.  Checked against
        ``g`` to ``1e-6`` at a few points.

    Raises
    ------
    ValueError
        If ``g``, ``dg`` or ``d2g`` do not map an ndarray to a finite ndarray of
        the same shape, or another field has a value outside its allowed set.
    """

    name: str
    g: Func
    dg: Func
    d2g: Func | None = None
    closed_forms: Mapping[str, Callable[[Array], Array]] = field(default_factory=dict)
    quadrature_nodes: tuple[int, int] | None = None
    description: str = ""
    kinks: tuple[float, ...] = (0.0,)
    probit_mixture: ProbitMixture | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: must be a non-empty string, got {self.name!r}")
        for label in ("g", "dg", "d2g"):
            f = getattr(self, label)
            if f is not None or label != "d2g":
                _check_function(label, f)
        if not isinstance(self.closed_forms, Mapping):
            raise ValueError(f"closed_forms: must be a mapping of names to functions, got "
                             f"{type(self.closed_forms).__name__}")
        unknown = set(self.closed_forms) - set(_CLOSED_FORM_KEYS)
        if unknown:
            raise ValueError(
                f"closed_forms: unknown key(s) {sorted(unknown)}; allowed: {list(_CLOSED_FORM_KEYS)}"
            )
        bad = sorted(k for k, f in self.closed_forms.items() if not callable(f))
        if bad:
            raise ValueError(f"closed_forms: values must be callables, not for {bad}")
        q = self.quadrature_nodes
        if q is not None:
            if (not isinstance(q, (tuple, list)) or len(q) != 2
                    or not all(isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_))
                               and n >= 1 for n in q)):
                raise ValueError(f"quadrature_nodes: must be None or a pair of integers >= 1, got {q!r}")
            object.__setattr__(self, "quadrature_nodes", (int(q[0]), int(q[1])))
        if not isinstance(self.description, str):
            raise ValueError(f"description: must be a string, got {type(self.description).__name__}")
        try:
            kinks = tuple(float(k) for k in self.kinks)
        except (TypeError, ValueError):
            kinks = None
        if kinks is None or not all(np.isfinite(kinks)) or isinstance(self.kinks, (str, bytes)):
            raise ValueError(f"kinks: must be a sequence of finite numbers, got {self.kinks!r}")
        object.__setattr__(self, "kinks", tuple(sorted(set(kinks))))
        mix = self.probit_mixture
        if mix is not None:
            if not isinstance(mix, ProbitMixture):
                raise ValueError(f"probit_mixture: expected a phasekit.core.closed_forms.ProbitMixture or None, "
                                 f"got {type(mix).__name__}")
            err = float(np.max(np.abs(mix(_PROBE) - self.g(_PROBE))))
            if not err <= 1e-6:
                raise ValueError(f"probit_mixture: differs from g by {err:.3g} at the probe points (allowed 1e-6)")

    def __repr__(self) -> str:
        forms = ",".join(sorted(self.closed_forms)) or "none"
        return f"Activation({self.name!r}, closed forms: {forms})"

    # --- committee moments ---------------------------------------------------------------

    def I2(self, C: Array) -> Array:
        """``< g(a) g(b) >`` for ``C`` of shape (..., 2, 2)."""
        return expect_I2(C, self, self)

    def J2(self, C: Array) -> Array:
        """``< g'(a) g'(b) >`` for ``C`` of shape (..., 2, 2)."""
        return expect_J2(C, self, self)

    def H2(self, C: Array) -> Array:
        """``< g''(a) g(b) >`` for ``C`` of shape (..., 2, 2)."""
        return expect_H2(C, self, self)

    def I3(self, C: Array) -> Array:
        """``< g'(a) b g(c) >`` for ``C`` of shape (..., 3, 3)."""
        return expect_I3(C, self, self)

    def I4(self, C: Array) -> Array:
        """``< g'(a) g'(b) g(c) g(d) >`` for ``C`` of shape (..., 4, 4)."""
        return expect_I4(C, self, self, self)

    def J2grad(self, C: Array) -> tuple[Array, Array, Array, Array]:
        """``(< g'g' >, < g''(a) g''(b) >, < g'''(a) g'(b) >, < g'(a) g'''(b) >)`` for ``C`` of shape (..., 2, 2).

        Closed form only (``"J2grad"``); ``ValueError`` without one.
        """
        C = _check_shape(C, 2, "J2grad")
        return self._form("J2grad")(*_unpack2(C))

    def D2(self, c22: Array, dq: Array, dr: Array) -> Array:
        """``< (g(a) - g(b))^2 >`` for ``C_bb = c22``, ``C_aa = c22 + dq``, ``C_ab = c22 + dr`` (closed form only)."""
        return self._form("D2")(np.asarray(c22, float), np.asarray(dq, float), np.asarray(dr, float))

    def _form(self, key: str) -> Callable:
        try:
            return self.closed_forms[key]
        except KeyError:
            raise ValueError(f"activation: {self.name!r} has no closed form {key!r}") from None

    def _kernel(self, key: str, *args: Array, mixture: bool = False, **quadrature: int) -> Array:
        """Kernel ``key``: its closed form, else (``mixture``) the probit mixture's, else its quadrature route."""
        form = self.closed_forms.get(key)
        if form is not None:
            return form(*args)
        if mixture and self.probit_mixture is not None:
            return getattr(self.probit_mixture, key)(*args)
        return getattr(_kernels, key)(self, *args, **quadrature)

    # --- propagation kernels ---------------------------------------------------------------

    def variance_map(self, q: Array) -> Array:
        """``V(q) = E[g(sqrt(q) Z)^2]`` for variances ``q`` (shape preserved)."""
        return self._kernel("variance_map", q)

    def slope_moment(self, q: Array) -> Array:
        """``E[g'(sqrt(q) Z)^2]`` (``chi_1 / sigma_w2`` at the fixed point ``q*``)."""
        return self._kernel("slope_moment", q)

    def variance_map_slope(self, q: Array) -> Array:
        """``dV/dq = E[g'^2 + g g'']`` (Stein); without ``d2g`` as ``E[g g' Z] / sqrt(q)``."""
        return self._kernel("variance_map_slope", q)

    def curvature_moment(self, q: Array) -> Array:
        """``E[g''(sqrt(q) Z)^2]``; NaN without ``d2g`` (or where ``g''`` is a delta function)."""
        return self._kernel("curvature_moment", q)

    def correlation_kernel(self, q1: Array, q2: Array, c: Array, *, n_angle: int = 24) -> Array:
        """``E[g(u) g(v)]`` at variances ``q1, q2`` and correlation ``c`` (broadcast).

        ``n_angle``: Gauss-Legendre nodes per angular wedge of the polar rule (quadrature only).
        """
        return self._kernel("correlation_kernel", q1, q2, c, n_angle=n_angle)

    def slope_correlation_kernel(self, q: Array, delta: Array, *, n_angle: int = 24) -> Array:
        """``J = E[g'(u) g'(v)]`` at variance ``q`` and correlation ``1 - delta`` (broadcast)."""
        return self._kernel("slope_correlation_kernel", q, delta, n_angle=n_angle)

    def delta_kernel(self, q: Array, delta: Array, *, n_angle: int = 24, n_t: int = 8) -> Array:
        """``W(q, delta) = int_{1-delta}^1 J(q, s) ds``, to the relative precision of ``delta``.

        ``delta >= 1e-4``: ``E[(g(u) - g(v))^2] / (2 q)`` (a mean of squares,
        since ``E[g(u)^2] = E[g(v)^2]``); the difference ``g(u) - g(v)`` costs
        ~eps / sqrt(delta) relative precision, harmless above the switch.
        ``delta < 1e-4``: ``delta int_0^1 J(1 - delta t) dt`` by ``n_t``-point
        Gauss-Legendre in ``sqrt(t)`` (J is smooth on so short an interval),
        exact to the last digit as ``delta -> 0``.
        """
        return self._kernel("delta_kernel", q, delta, n_angle=n_angle, n_t=n_t)

    # --- pair moments of two-layer networks ------------------------------------------------

    def pair_moments(self, c11: Array, c22: Array, c12: Array, *, nodes: int = _PAIR_NODES
                     ) -> tuple[Array, Array, Array, Array]:
        """``(E[g(u) g(v)], E[g''(u) g(v)], E[g(u) g''(v)], E[g'(u) g'(v)])`` for covariance entries (broadcast).

        Closed forms (``I2``, ``H2``, ``J2``), else the probit mixture, else
        ``nodes x nodes`` Gauss-Hermite on the Cholesky factor (needs ``d2g``).
        """
        if all(k in self.closed_forms for k in ("I2", "H2", "J2")):
            f = self.closed_forms
            return f["I2"](c11, c22, c12), f["H2"](c11, c22, c12), f["H2"](c22, c11, c12), f["J2"](c11, c22, c12)
        if self.probit_mixture is not None:
            return self.probit_mixture.pair_moments(c11, c22, c12)
        return _kernels.pair_moments(self, c11, c22, c12, nodes=nodes)

    def third_moments(self, c11: Array, c22: Array, c12: Array, *, nodes: int = _PAIR_NODES
                      ) -> tuple[Array, Array]:
        """``(E[g'''(u) g'(v)], E[g''(u) g''(v)])`` for covariance entries (broadcast), as needed by the tangent model.

        Closed form (``J2grad``; delta functions for relu, infinite for
        parallel arguments), else the probit mixture, else Gauss-Hermite with
        ``g'''`` by central differences of ``d2g``.
        """
        if "J2grad" in self.closed_forms:
            _, D, T, _ = self.closed_forms["J2grad"](c11, c22, c12)
            return T, D
        if self.probit_mixture is not None:
            return self.probit_mixture.third_moments(c11, c22, c12)
        return _kernels.third_moments(self, c11, c22, c12, nodes=nodes)

    def relu_moments(self, c11: Array, c22: Array, c12: Array, *, nodes: int = _PAIR_NODES
                     ) -> tuple[Array, Array, Array]:
        """``(E[g(u) relu(v)], E[g''(u) relu(v)], E[g'(u) step(v)])`` for covariance entries of ``(u, v)``.

        Against a ReLU unit ``v`` (the teacher of :mod:`phasekit.lazy_training`):
        closed form (``relu_moments``), else the probit mixture, else
        ``2 nodes``-point Gauss-Hermite over ``u`` with the conditional
        expectations of ``v`` in closed form.  The mixture forms the factors
        that depend on ``c11`` only at the shape of ``c11``.
        """
        return self._kernel("relu_moments", c11, c22, c12, mixture=True, nodes=nodes)

    # --- properties ------------------------------------------------------------------------

    @property
    def positively_homogeneous(self) -> bool:
        """Whether ``g(s x) = s g(x)`` for ``s > 0`` (relu, linear; checked at a few points to 1e-12)."""
        x = _PROBE.ravel()
        with np.errstate(all="ignore"):
            gx, g2 = np.asarray(self.g(x), dtype=float), np.asarray(self.g(2.5 * x), dtype=float)
        return bool(np.all(np.abs(g2 - 2.5 * gx) <= 1e-12 * (1.0 + np.abs(g2))))



_PROBE = np.array([[-3.0, -1.0, -0.25], [0.0, 0.5, 2.0]])


def _check_function(label: str, f: object) -> None:
    """Raise unless ``f`` maps an ndarray to a finite ndarray of the same shape (a few probe points)."""
    msg = f"{label}: must be a callable mapping an ndarray to an ndarray of the same shape with finite values"
    if not callable(f):
        raise ValueError(f"{msg}, got {type(f).__name__} {f!r}")
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(f(_PROBE.copy()))
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported the same way
        raise ValueError(f"{msg} ({label}(x) for x of shape {_PROBE.shape} raised "
                         f"{type(exc).__name__}: {exc})") from None
    if out.shape != _PROBE.shape or out.dtype.kind not in "biuf" or not np.all(np.isfinite(out)):
        raise ValueError(f"{msg} ({label}(x) for x of shape {_PROBE.shape} gave "
                         f"{out.dtype} of shape {out.shape})")


def _check_shape(C: Array, d: int, what: str) -> Array:
    C = np.asarray(C, dtype=float)
    if C.ndim < 2 or C.shape[-2:] != (d, d):
        raise ValueError(f"C: {what} needs covariances of shape (..., {d}, {d}), got {C.shape}")
    return C


def _sub(C: Array, idx: list[int]) -> Array:
    return C[..., idx, :][..., :, idx]


def _quad2(C: Array, f_a: Func, f_b: Func, act_a: Activation, act_b: Activation) -> Array:
    """2-D quadrature route: nested adaptive, or tensor Gauss-Hermite if ``act_a`` asks for it."""
    if act_a.quadrature_nodes is not None:
        return gaussian_expectation(C, [f_a, f_b], act_a.quadrature_nodes[0])
    return nested_expectation(C, [f_a, f_b], kinks=[act_a.kinks, act_b.kinks], accuracy="fine")


def expect_I2(C: Array, act_a: Activation, act_b: Activation) -> Array:
    """``< g_a(a) g_b(b) >`` for ``C`` of shape (..., 2, 2)."""
    C = _check_shape(C, 2, "I2")
    if act_a is act_b and "I2" in act_a.closed_forms:
        return act_a.closed_forms["I2"](*_unpack2(C))
    return _quad2(C, act_a.g, act_b.g, act_a, act_b)


def expect_J2(C: Array, act_a: Activation, act_b: Activation) -> Array:
    """``< g_a'(a) g_b'(b) >`` for ``C`` of shape (..., 2, 2)."""
    C = _check_shape(C, 2, "J2")
    if act_a is act_b and "J2" in act_a.closed_forms:
        return act_a.closed_forms["J2"](*_unpack2(C))
    return _quad2(C, act_a.dg, act_b.dg, act_a, act_b)


def expect_H2(C: Array, act_a: Activation, act_b: Activation) -> Array:
    """``< g_a''(a) g_b(b) >`` for ``C`` of shape (..., 2, 2)."""
    C = _check_shape(C, 2, "H2")
    if act_a is act_b and "H2" in act_a.closed_forms:
        return act_a.closed_forms["H2"](*_unpack2(C))
    if act_a.d2g is not None:
        return _quad2(C, act_a.d2g, act_b.g, act_a, act_b)
    # Stein on a: E[a g'(a) g(b)] = C_aa E[g''(a) g(b)] + C_ab E[g'(a) g'(b)].
    dg = act_a.dg
    a_dg = _quad2(C, lambda x: x * dg(x), act_b.g, act_a, act_b)
    j2 = expect_J2(C, act_a, act_b)
    return (a_dg - C[..., 0, 1] * j2) / C[..., 0, 0]


def expect_I3(C: Array, act_a: Activation, act_c: Activation) -> Array:
    """``< g_a'(a) b g_c(c) >`` for ``C`` of shape (..., 3, 3), via Stein's lemma on b."""
    C = _check_shape(C, 3, "I3")
    Cac = _sub(C, [0, 2])
    return C[..., 0, 1] * expect_H2(Cac, act_a, act_c) + C[..., 1, 2] * expect_J2(Cac, act_a, act_c)


def expect_I4(C: Array, act_ab: Activation, act_c: Activation, act_d: Activation) -> Array:
    """``< g'(a) g'(b) g_c(c) g_d(d) >`` (a, b under ``act_ab``) for ``C`` of shape (..., 4, 4)."""
    C = _check_shape(C, 4, "I4")
    if act_ab is act_c is act_d and "I4" in act_ab.closed_forms:
        return act_ab.closed_forms["I4"](*_unpack4(C))
    funcs = [act_ab.dg, act_ab.dg, act_c.g, act_d.g]
    if act_ab.quadrature_nodes is not None:
        return gaussian_expectation(C, funcs, act_ab.quadrature_nodes[1])
    return nested_expectation(C, funcs, kinks=[act_ab.kinks, act_ab.kinks, act_c.kinks, act_d.kinks],
                              accuracy="coarse")


def _unpack2(C: Array) -> tuple[Array, Array, Array]:
    return C[..., 0, 0], C[..., 1, 1], C[..., 0, 1]


def _unpack4(C: Array) -> tuple[Array, ...]:
    return (C[..., 0, 0], C[..., 1, 1], C[..., 2, 2], C[..., 3, 3], C[..., 0, 1],
            C[..., 0, 2], C[..., 0, 3], C[..., 1, 2], C[..., 1, 3], C[..., 2, 3])


_REGISTRY: dict[str, Activation] = {}


def register_activation(
    name: str | Activation,
    g: Func | None = None,
    dg: Func | None = None,
    *,
    d2g: Func | None = None,
    closed_forms: Mapping[str, Callable[[Array], Array]] | None = None,
    quadrature_nodes: tuple[int, int] | None = None,
    description: str = "",
    kinks: tuple[float, ...] = (0.0,),
    overwrite: bool = False,
) -> Activation:
    """Add an activation to the registry and return it.

    Either pass a ready :class:`Activation` alone, or a name with ``g`` and
    ``dg`` (and optionally the other fields of :class:`Activation`).

    Raises
    ------
    ValueError
        For a name already registered (unless ``overwrite=True``), functions
        that do not map an ndarray to a finite ndarray of the same shape, or
        any other invalid field.

    Examples
    --------
    >>> import numpy as np, phasekit
    >>> act = phasekit.register_activation("cube", lambda x: x**3, lambda x: 3 * x**2,
    ...                                    overwrite=True)
    >>> round(float(act.I2(np.array([[1.0, 0.0], [0.0, 1.0]]))), 12)
    0.0
    """
    if not isinstance(overwrite, (bool, np.bool_)):
        raise ValueError(f"overwrite: must be True or False, got {overwrite!r}")
    if isinstance(name, Activation):
        extra = [k for k, v in dict(g=g, dg=dg, d2g=d2g, closed_forms=closed_forms,
                                    quadrature_nodes=quadrature_nodes).items() if v is not None]
        extra += [k for k, v, default in (("description", description, ""), ("kinks", kinks, (0.0,)))
                  if v != default]
        if extra:
            raise ValueError(f"{', '.join(extra)}: not allowed together with a ready Activation")
        act = name
    else:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: must be a non-empty string or an Activation, got {name!r}")
        if g is None or dg is None:
            raise ValueError("g, dg: both the function and its derivative are required")
        act = Activation(name, g, dg, d2g, dict(closed_forms or {}), quadrature_nodes, description,
                         kinks)
    if act.name in _REGISTRY and not overwrite:
        raise ValueError(f"name: activation {act.name!r} is already registered (pass overwrite=True)")
    _REGISTRY[act.name] = act
    return act


def available_activations() -> list[str]:
    """Names of all registered activations."""
    return sorted(_REGISTRY)


def is_registered(act: Activation) -> bool:
    """Whether ``act`` is the activation registered under its name (then its name alone identifies it)."""
    return isinstance(act, Activation) and _REGISTRY.get(act.name) is act


def activation(name: str | Activation) -> Activation:
    """Look up a registered activation by name (an :class:`Activation` passes through)."""
    if isinstance(name, Activation):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation: unknown activation {name!r}; registered: {available_activations()}"
        ) from None


register_activation(Activation(
    "erf", _cf.erf, _cf.erf_prime, _cf.erf_second, _cf.ERF_FORMS,
    description="g(x) = erf(x / sqrt 2), closed forms (Saad & Solla 1995)",
    probit_mixture=_cf.erf_mixture(),
))


register_activation(Activation(
    "relu", lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float), None, _cf.RELU_FORMS,
    description="g(x) = max(x, 0), closed forms; I4 through 4-variate orthant probabilities",
))


_LINEAR = register_activation(Activation(
    "linear", lambda x: x, np.ones_like, np.zeros_like, _cf.LINEAR_FORMS,
    description="g(x) = x, polynomial moments",
))


register_activation(Activation(
    "tanh", np.tanh, _cf.tanh_prime, _cf.tanh_second,
    description="g(x) = tanh(x), nested quadrature; pair kernels of two-layer networks from a probit mixture",
    probit_mixture=_cf.tanh_mixture(),
))


register_activation(Activation(
    "sigmoid", _cf.sigmoid, _cf.sigmoid_prime, _cf.sigmoid_second,
    description="g(x) = 1 / (1 + exp(-x)), nested quadrature; pair kernels of two-layer networks from a probit "
                "mixture",
    probit_mixture=_cf.logistic_mixture(),
))


register_activation(Activation(
    "softplus", _cf.softplus, _cf.sigmoid, _cf.sigmoid_prime,
    description="g(x) = log(1 + exp(x)), nested quadrature",
))


register_activation(Activation(
    "elu", _cf.elu, _cf.elu_prime, _cf.elu_second,
    description="g(x) = x for x > 0, exp(x) - 1 otherwise, nested quadrature (kink of g'' at 0)",
))


register_activation(Activation(
    "swish", _cf.swish, _cf.swish_prime, _cf.swish_second,
    description="g(x) = x sigmoid(x), nested quadrature",
))
