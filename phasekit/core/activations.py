"""Activation functions and their Gaussian expectations, with a registry.

For zero-mean jointly Gaussian arguments with covariance ``C`` (rows of ``C``
in the order of the arguments) the order-parameter equations need

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
``I3(a, b, c) = C_ab H2(a, c) + C_bc J2(a, c)``, so an activation is fully
described by I2, J2, H2 and I4.  ``erf``, ``relu`` and ``linear`` have closed
forms (the relu ones in angle form, ``theta = atan2(sqrt(det), C_ab)`` with the
determinant formed without cancellation, so they stay accurate for nearly
collinear arguments).  Everything else (tanh, sigmoid, elu, softplus, swish,
user activations, mixed teacher/student pairs) is computed by the nested
adaptive quadrature of :func:`phasekit.core.quadrature.nested_expectation`, split at
each activation's ``kinks``: I2, J2, H2 and I3 to ~1e-10 and I4 to ~1e-8
(absolute, for values of order 1) for variances up to 10.  Users add
activations with :func:`register_activation`; closed forms are optional.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
from scipy import special

from .orthant import relu_I4 as _orthant_relu_I4
from .quadrature import gaussian_expectation, nested_expectation

__all__ = ['Activation', 'activation', 'available_activations', 'expect_H2', 'expect_I2', 'expect_I3', 'expect_I4', 'expect_J2', 'register_activation']


Array = np.ndarray


Func = Callable[[Array], Array]


_CLOSED_FORM_KEYS = ("I2", "J2", "H2", "I4", "H2J2", "J2grad", "D2")


@dataclass(frozen=True, eq=False)
class Activation:
    """A hidden-unit activation ``g`` with the Gaussian expectations it needs.

    Parameters
    ----------
    name : str
        Registry name.
    g, dg : callable
        The function and its derivative, vectorised over ndarrays.
    d2g : callable, optional
        Second derivative.  Without it ``H2`` uses Stein's lemma on ``E[a g'(a) g(b)]``.
    closed_forms : mapping, optional
        Any of ``"I2", "J2", "H2", "I4"`` mapped to a function of the
        covariance entries (broadcastable arrays): ``f(c11, c22, c12)`` for the
        2-D expectations, ``f(c11, c22, c33, c44, c12, c13, c14, c23, c24, c34)``
        for I4.  Missing ones use quadrature.  Optionally ``"H2J2"`` returns
        ``(H2, J2)`` together when they share work (used by the ODE right-hand side).
        Two optional keys make :meth:`phasekit.Committee.eg` accurate to a few
        ulps near the perfect solution (where its sum over field pairs cancels):
        ``"J2grad"``, ``f(c11, c22, c12) -> (< g'(a) g'(b) >, < g''(a) g''(b) >,
        < g'''(a) g'(b) >, < g'(a) g'''(b) >)`` (``J2`` and, by Price's theorem,
        ``dJ2/dc12``, ``2 dJ2/dc11``, ``2 dJ2/dc22``), and, for an activation
        with a kink, ``"D2"``, ``f(c22, dq, dr) -> < (g(a) - g(b))^2 >`` for
        ``c11 = c22 + dq``, ``c12 = c22 + dr``, accurate when ``dq, dr`` are small.
    quadrature_nodes : (int, int), optional
        ``None`` (default): expectations without closed forms use the nested
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

    def __repr__(self) -> str:
        forms = ",".join(sorted(self.closed_forms)) or "none"
        return f"Activation({self.name!r}, closed forms: {forms})"

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


_2_PI = 2.0 / np.pi


def _unpack2(C: Array) -> tuple[Array, Array, Array]:
    return C[..., 0, 0], C[..., 1, 1], C[..., 0, 1]


def _unpack4(C: Array) -> tuple[Array, ...]:
    return (C[..., 0, 0], C[..., 1, 1], C[..., 2, 2], C[..., 3, 3], C[..., 0, 1],
            C[..., 0, 2], C[..., 0, 3], C[..., 1, 2], C[..., 1, 3], C[..., 2, 3])


