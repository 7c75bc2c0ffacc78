"""Population loss of a two-layer network and of its tangent model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.activations import Activation
from ..core.activations import activation as get_activation
from .networks import Array, Student, Teacher, _check_int, _check_positive
from .pair_kernels import _TWO_PI, _Pairs, relu_gram, student_pairs, teacher_pairs, third_pairs

__all__ = ['TangentModel', 'TwoLayer']


@dataclass(frozen=True, eq=False)
class TwoLayer:
    """A student architecture facing a teacher: population loss, gradient, flow.

    Parameters
    ----------
    teacher : Teacher
    activation : str or Activation
        Student activation; its pair moments (:meth:`phasekit.Activation.pair_moments`)
        give every expectation: closed forms (relu: arc-cosine kernels, erf,
        linear), else its probit mixture (sigmoid and tanh, to 1e-9 uniformly),
        else Gauss-Hermite quadrature (``quadrature_nodes``; needs ``d2g``).
    scale : float
        Output scale ``> 0`` in ``f = (scale / m) sum_i c_i g(a_i . x)``.
    quadrature_nodes : int
        Gauss-Hermite nodes per dimension for non-ReLU students (``>= 4``).
    offset : Student, optional
        Centred predictor ``f(x; w) - f(x; offset)`` (usually ``offset = w0``), which
        vanishes at ``w0`` for any initialisation; without it the plain network.
    """

    teacher: Teacher
    activation: str | Activation = "relu"
    scale: float = 1.0
    quadrature_nodes: int = 32
    offset: Student | None = None
    act: Activation = field(init=False, repr=False)
    _target_norm2: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.teacher, Teacher):
            raise ValueError(f"teacher: expected a phasekit.lazy_training.networks.Teacher, got {type(self.teacher).__name__}")
        act = get_activation(self.activation)
        object.__setattr__(self, "act", act)
        object.__setattr__(self, "scale", _check_positive(self.scale, "scale"))
        object.__setattr__(self, "quadrature_nodes", _check_int(self.quadrature_nodes, "quadrature_nodes", 4))
        # every route of the pair moments must be available (the quadrature one needs d2g)
        act.pair_moments(np.ones(1), np.ones(1), np.zeros(1), nodes=self.quadrature_nodes)
        norm2 = self.teacher_norm2()
        s = self.teacher.signs
        if self.offset is not None:
            self._check(self.offset)
            off = self.offset
            k = self.scale / off.m
            norm2 += k * k * off.c @ self.student_pairs(off.a, off.a).K @ off.c
            norm2 += 2.0 * k * off.c @ self.teacher_pairs(off.a).K @ s
        object.__setattr__(self, "_target_norm2", norm2)

    def _check(self, student: Student) -> None:
        if not isinstance(student, Student):
            raise ValueError(f"student: expected a phasekit.lazy_training.networks.Student, got {type(student).__name__}")
        if student.d != self.teacher.d:
            raise ValueError(f"student: input dimension {student.d} differs from the teacher's {self.teacher.d}")

    # pair expectations -------------------------------------------------------
    def student_pairs(self, A: Array, B: Array) -> _Pairs:
        """Student-student expectations between rows of ``A`` and ``B``, shapes (len(A), len(B))."""
        return student_pairs(self.act, A, B, self.quadrature_nodes)

    def teacher_pairs(self, A: Array) -> _Pairs:
        """Student-teacher expectations ``E[g(a_i.x) relu(b_j.x)]`` etc., shapes (len(A), m0)."""
        return teacher_pairs(self.act, A, self.teacher.weights, self.quadrature_nodes)

    def teacher_norm2(self) -> float:
        """``E[f*(x)^2]``."""
        B, s = self.teacher.weights, self.teacher.signs
        return float(s @ relu_gram(B) @ s)

    def loss_floor(self) -> float:
        """Lower bound on the loss of any width from the symmetry of the activation.

        Without biases, an activation ``g = mean + odd`` (sigmoid, tanh, erf) only
        builds constant-plus-odd functions (odd ones if ``mean = 0``), so the even,
        non-constant part of ``f*`` can never be fitted:
        ``L >= (1/2) (E[e^2] - [mean != 0] E[e]^2)`` with ``e = sum_j s_j |b_j.x| / 2``,
        and ``E[|u||v|] = 4 E[relu(u) relu(v)] - C_uv``.  Zero for other activations
        (and for a centred predictor, whose target includes the initial network).
        """
        mixture = self.act.probit_mixture
        if mixture is None or self.offset is not None:
            return 0.0
        B, s = self.teacher.weights, self.teacher.signs
        abs_abs = 4.0 * relu_gram(B) - B @ B.T
        even2 = 0.25 * float(s @ abs_abs @ s)
        mean = float(s @ np.linalg.norm(B, axis=1)) / math.sqrt(_TWO_PI)
        return 0.5 * (even2 - (mean * mean if mixture.mean != 0.0 else 0.0))

    def target_output(self, x: Array) -> Array:
        """What the network ``(scale/m) sum c_i g(a_i.x)`` must match: ``f*(x)`` plus the
        offset network when the predictor is centred; ``x`` of shape (n, d)."""
        y = self.teacher.output(x)
        if self.offset is not None:
            y = y + self.network_output(self.offset, x)
        return y

    def network_output(self, student: Student, x: Array) -> Array:
        """``(scale/m) sum_i c_i g(a_i . x)`` (not centred) for ``x`` of shape (n, d)."""
        return (self.scale / student.m) * (self.act.g(x @ student.a.T) @ student.c)

    # outputs -------------------------------------------------------------------
    def output(self, student: Student, x: Array) -> Array:
        """Student predictor for inputs ``x`` of shape (n, d) (centred if ``offset``); shape (n,)."""
        self._check(student)
        out = self.network_output(student, x)
        if self.offset is not None:
            out = out - self.network_output(self.offset, x)
        return out

    # loss and gradient -------------------------------------------------------------
    def loss(self, student: Student) -> float:
        """Population loss ``(1/2) E[(f - f*)^2]`` (exact)."""
        return self.loss_and_gradient(student, gradient=False)[0]

    def loss_and_gradient(self, student: Student, gradient: bool = True) -> tuple[float, Student | None]:
        """Exact population loss and its gradient (as a :class:`Student` of the same shapes)."""
        self._check(student)
        A, c, m = student.a, student.c, student.m
        s, B = self.teacher.signs, self.teacher.weights
        k = self.scale / m
        ss = self.student_pairs(A, A)
        st = self.teacher_pairs(A)
        # overlap with the target: f* and, for a centred predictor, the offset network
        y_c = st.K @ s
        y_h = st.H @ s
        y_a = (st.J * s[None, :]) @ B
        if self.offset is not None:
            off = self.offset
            ko = self.scale / off.m
            so = self.student_pairs(A, off.a)
            y_c = y_c + ko * (so.K @ off.c)
            y_h = y_h + ko * (so.H @ off.c)
            y_a = y_a + ko * ((so.J * off.c[None, :]) @ off.a)
        loss = 0.5 * (k * k * c @ ss.K @ c - 2.0 * k * c @ y_c + self._target_norm2)
        if not gradient:
            return float(loss), None
        grad_c = k * k * (ss.K @ c) - k * y_c
        r = k * (ss.H @ c) - y_h
        grad_a = k * c[:, None] * (r[:, None] * A + k * ((ss.J * c[None, :]) @ A) - y_a)
        return float(loss), Student(grad_a, grad_c)

    def velocity(self, student: Student) -> Student:
        """Gradient-flow velocity ``dw/dt = -(m / scale^2) grad L`` (see the module docstring)."""
        _, g = self.loss_and_gradient(student)
        f = -student.m / self.scale**2
        return Student(f * g.a, f * g.c)

    def predictor_distance(self, s1: Student, s2: Student) -> float:
        """Population L2 distance ``sqrt(E[(f_1 - f_2)^2])`` between two students."""
        self._check(s1)
        self._check(s2)
        k1, k2 = self.scale / s1.m, self.scale / s2.m
        e11 = k1 * k1 * s1.c @ self.student_pairs(s1.a, s1.a).K @ s1.c
        e22 = k2 * k2 * s2.c @ self.student_pairs(s2.a, s2.a).K @ s2.c
        e12 = k1 * k2 * s1.c @ self.student_pairs(s1.a, s2.a).K @ s2.c
        return float(np.sqrt(max(e11 + e22 - 2.0 * e12, 0.0)))

    def tangent(self, student0: Student) -> "TangentModel":
        """The tangent (linearised) model around ``student0``."""
        return TangentModel(self, student0)


class TangentModel:
    """Linearisation of a :class:`TwoLayer` student around ``w0`` and its exact gradient flow.

    Units sharing a first-layer row are merged into one group ``p`` with
    parameters ``y_p = sum_{i in p} (c_i - c_i0)`` and
    ``z_p = sum_{i in p} c_i0 (a_i - a_i0)`` (of dimension ``d``):
    ``f_lin = f0 + (scale/m) sum_p [y_p g(a_p.x) + g'(a_p.x) z_p . x]``.
    The full-space flow ``dw/dt = -(m/scale^2) grad L_lin`` maps onto
    ``dtheta/dt = -(m/scale^2) W (G theta - b)`` with ``W = diag(n_p, S_p 1_d)``
    (``n_p`` units and ``S_p = sum c_i0^2`` in group ``p``), solved exactly by
    the eigen-decomposition of ``W^1/2 G W^1/2``.

    Parameters
    ----------
    problem : TwoLayer
    student0 : Student
        The expansion point (the initialisation).
    """

    def __init__(self, problem: TwoLayer, student0: Student) -> None:
        problem._check(student0)
        self.problem = problem
        self.student0 = student0
        A0, c0, m, d = student0.a, student0.c, student0.m, student0.d
        Ap, inverse, counts = np.unique(A0, axis=0, return_inverse=True, return_counts=True)
        inverse = np.asarray(inverse).ravel()
        P = Ap.shape[0]
        self.groups = inverse
        self.A_groups = Ap
        k = problem.scale / m
        S = np.bincount(inverse, weights=c0 * c0, minlength=P)
        # Groups whose output weights are all zero have no first-layer feature.
        self._w = np.concatenate([counts.astype(float), np.repeat(S, d)])

        pp = problem.student_pairs(Ap, Ap)
        Mzz = self._feature_gram(Ap, pp)                        # (P, d, P, d)
        Gyz = pp.J[:, :, None] * Ap[:, None, :] + pp.Hb[:, :, None] * Ap[None, :, :]  # E[g(u_p) g'(u_q) x]
        n = P * (d + 1)
        G = np.empty((n, n))
        G[:P, :P] = pp.K
        G[:P, P:] = Gyz.reshape(P, P * d)
        G[P:, :P] = G[:P, P:].T
        G[P:, P:] = Mzz.reshape(P * d, P * d)
        G *= k * k
        self.G = 0.5 * (G + G.T)

        st = problem.teacher_pairs(Ap)
        s, B = problem.teacher.signs, problem.teacher.weights
        ip = problem.student_pairs(A0, Ap)                      # initial student vs groups
        by = k * (st.K @ s) - k * k * (c0 @ ip.K)
        # E[f0 g'(u_p) x] = k sum_i c_i (J_ip a_i + Hb_ip a_p)
        f0_a = k * (((ip.J * c0[:, None]).T @ A0) + (c0 @ ip.Hb)[:, None] * Ap)
        bz = k * (st.H @ s)[:, None] * Ap + k * (st.J * s[None, :]) @ B - k * f0_a
        if problem.offset is not None:
            # the centred predictor's target includes the offset network
            off = problem.offset
            ko = problem.scale / off.m
            op = problem.student_pairs(off.a, Ap)
            by = by + k * ko * (off.c @ op.K)
            bz = bz + k * ko * (((op.J * off.c[:, None]).T @ off.a) + (off.c @ op.Hb)[:, None] * Ap)
        self.b = np.concatenate([by, bz.ravel()])
        self.loss0 = problem.loss(student0)
        self._f0_norm2 = k * k * c0 @ problem.student_pairs(A0, A0).K @ c0
        self._Ef0psi = np.concatenate([k * k * (c0 @ ip.K), (k * f0_a).ravel()])

        sw = np.sqrt(self._w)
        Ghat = sw[:, None] * self.G * sw[None, :]
        lam, V = np.linalg.eigh(Ghat)
        self.eigenvalues = np.clip(lam, 0.0, None)
        self._V = V
        self._bhat = V.T @ (sw * self.b)
        self.rate = m / problem.scale**2

    def _feature_gram(self, Ap: Array, pp: _Pairs) -> Array:
        """``E[g'(u_p) g'(u_q) x x^T]`` of shape (P, d, P, d)."""
        d = Ap.shape[1]
        T, D = third_pairs(self.problem.act, Ap, self.problem.quadrature_nodes)
        J = pp.J
        M = J[:, None, :, None] * np.eye(d)[None, :, None, :]
        M += T[:, None, :, None] * (Ap[:, :, None, None] * Ap[:, None, None, :])   # a_p a_p^T
        M += T.T[:, None, :, None] * (Ap[None, None, :, :] * Ap.T[None, :, :, None])  # a_q a_q^T
        M += D[:, None, :, None] * (Ap[:, :, None, None] * Ap[None, None, :, :])   # a_p a_q^T
        M += D[:, None, :, None] * (Ap.T[None, :, :, None] * Ap[:, None, None, :])  # a_q a_p^T
        return M

    # the flow ------------------------------------------------------------------
    def theta(self, t: float) -> Array:
        """Group parameters ``theta = (y, z)`` after time ``t`` of gradient flow (from 0)."""
        x = self.rate * self.eigenvalues * float(t)
        # (1 - exp(-rate lam t)) / lam, with its limit rate t at lam = 0
        factor = np.where(x > 1e-12, -np.expm1(-x) / np.where(x > 1e-12, self.eigenvalues, 1.0),
                          self.rate * float(t) * (1.0 - 0.5 * x))
        phi = self._V @ (factor * self._bhat)
        return np.sqrt(self._w) * phi

    def loss(self, t: float) -> float:
        """Population loss of the tangent model at time ``t``."""
        th = self.theta(t)
        return float(0.5 * th @ self.G @ th - th @ self.b + self.loss0)

    def loss_limit(self) -> float:
        """Loss at ``t -> infinity`` (the projection of the teacher on the tangent space)."""
        lam = self.eigenvalues
        keep = lam > 1e-12 * max(lam.max(), 1e-300)
        return float(self.loss0 - 0.5 * np.sum(self._bhat[keep] ** 2 / lam[keep]))

    def displacement(self, t: float) -> float:
        """Weight displacement ``||w - w0||`` of the tangent model at time ``t``."""
        th = self.theta(t)
        w = self._w
        return float(np.sqrt(np.sum(np.where(w > 0, th * th / np.where(w > 0, w, 1.0), 0.0))))

    def distance(self, student: Student, t: float) -> float:
        """Population L2 distance between ``student``'s predictor and the tangent model at ``t``."""
        p = self.problem
        p._check(student)
        th = self.theta(t)
        k = p.scale / student.m
        ip = p.student_pairs(student.a, self.A_groups)
        Ap, A, c = self.A_groups, student.a, student.c
        e_ff = k * k * c @ p.student_pairs(A, A).K @ c
        # E[f psi_p]: k^2 sum_i c_i K(a_i, a_p) and k^2 sum_i c_i (J_ip a_i + Hb_ip a_p)
        efpsi = np.concatenate([k * k * (c @ ip.K),
                                (k * k * (((ip.J * c[:, None]).T @ A) + (c @ ip.Hb)[:, None] * Ap)).ravel()])
        c0 = self.student0.c
        e_f0 = k * k * c @ p.student_pairs(A, self.student0.a).K @ c0
        e_ll = self._f0_norm2 + 2.0 * th @ self._Ef0psi + th @ self.G @ th
        e_fl = e_f0 + th @ efpsi
        return float(np.sqrt(max(e_ff + e_ll - 2.0 * e_fl, 0.0)))

    def output(self, x: Array, t: float) -> Array:
        """Tangent-model output for inputs ``x`` of shape (n, d) at time ``t``; shape (n,)."""
        p = self.problem
        th = self.theta(t)
        P, d = self.A_groups.shape
        k = p.scale / self.student0.m
        U = x @ self.A_groups.T
        y, z = th[:P], th[P:].reshape(P, d)
        return p.output(self.student0, x) + k * (p.act.g(U) @ y + np.sum(p.act.dg(U) * (x @ z.T), axis=1))