def _erf_I2(c11: Array, c22: Array, c12: Array) -> Array:
    return _2_PI * np.arcsin(np.clip(c12 / np.sqrt((1.0 + c11) * (1.0 + c22)), -1.0, 1.0))


def _erf_J2(c11: Array, c22: Array, c12: Array) -> Array:
    return _2_PI / np.sqrt((1.0 + c11) * (1.0 + c22) - c12 * c12)


def _erf_H2(c11: Array, c22: Array, c12: Array) -> Array:
    a11 = 1.0 + c11
    return -_2_PI * c12 / (a11 * np.sqrt(a11 * (1.0 + c22) - c12 * c12))


def _erf_H2J2(c11: Array, c22: Array, c12: Array) -> tuple[Array, Array]:
    a11 = 1.0 + c11
    j2 = _2_PI / np.sqrt(a11 * (1.0 + c22) - c12 * c12)
    return (-c12 / a11) * j2, j2


def _erf_J2grad(c11: Array, c22: Array, c12: Array) -> tuple[Array, Array, Array, Array]:
    # J2 = (2/pi) lam^(-1/2), lam = (1 + c11)(1 + c22) - c12^2; Price's theorem gives
    # E[g''(a) g''(b)] = dJ2/dc12 and E[g'''(a) g'(b)] = 2 dJ2/dc11.
    a11 = 1.0 + c11
    a22 = 1.0 + c22
    inv = 1.0 / (a11 * a22 - c12 * c12)
    j2 = _2_PI * np.sqrt(inv)
    j3 = j2 * inv
    return j2, c12 * j3, -a22 * j3, -a11 * j3


def _erf_I4(c11, c22, c33, c44, c12, c13, c14, c23, c24, c34):
    a11 = 1.0 + c11
    a22 = 1.0 + c22
    lam4 = a11 * a22 - c12 * c12
    lam0 = lam4 * c34 - c23 * c24 * a11 - c13 * c14 * a22 + c12 * (c13 * c24 + c14 * c23)
    lam1 = lam4 * (1.0 + c33) - c23 * c23 * a11 - c13 * c13 * a22 + 2.0 * c12 * c13 * c23
    lam2 = lam4 * (1.0 + c44) - c24 * c24 * a11 - c14 * c14 * a22 + 2.0 * c12 * c14 * c24
    ratio = np.clip(lam0 / np.sqrt(lam1 * lam2), -1.0, 1.0)
    return (4.0 / np.pi**2) / np.sqrt(lam4) * np.arcsin(ratio)


def _two_product(a: Array, b: Array) -> tuple[Array, Array]:
    """``a b = p + e`` exactly (Dekker's product with Veltkamp's splitting; no FMA needed)."""
    p = a * b
    t = 134217729.0 * a  # 2^27 + 1
    a_hi = t - (t - a)
    a_lo = a - a_hi
    t = 134217729.0 * b
    b_hi = t - (t - b)
    b_lo = b - b_hi
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def _det2(c11: Array, c22: Array, c12: Array) -> Array:
    """``c11 c22 - c12^2`` to a few ulps of the result, clipped at 0.

    The two products are formed exactly, so a nearly collinear pair (``rho``
    close to 1) keeps its small determinant accurate.
    """
    p, e = _two_product(c11, c22)
    q, f = _two_product(c12, c12)
    return np.clip((p - q) + (e - f), 0.0, None)


def _relu_angles(c11: Array, c22: Array, c12: Array) -> tuple[Array, Array]:
    """``sqrt(det)`` and ``phi = pi - theta``, ``theta = arccos(rho)`` the angle between the arguments.

    With the determinant formed without cancellation, ``atan2`` keeps the
    angles accurate where ``arcsin(rho)`` is not: near ``rho = +-1`` an error
    of one ulp in ``rho`` moves ``arcsin`` by ``~1e-8``.
    """
    sdet = np.sqrt(_det2(c11, c22, c12))
    return sdet, np.arctan2(sdet, -c12)


# Taylor coefficients of sin(t) - t cos(t) = sum_k (-1)^(k+1) 2k t^(2k+1) / (2k+1)!, k >= 1,
# as a polynomial in t^2 (times t^3), highest first; 11 terms reach 1e-17 relative for t <= 1.
_SIN_TCOS = np.array([(-1.0) ** (k + 1) * 2 * k / float(np.prod(np.arange(1.0, 2 * k + 2)))
                      for k in range(11, 0, -1)])


def _sin_minus_tcos(t: Array) -> Array:
    """``sin t - t cos t`` for ``0 <= t <= pi``; a series below ``t = 1``, where the difference cancels."""
    t = np.asarray(t, dtype=float)
    ts = np.minimum(t, 1.0)
    series = ts**3 * np.polyval(_SIN_TCOS, ts * ts)
    return np.where(t < 1.0, series, np.sin(t) - t * np.cos(t))


def _relu_I2(c11: Array, c22: Array, c12: Array) -> Array:
    # Arc-cosine kernel sqrt(c11 c22) (sin theta + (pi - theta) cos theta) / (2 pi)
    # = (sqrt(det) + c12 phi) / (2 pi); for c12 < 0 the two terms cancel and the
    # form sqrt(c11 c22) (sin phi - phi cos phi) / (2 pi) is used.
    sdet, phi = _relu_angles(c11, c22, c12)
    direct = sdet + c12 * phi
    anti = np.sqrt(c11 * c22) * _sin_minus_tcos(phi)
    return np.where((c12 < 0) & (phi < 1.0), anti, direct) / (2.0 * np.pi)


def _relu_J2(c11: Array, c22: Array, c12: Array) -> Array:
    # Orthant probability 1/4 + arcsin(rho) / (2 pi) = phi / (2 pi).
    return _relu_angles(c11, c22, c12)[1] / (2.0 * np.pi)


def _relu_H2(c11: Array, c22: Array, c12: Array) -> Array:
    # E[delta(a) relu(b)] = phi(0; C_aa) E[relu(b) | a = 0].
    return np.sqrt(_det2(c11, c22, c12)) / (2.0 * np.pi * c11)


def _relu_J2grad(c11: Array, c22: Array, c12: Array) -> tuple[Array, Array, Array, Array]:
    # Price's theorem: d/dc12 E[theta theta] = E[delta(a) delta(b)] = 1 / (2 pi sqrt(det)),
    # 2 d/dc11 E[theta theta] = E[delta'(a) theta(b)] = -(c12 / c11) / (2 pi sqrt(det)).
    sdet, phi = _relu_angles(c11, c22, c12)
    phi2 = 1.0 / (2.0 * np.pi * sdet)
    return phi / (2.0 * np.pi), phi2, -(c12 / c11) * phi2, -(c12 / c22) * phi2


def _relu_D2(c22: Array, dq: Array, dr: Array) -> Array:
    """``E[(relu(a) - relu(b))^2]`` for ``C_aa = c22 + dq``, ``C_ab = c22 + dr``, ``C_bb = c22``.

    Accurate to a few ulps of the result when ``a`` is close to ``b``, given
    ``dq`` and ``dr`` exactly (differences of nearby floats are):
    ``(sqrt C_aa - sqrt C_bb)^2 / 2 + 2 sqrt(C_aa C_bb) (1/2 - J(theta))``,
    ``J(theta) = (sin theta + (pi - theta) cos theta) / (2 pi)``, with
    ``det = C_aa C_bb - C_ab^2 = c22 (dq - 2 dr) - dr^2`` free of the ``c22^2``
    cancellation and ``2 pi (1/2 - J) = 2 pi sin^2(theta/2) - (sin theta - theta cos theta)``.
    """
    c11 = c22 + dq
    sdet = np.sqrt(np.clip(c22 * (dq - 2.0 * dr) - dr * dr, 0.0, None))
    theta = np.arctan2(sdet, c22 + dr)
    half_minus_j = (2.0 * np.pi * np.sin(0.5 * theta) ** 2 - _sin_minus_tcos(theta)) / (2.0 * np.pi)
    dsq = dq / (np.sqrt(c11) + np.sqrt(c22))
    return 0.5 * dsq * dsq + 2.0 * np.sqrt(c11 * c22) * half_minus_j


def _relu_I4(*entries: Array) -> Array:
    c11, c22, c33, c44, c12, c13, c14, c23, c24, c34 = np.broadcast_arrays(*entries)
    C = np.stack([np.stack([c11, c12, c13, c14], -1), np.stack([c12, c22, c23, c24], -1),
                  np.stack([c13, c23, c33, c34], -1), np.stack([c14, c24, c34, c44], -1)], -2)
    return _orthant_relu_I4(C)


def _erf(x: Array) -> Array:
    return special.erf(x / np.sqrt(2.0))


def _erf_prime(x: Array) -> Array:
    return np.sqrt(2.0 / np.pi) * np.exp(-0.5 * x * x)


def _erf_second(x: Array) -> Array:
    return -x * _erf_prime(x)


def _sigmoid(x: Array) -> Array:
    return special.expit(x)


def _sigmoid_prime(x: Array) -> Array:
    s = special.expit(x)
    return s * (1.0 - s)


def _sigmoid_second(x: Array) -> Array:
    s = special.expit(x)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


def _tanh_prime(x: Array) -> Array:
    return 1.0 - np.tanh(x) ** 2


def _tanh_second(x: Array) -> Array:
    t = np.tanh(x)
    return -2.0 * t * (1.0 - t * t)


def _elu(x: Array) -> Array:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def _elu_prime(x: Array) -> Array:
    return np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0)))


def _elu_second(x: Array) -> Array:
    return np.where(x > 0, 0.0, np.exp(np.minimum(x, 0.0)))


def _swish(x: Array) -> Array:
    return x * special.expit(x)


def _swish_prime(x: Array) -> Array:
    s = special.expit(x)
    return s + x * s * (1.0 - s)


def _swish_second(x: Array) -> Array:
    s = special.expit(x)
    return s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))


def _softplus(x: Array) -> Array:
    return np.logaddexp(0.0, x)


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
    "erf", _erf, _erf_prime, _erf_second,
    {"I2": _erf_I2, "J2": _erf_J2, "H2": _erf_H2, "I4": _erf_I4, "H2J2": _erf_H2J2,
     "J2grad": _erf_J2grad},
    description="g(x) = erf(x / sqrt 2), closed forms (Saad & Solla 1995)",
))


register_activation(Activation(
    "relu", lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float), None,
    {"I2": _relu_I2, "J2": _relu_J2, "H2": _relu_H2, "I4": _relu_I4, "J2grad": _relu_J2grad,
     "D2": _relu_D2},
    description="g(x) = max(x, 0), closed forms; I4 through 4-variate orthant probabilities",
))


_LINEAR = register_activation(Activation(
    "linear", lambda x: x, np.ones_like, np.zeros_like,
    {"I2": lambda c11, c22, c12: c12 + 0.0 * (c11 + c22),
     "J2": lambda c11, c22, c12: np.ones(np.broadcast(c11, c22, c12).shape),
     "H2": lambda c11, c22, c12: np.zeros(np.broadcast(c11, c22, c12).shape),
     "I4": lambda *c: np.broadcast_arrays(*c)[-1] + 0.0},
    description="g(x) = x, polynomial moments",
))


register_activation(Activation(
    "tanh", np.tanh, _tanh_prime, _tanh_second,
    description="g(x) = tanh(x), nested quadrature",
))


register_activation(Activation(
    "sigmoid", _sigmoid, _sigmoid_prime, _sigmoid_second,
    description="g(x) = 1 / (1 + exp(-x)), nested quadrature",
))


register_activation(Activation(
    "softplus", _softplus, _sigmoid, _sigmoid_prime,
    description="g(x) = log(1 + exp(x)), nested quadrature",
))


register_activation(Activation(
    "elu", _elu, _elu_prime, _elu_second,
    description="g(x) = x for x > 0, exp(x) - 1 otherwise, nested quadrature (kink of g'' at 0)",
))


register_activation(Activation(
    "swish", _swish, _swish_prime, _swish_second,
    description="g(x) = x sigmoid(x), nested quadrature",
))
