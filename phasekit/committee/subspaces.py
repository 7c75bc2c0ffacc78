"""Invariant subspaces of the committee flow: the site-symmetric subspace and its reduced flow.

For K = M and a teacher ``T = Td I + To (11^T - I)`` with equal teacher
weights (and equal student weights), the simultaneous permutations of
student and teacher units map the flow to itself, so the states they leave
fixed form an invariant subspace, the *site-symmetric* one::

    R_ii = R,   R_in = S (i != n),   Q_ii = Q,   Q_ik = C (i != k)   [, v_i = v].

:meth:`Committee.restrict("site_symmetric") <phasekit.committee.model.Committee.restrict>`
returns :class:`SiteSymmetricCommittee`, whose flow in ``(R, S, Q, C[, v])``
costs the same for every K (K up to 1e5 and beyond).

Every sum over fields in the flow (``h_i = sum_u c_u H2(x_i, u)``, the
first-order table ``A``, the eta^2 term ``sum_{u,w} c_u c_w I4(x_i, x_k, u, w)``,
``eps_g = (1/2) sum c_u c_w I2(u, w)``, the second layer's ``sum_u c_u I2(x_i, u)``)
is a sum over the *types* (student x, teacher y) of the summed fields and
over the *equality pattern* of all unit indices involved: on the subspace the
covariance of a tuple of fields depends only on its types and on which of
its indices coincide, and the number of index assignments that realise a
pattern with ``p`` new indices, next to ``m`` already fixed ones, is the
falling factorial ``(K - m)(K - m - 1)...(K - m - p + 1)``.  Each term is one
batch of a few dozen small moment evaluations weighted by those counts.

Each pattern is evaluated on the fields of one representative index
assignment (the fixed units 1 and 2, the new ones 3, 4, ...), ordered as the
full flow orders them (students before teachers, then by unit; ``u <= w``):
a nested quadrature depends on the order of its variables at the level of
its accuracy, so with this order the reduced flow equals the full flow's
entries of units 1 and 2 to rounding for quadrature activations too.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.activations import _unpack2, _unpack4, expect_H2, expect_I2, expect_I4, expect_J2
from ..core.results import FixedPoint, classify
from ..core.spectrum import eigen_decomposition
from ..core.ode import Event, solve_flow
from ..core.options import SolverOptions
from .flow import FlowParts
from .jacobians import _BOUNDARY_MARGIN, _CENTRAL_STEP, _inward_columns
from .model import PSD_TOL, SUBSPACE_MODELS, Committee, State
from .pencil import EtaStructure
from .symmetry import _coordinate_permutation

__all__ = ["SUBSPACES", "ReducedCommittee", "SiteSymmetricCommittee", "GroupedCommittee", "PairCommittee", "site_symmetric_basis",
           "grouped_basis", "reduced_from_parameters",
           "sector_of", "sector_projectors", "transposition_class_sum"]


#: The invariant subspaces :meth:`Committee.restrict` knows.
SUBSPACES = ("site_symmetric", "grouped", "pair")


# Positions in the extended vector ext = (R, S, Q, C1, C2, Td, To, 1) of a grouped state (students
# (group, member), teachers by group): R_in in / out of the group, Q_ii, Q_ik in / across groups, T.
_ONE = 7


def _grouped_entry(f: tuple, h: tuple) -> int:
    """Position in ``ext`` of the covariance of the fields ``f``, ``h`` = ``(type, class, group, member)``."""
    same = f[2] == h[2]
    if f[0] == "x" and h[0] == "x":
        return (2 if f[3] == h[3] else 3) if same else 4
    if f[0] == "y" and h[0] == "y":
        return 5 if same else 6
    return 0 if same else 1


# Activations whose closed forms (H2, J2, I2, I4) are analytic in the covariance entries on a
# neighbourhood of the cone, its boundary included: the reduced flow's Jacobian is taken by
# complex-step differentiation (no difference of rounded flow values, exact to rounding).
_ANALYTIC_FORMS = ("erf", "linear")

# Complex step, relative to the state's scale (any h with h^2 below rounding would do).
_COMPLEX_STEP = 1e-30

# Entrywise error of a complex-step Jacobian, relative to the largest entry of its row (of
# the balanced A or B in eta_structure); a 50-digit evaluation of the erf flow finds 6e-16
# for K = 2 ... 1e5.
_COMPLEX_STEP_REL_ERROR = 1e-13


def _num(x: Any) -> np.ndarray:
    """``x`` as a float array, or as a complex one when it carries a complex step."""
    return np.asarray(x) if np.iscomplexobj(x) else np.asarray(x, dtype=float)


def _falling(n: int, p: int) -> float:
    out = 1.0
    for j in range(p):
        out *= max(n - j, 0)
    return out


def _patterns(fixed: Sequence[tuple], n_free: int, sizes: Sequence[int], g: int) -> list[tuple[tuple, float]]:
    """Every (types, index pattern) of ``n_free`` summed fields next to ``fixed`` ones, with its count.

    A field is ``(type, class, group, member)``: type ``"x"`` (student) or
    ``"y"`` (teacher), a unit *group* of one of the classes (``sizes[c]``
    groups in class ``c``), a student's member within its group (``g`` per
    group; 0 for teachers).  Each free field is a fixed or earlier group (and
    member) or the next new one; the count of index assignments realising a
    pattern is the product of falling factorials ``(n - m)(n - m - 1)...``
    over the classes' groups and the groups' members not already fixed.
    Returns ``(fields, count)`` with the fixed fields first; new groups and
    members are numbered after the fixed ones.
    """
    cls0 = {f[2]: f[1] for f in fixed}
    mem0: dict[int, set] = {}
    for f in fixed:
        if f[0] == "x":
            mem0.setdefault(f[2], set()).add(f[3])
    out = []

    def count(fields: tuple) -> float:
        c = 1.0
        groups = {f[2]: f[1] for f in fields}
        for k, size in enumerate(sizes):
            n_fix = sum(1 for b in cls0 if cls0[b] == k)
            c *= _falling(size - n_fix, sum(1 for b in groups if groups[b] == k) - n_fix)
        for b in groups:
            mem = {f[3] for f in fields if f[0] == "x" and f[2] == b}
            n_fix = len(mem0.get(b, ()))
            c *= _falling(g - n_fix, len(mem) - n_fix)
        return c

    n_fixed = len(fixed)

    def members(fields: tuple, at: int) -> None:
        # the students among the free fields, in order, take a fixed or earlier member of their group or a new one
        if at == len(fields):
            out.append((fields, count(fields)))
            return
        t, k, b, _ = fields[at]
        if t == "y":
            members(fields, at + 1)
            return
        mem = sorted({f[3] for f in fields[:at] if f[0] == "x" and f[2] == b})
        for a in mem + [max(mem, default=-1) + 1]:
            members(fields[:at] + (("x", k, b, a),) + fields[at + 1:], at + 1)

    def rec(units: list) -> None:
        # each free field is in a fixed group, a new group met before, or the next new group (of some class)
        if len(units) == n_free:
            for types in _product("xy", n_free):
                members(tuple(fixed) + tuple((t, k, b, 0) for t, (k, b) in zip(types, units)), n_fixed)
            return
        groups = dict(cls0)
        groups.update({b: k for k, b in units})
        new = max(groups, default=-1) + 1
        for b in sorted(groups):
            rec(units + [(groups[b], b)])
        for k in range(len(sizes)):
            rec(units + [(k, new)])

    rec([])
    return out


def _product(alphabet: str, n: int) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for _ in range(n):
        out = [p + (a,) for p in out for a in alphabet]
    return out


def _key(field: tuple) -> tuple:
    """Position of a field in the full flow's order: students first, then by unit (class, group, member)."""
    return (0 if field[0] == "x" else 1,) + tuple(field[1:])


class _PatternSum:
    """Several sums ``sum over patterns of count * prod(c of summed fields) * kernel(cov) [* cov(extra)]``.

    Each spec ``(fixed, n_free, slots, sort_from, extra)`` gives one output:
    ``slots`` picks the fields the kernel sees (in order; those from
    ``sort_from`` on sorted as the full flow sorts them), ``extra`` an
    optional covariance factor (a pair of field positions).  ``entry(f, h)``
    is the position in the extended state vector of the covariance of two
    fields, ``one`` that of the constant 1; ``sizes`` and ``g`` the unit
    classes' numbers of groups and the students per group (:func:`_patterns`).
    Patterns of all outputs are evaluated in one kernel call per activation
    combination (one call in all unless teacher and student activations differ).
    """

    def __init__(self, specs: Sequence[tuple], mixed: bool, *, sizes: Sequence[int], g: int = 1,
                 entry: Any = _grouped_entry, one: int = _ONE) -> None:
        groups: dict[tuple[str, ...], list] = {}
        self.n_out = len(specs)
        for out, (fixed, n_free, slots, sort_from, extra) in enumerate(specs):
            for fields, count in _patterns(fixed, n_free, sizes, g):
                if count == 0.0:
                    continue
                chosen = [fields[s] for s in slots]
                chosen = chosen[:sort_from] + sorted(chosen[sort_from:], key=_key)
                d = len(chosen)
                idx = np.empty((d, d), dtype=np.intp)
                for a in range(d):
                    for b in range(d):
                        idx[a, b] = entry(chosen[a], chosen[b])
                free = fields[len(fixed):]
                nx = [sum(1 for f in free if f[0] == "x" and f[1] == k) for k in range(len(sizes))]
                e = one if extra is None else entry(fields[extra[0]], fields[extra[1]])
                types = tuple(f[0] for f in chosen) if mixed else ()
                groups.setdefault(types, []).append((idx, count, nx, n_free - sum(nx), e, out))
        self.n_classes = len(sizes)
        self.groups = []
        for types, rows in groups.items():
            seg = np.zeros((len(rows), self.n_out))
            seg[np.arange(len(rows)), [r[5] for r in rows]] = 1.0
            nx = np.array([r[2] for r in rows])
            self.groups.append((types or ("x",) * 4, np.stack([r[0] for r in rows]), np.array([r[1] for r in rows]),
                                nx[:, 0] if self.n_classes == 1 else nx, np.array([r[3] for r in rows]),
                                np.array([r[4] for r in rows]), seg))

    def __call__(self, kernel: Any, ext: np.ndarray, cx: Any, cy: float) -> np.ndarray:
        """The outputs, shape ``(..., n_out)``; ``ext`` is the extended state vector per state.

        ``cx``: the students' coefficient, a number or one per state; with
        several unit classes one per class, shape ``(..., n_classes)``.
        """
        total = 0.0
        if self.n_classes > 1:
            cx = _num(cx)
            for types, idx, count, nx, ny, e, seg in self.groups:
                vals = kernel(ext[..., idx], types)  # (..., P)
                w = count * (cy ** ny) * ext[..., e] * np.prod(cx[..., None, :] ** nx, axis=-1)
                total = total + (vals * w) @ seg
            return total
        cx = _num(cx)[..., None]
        for types, idx, count, nx, ny, e, seg in self.groups:
            vals = kernel(ext[..., idx], types)  # (..., P)
            w = count * (cy ** ny) * ext[..., e]
            w = w * (cx ** nx if cx.ndim > 1 else cx.reshape(-1)[0] ** nx)
            total = total + (vals * w) @ seg
        return total


def grouped_basis(M: int, g: int, second_layer: bool = False) -> np.ndarray:
    """Embedding ``P`` of ``(R, S, Q, C1, C2[, v])`` into the full state vector (K = g M), shape ``(n_state, 5[+1])``.

    Student ``i`` belongs to the group of teacher unit ``i // g``.  Columns:
    the indicators of ``R_in`` with ``i`` in group ``n`` and not, ``Q_ii``,
    ``Q_ik`` (i < k) in one group and across groups, and (``second_layer``)
    of the weights ``v_i``.  The full state of reduced coordinates ``z`` is
    ``P @ z``; ``pinv(P) @ f`` reads the reduced flow off a full flow ``f``.
    """
    K = g * M
    grp = np.arange(K) // g
    n0 = K * M + K * (K + 1) // 2
    n = n0 + (K if second_layer else 0)
    P = np.zeros((n, 6 if second_layer else 5))
    own = (grp[:, None] == np.arange(M)[None, :]).ravel()
    P[:K * M, 0] = own
    P[:K * M, 1] = ~own
    iu = np.triu_indices(K)
    same = grp[iu[0]] == grp[iu[1]]
    P[K * M:n0, 2] = iu[0] == iu[1]
    P[K * M:n0, 3] = same & (iu[0] != iu[1])
    P[K * M:n0, 4] = ~same
    if second_layer:
        P[n0:, 5] = 1.0
    return P


def site_symmetric_basis(K: int, second_layer: bool = False) -> np.ndarray:
    """Embedding ``P`` of ``(R, S, Q, C[, v])`` into the full state vector (K = M), shape ``(n_state, 4[+1])``.

    Columns: the indicators of ``R_ii``, ``R_in`` (i != n), ``Q_ii``, ``Q_ik``
    (i < k) and, with ``second_layer``, of the weights ``v_i`` (the grouped
    basis with one student per group, :func:`grouped_basis`).
    """
    return np.delete(grouped_basis(K, 1, second_layer), 3, axis=1)


def _eig2_min(a: np.ndarray, b: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Smallest eigenvalue of the symmetric 2 x 2 matrices ``[[a, b], [b, d]]``."""
    return 0.5 * (a + d) - np.hypot(0.5 * (a - d), b)


class ReducedCommittee:
    """The committee flow restricted to an invariant subspace of unit groups (base of the reduced models).

    A reduced model's students form ``g`` per teacher unit (groups), all its
    states are invariant under permuting the teacher units together with their
    groups and the students within a group, and its coordinates are
    covariance classes of fields (``R``, ``S``, ``Q``, ...; plus the common
    ``v`` when the second layer is trained).  Subclasses fix the coordinates:
    :class:`SiteSymmetricCommittee` (``g = 1``) and :class:`GroupedCommittee`.

    Construction and every evaluation cost the same for any K and M; nothing
    of size K^2 is ever formed.  Accepted by
    :func:`~phasekit.committee.dynamics.integrate`,
    :func:`~phasekit.committee.stability.critical_eta` /
    :func:`~phasekit.committee.stability.optimal_eta` (restricted values),
    the plateau and convergence times of its trajectories,
    :func:`~phasekit.committee.asymptotics.asymptotic_eg`,
    :func:`~phasekit.committee.search.fixed_points`,
    :func:`~phasekit.committee.branches.continuation`,
    :func:`~phasekit.committee.steady.steady_state` /
    :func:`~phasekit.committee.steady.optimal_steady_eta`, ``jacobian``,
    ``linearise``, ``eta_structure``, ``annealing_asymptote``,
    ``initial_state`` (its diagonal start;
    all in its coordinates), and has its
    own :meth:`perfect_solution`, :meth:`symmetric_plateau`,
    :meth:`find_fixed_point` and :meth:`jacobian`.  What needs the whole state
    (``simulate``, ``sector_stability``) refuses it and points to :attr:`parent`.

    Attributes
    ----------
    parent : Committee
        The full model (its index tables are never built by this class).
    subspace : str
        The subspace's name (a key of :data:`SUBSPACES`).
    g : int
        Students per teacher unit (``K / M``).
    Td, To : float
        Diagonal and off-diagonal teacher overlaps.
    labels : list of str
        The reduced coordinates.
    """

    subspace = ""
    #: names of the covariance coordinates
    _cov_labels: tuple[str, ...] = ()
    #: for each covariance coordinate, the field it pairs with the student (0, 0) (its flow's target)
    _targets: tuple[tuple, ...] = ()
    #: ext positions (R, S, Q, C1, C2) -> coordinate
    _ext_src: tuple[int, ...] = ()
    #: the symmetric plateau: coordinates held equal, and the full state of a guess (R, Q, C[, v])
    _plateau_ties: tuple[tuple[int, int], ...] = ()
    _plateau_src: tuple[int, ...] = ()
    #: the common student weight of each unit class
    _v_labels: tuple[str, ...] = ("v",)

    def _group_size(self, K: int, M: int) -> int:
        raise NotImplementedError

    def __init__(self, parent: Committee) -> None:
        if not isinstance(parent, Committee):
            raise ValueError(f"model: expected a phasekit.Committee, got {type(parent).__name__}")
        K, M = parent.K, parent.M
        g = self._group_size(K, M)
        name = self.subspace.replace("_", "-")
        T = parent._T
        if T is None:
            Td, To = 1.0, 0.0
        else:
            off = T[~np.eye(M, dtype=bool)]
            Td, To = float(T[0, 0]), float(off[0]) if M > 1 else 0.0
            if not (np.allclose(np.diag(T), Td, rtol=0, atol=1e-12) and np.allclose(off, To, rtol=0, atol=1e-12)):
                raise ValueError(f"model: the {name} subspace needs T = Td I + To (11^T - I), e.g. the identity")
        w = parent.teacher_weights
        if np.any(w != w[0]):
            raise ValueError(f"model: the {name} subspace needs equal teacher weights, got {w.tolist()}")
        sw = parent.student_weights
        if np.any(sw != sw[0]):
            raise ValueError(f"model: the {name} subspace needs equal student weights "
                             f"(fixed, or the initial trained ones), got {sw.tolist()}")
        self.parent = parent
        self.K, self.M, self.g = K, M, g
        self.Td, self.To = Td, To
        self.w = float(w[0])
        self.v_fixed = float(sw[0])
        for attr in ("eta", "second_order", "noise", "activation", "teacher_activation", "train_second_layer",
                     "eta_second_layer", "weight_decay", "drift", "eta_schedule", "normalisation", "mixed",
                     "autonomous", "eta_v"):
            setattr(self, attr, getattr(parent, attr))
        self._build(*self._layout())
        self._acts = {"x": self.activation, "y": self.teacher_activation}
        act = self.activation
        self._complex_step = (act.name in _ANALYTIC_FORMS and act is self.teacher_activation
                              and all(k in act.closed_forms for k in ("H2", "J2", "I2", "I4")))

    def _layout(self) -> tuple:
        """``(sizes, entry, n_ext, coords, students)`` of the unit groups (see :meth:`_build`); here from
        the class attributes ``_targets`` (one class of M groups of g students)."""
        x = ("x", 0, 0, 0)
        coords = []
        for label, t in zip(self._cov_labels, self._targets):
            q = t[0] == "x"
            coords.append((label, q, t[2] == 0, t == x, [(x, t, 2.0 if q else 1.0)]))
        return (self.M,), _grouped_entry, 5, coords, [x]

    def _build(self, sizes: Sequence[int], entry: Any, n_ext: int, coords: Sequence[tuple],
               students: Sequence[tuple]) -> None:
        """Set up the pattern sums of the flow.

        ``sizes``: groups per unit class; ``entry(f, h)``: position in the
        extended vector (``n_ext`` covariance classes, then ``Td``, ``To``, 1)
        of the covariance of two fields ``(type, class, group, member)``;
        ``coords``: per covariance coordinate ``(label, is_Q, same_group,
        same_unit, terms)`` with first-order terms ``(student field, target
        field, factor)`` (``d R_in = A_{i, y_n}``, ``d Q_ik = A_ik + A_ki``);
        ``students``: a representative student field per class.
        """
        self._sizes, self._entry, self._n_ext = tuple(sizes), entry, n_ext
        self._cov_labels = tuple(c[0] for c in coords)
        self._is_q = np.array([c[1] for c in coords], dtype=bool)
        self._same_group = np.array([c[2] for c in coords], dtype=bool)
        self._same_unit = np.array([c[3] for c in coords], dtype=bool)
        terms = [(xf, t) for c in coords for xf, t, _ in c[4]]
        self._coord_terms, j = [], 0
        for c in coords:
            self._coord_terms.append([(j + k, f) for k, (_, _, f) in enumerate(c[4])])
            j += len(c[4])
        self._term_pos = np.array([entry(xf, t) for xf, t in terms])
        self._term_cls = np.array([xf[1] for xf, _ in terms])
        pairs = [c[4][0][:2] for c in coords if c[1]]
        self._q_cls = np.array([[f[1], h[1]] for f, h in pairs]).reshape(-1, 2)
        self._q_cov = np.array([[[entry(f, f), entry(f, h)], [entry(h, f), entry(h, h)]] for f, h in pairs])
        ps = dict(mixed=self.mixed, sizes=sizes, g=self.g, entry=entry, one=n_ext + 2)
        # first order: h_i per student class and the tables A_{i, target} of each term
        self._h = _PatternSum([([x], 1, (0, 1), 2, None) for x in students], **ps)
        self._first = _PatternSum([([xf, t], 1, (0, 2), 2, (2, 1)) for xf, t in terms], **ps)
        if self.second_order:
            self._second = _PatternSum([(list(fh), 2, (0, 1, 2, 3), 2, None) for fh in pairs], **ps)
        self._eg = _PatternSum([([], 2, (0, 1), 0, None)], **ps)
        self._i2_student = _PatternSum([([x], 1, (0, 1), 0, None) for x in students], **ps)

    # --- description -------------------------------------------------------

    @property
    def n_state(self) -> int:
        """Length of the reduced state vector: the covariance coordinates, plus ``v`` with a trained second layer."""
        return len(self._cov_labels) + (len(self._sizes) if self.train_second_layer else 0)

    @property
    def labels(self) -> list[str]:
        return list(self._cov_labels) + (list(self._v_labels) if self.train_second_layer else [])

    def eta_at(self, alpha: Any) -> Any:
        return self.parent.eta_at(alpha)

    def scaled_time(self, alpha: Any) -> Any:
        return self.parent.scaled_time(alpha)

    def require_autonomous(self, what: str) -> None:
        self.parent.require_autonomous(what)

    def replace(self, **changes: Any) -> "ReducedCommittee":
        """A copy with some parameters of the full model changed (``K`` follows ``M`` at the same ``g``, and back)."""
        if "K" in changes and "M" not in changes:
            if changes["K"] % self.g:
                raise ValueError(f"K: must be a multiple of g = {self.g} (students per teacher unit), got {changes['K']}")
            changes["M"] = changes["K"] // self.g
        elif "M" in changes and "K" not in changes:
            changes["K"] = changes["M"] * self.g
        if "M" in changes and "T" not in changes:  # the teacher keeps its form Td I + To (11^T - I)
            M = changes["M"]
            changes["T"] = None if (self.Td, self.To) == (1.0, 0.0) else \
                self.To * np.ones((M, M)) + (self.Td - self.To) * np.eye(M)
        return type(self)(self.parent.replace(**changes))

    def parameters(self) -> dict[str, Any]:
        """JSON-ready description (O(1) in K: T, v and w as their common values); see :func:`reduced_from_parameters`."""
        p = self.parent
        return {"K": self.K, "M": self.M, "activation": p.activation.name,
                "teacher_activation": p.teacher_activation.name, "eta": p.eta, "second_order": p.second_order,
                "noise": p.noise, "T_diagonal": self.Td, "T_offdiagonal": self.To, "teacher_weight": self.w,
                "student_weight": self.v_fixed, "normalisation": p.normalisation,
                "train_second_layer": p.train_second_layer, "eta_second_layer": p.eta_second_layer,
                "weight_decay": p.weight_decay, "drift": p.drift,
                "eta_schedule": None if p.eta_schedule is None else p.eta_schedule.to_dict(),
                "subspace": self.subspace}

    def __repr__(self) -> str:
        return f"{self.parent!r}.restrict({self.subspace!r})"

    # --- states --------------------------------------------------------------

    def _ext(self, z: np.ndarray) -> np.ndarray:
        if z.ndim == 0 or z.shape[-1] != self.n_state:
            raise ValueError(f"z: reduced state vectors must have length {self.n_state} ({', '.join(self.labels)}), "
                             f"got shape {z.shape}")
        batch = z.shape[:-1]
        if self._ext_src:  # a class that is no coordinate (-1) enters no pattern: any value will do
            src = np.array(self._ext_src)
            cov = np.where(src >= 0, z[..., np.maximum(src, 0)], 0.0)
        else:
            cov = z[..., :len(self._cov_labels)]
        return np.concatenate([cov, np.broadcast_to([self.Td, self.To, 1.0], batch + (3,))], axis=-1)

    def basis(self) -> np.ndarray:
        """Embedding ``P`` of the reduced coordinates into the full state vector (dense: small K only)."""
        G = grouped_basis(self.M, self.g, self.train_second_layer)
        P = np.zeros((G.shape[0], self.n_state))
        for j, c in enumerate(self._ext_src):  # a coordinate is the sum of the classes it stands for
            if c >= 0:
                P[:, c] += G[:, j]
        if self.train_second_layer:
            P[:, -1] = G[:, -1]
        return P

    def state_vector(self, state: Any, name: str = "state") -> np.ndarray:
        """Reduced coordinates of ``state``: a sequence (as :attr:`labels`), a mapping, or a full :class:`State`.

        A full state must lie in the subspace (to ``1e-12`` relative).
        """
        if isinstance(state, FixedPoint):
            state = state.vector
        if isinstance(state, State):
            P = self.basis()
            v = self.parent.state_vector(state, name)
            z = np.linalg.lstsq(P, v, rcond=None)[0]
            if np.abs(P @ z - v).max() > 1e-12 * max(1.0, float(np.abs(v).max())):
                raise ValueError(f"{name}: not in the {self.subspace.replace('_', '-')} subspace (the entries of "
                                 f"R and Q not all equal within their classes {', '.join(self._cov_labels)})")
            return z
        if isinstance(state, Mapping):
            missing = [k for k in self.labels if k not in state]
            if missing:
                raise ValueError(f"{name}: missing {missing} (needs {', '.join(self.labels)})")
            state = [state[k] for k in self.labels]
        z = np.array(state, dtype=float)
        if z.shape != (self.n_state,):
            raise ValueError(f"{name}: expected {self.n_state} numbers ({', '.join(self.labels)}), got shape {z.shape}")
        return z

    def embed(self, z: np.ndarray) -> State:
        """The full :class:`State` of reduced coordinates ``z`` (forms K x K matrices: small K only)."""
        z = self.state_vector(z, "z")
        K = self.K
        R, S, Q, C1, C2 = self._ext(z)[:5]
        grp = np.arange(K) // self.g
        Rf = np.where(grp[:, None] == np.arange(self.M)[None, :], R, S)
        same = grp[:, None] == grp[None, :]
        Qf = np.where(np.eye(K, dtype=bool), Q, np.where(same, C1, C2))
        return State(Rf, Qf, np.full(K, z[-1]) if self.train_second_layer else None)

    def sector_eigenvalues(self, z: np.ndarray) -> np.ndarray:
        """Smallest eigenvalue of the field covariance on each of its invariant sectors, shape ``(..., 3)``.

        The covariance ``[[Q, R], [R^T, T]]`` of a state of groups of ``g``
        students per teacher unit splits into: the all-ones direction
        ``[[Q + (g-1) C1 + (K-g) C2, (g R + (K-g) S) / sqrt(g)], [., Td + (M-1) To]]``;
        vectors constant within groups and summing to zero over them (M - 1
        times) ``[[Q - C1 + g (C1 - C2), sqrt(g) (R - S)], [., Td - To]]``;
        vectors summing to zero within each group (students only, M (g - 1)
        times) ``Q - C1``.  With one student per group (``C1 = C2 = C``) the
        first two are the trivial and standard sectors of the site-symmetric
        states.  Sectors that do not occur (M = 1, g = 1) repeat the first.
        """
        e = self._ext(np.asarray(z, dtype=float))
        R, S, Q, C1, C2 = (e[..., j] for j in range(5))
        g, K, M = self.g, self.K, self.M
        rg = math.sqrt(g)
        triv = _eig2_min(Q + (g - 1) * C1 + (K - g) * C2, (g * R + (K - g) * S) / rg, self.Td + (M - 1) * self.To + 0 * R)
        std = _eig2_min(Q - C1 + g * (C1 - C2), rg * (R - S), self.Td - self.To + 0 * R) if M > 1 else triv
        within = Q - C1 if g > 1 else triv
        return np.stack([triv, std, within], axis=-1)

    def min_eigenvalue(self, z: np.ndarray) -> float:
        """Smallest eigenvalue of the full field covariance divided by its largest absolute entry (as ``Committee``)."""
        z = np.asarray(z, dtype=float)
        scale = max(1.0, float(np.abs(z[..., :len(self._cov_labels)]).max()), abs(self.Td), abs(self.To))
        return float(self.sector_eigenvalues(z).min()) / scale

    def validate_state(self, state: Any, name: str = "state") -> np.ndarray:
        """Reduced coordinates of ``state``, checked: ``Q > 0`` and the covariance positive semidefinite."""
        z = self.state_vector(state, name)
        if not np.all(np.isfinite(z)):
            raise ValueError(f"{name}: entries must be finite")
        n = len(self._cov_labels)
        norms = z[:n][self._same_unit & self._is_q]
        if np.any(norms <= 0):
            raise ValueError(f"{name}: the student norms ({', '.join(np.array(self._cov_labels)[self._same_unit & self._is_q])}) "
                             f"must be > 0, got {norms.tolist()}")
        lam = self.min_eigenvalue(z)
        if lam < -PSD_TOL:
            raise ValueError(f"{name}: the covariance [[Q, R], [R^T, T]] must be positive semidefinite "
                             f"(smallest eigenvalue / scale = {lam:.3g} < 0)")
        return z

    # --- the flow --------------------------------------------------------------

    def _kernel(self, name: str) -> Any:
        acts = self._acts
        sa = self.activation
        if self._complex_step:
            # the closed forms themselves (one activation): they take complex entries
            form = sa.closed_forms[name]
            unpack = _unpack4 if name == "I4" else _unpack2
            return lambda C, types: form(*unpack(C))

        def k2(fun: Any) -> Any:
            return lambda C, types: fun(C, acts[types[0]], acts[types[1]])

        if name == "H2":
            return k2(expect_H2)
        if name == "J2":
            return k2(expect_J2)
        if name == "I2":
            return k2(expect_I2)
        return lambda C, types: expect_I4(C, sa, acts[types[2]], acts[types[3]])

    def _coefficients(self, z: np.ndarray) -> tuple[Any, Any]:
        """The students' weights and coefficients ``-v``: per state, and with several classes per class (last axis)."""
        nc = len(self._sizes)
        if nc == 1:
            v = z[..., -1] if self.train_second_layer else self.v_fixed
        else:
            v = z[..., -nc:] if self.train_second_layer else np.full(z.shape[:-1] + (nc,), self.v_fixed)
        return v, -_num(v)

    def _parts(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """The flow's parts per unit coefficient, each of shape ``(..., n_state)`` (complex for a complex ``z``)."""
        z = _num(z)
        ext = self._ext(z)
        v, cx = self._coefficients(z)
        cy = self.w
        zero = np.zeros(z.shape[:-1] + (self.n_state,), dtype=z.dtype)
        H2, J2 = self._kernel("H2"), self._kernel("J2")
        one = len(self._sizes) == 1
        vc = _num(v)[..., None] if one else _num(v)
        h = self._h(H2, ext, cx, cy)
        n, q, r = len(self._cov_labels), self._is_q, ~self._is_q
        # d R_in = A_{i, y_n}; d Q_ik = A_ik v_i + A_ki v_k (= 2 A_ik v where swapping i and k is a symmetry)
        A = (ext[..., self._term_pos] * h[..., self._term_cls] + self._first(J2, ext, cx, cy)) * vc[..., self._term_cls]
        first = zero.copy()
        for c, terms in enumerate(self._coord_terms):
            first[..., c] = sum(f * A[..., t] for t, f in terms) if len(terms) > 1 else terms[0][1] * A[..., terms[0][0]]
        parts = {"first": first}
        if self.second_order:
            vv = (_num(v) ** 2)[..., None] if one else vc[..., self._q_cls[:, 0]] * vc[..., self._q_cls[:, 1]]
            i4, j2 = zero.copy(), zero.copy()
            i4[..., :n][..., q] = self._second(self._kernel("I4"), ext, cx, cy) * vv
            C2 = ext[..., self._q_cov]
            j2[..., :n][..., q] = self._kernel("J2")(C2, ("x", "x")) * vv
            parts["i4"], parts["j2"] = i4, j2
        decay = zero.copy()
        decay[..., :n] = -z[..., :n] * np.where(q, 2.0, 1.0)
        drift = zero.copy()
        drift[..., :n][..., r] = -z[..., :n][..., r]
        parts["decay"], parts["drift"] = decay, drift
        second = zero.copy()
        if self.train_second_layer:
            second[..., n:] = self._i2_student(self._kernel("I2"), ext, cx, cy)
        parts["second_layer"] = second
        return parts

    def flow_parts(self, z: np.ndarray) -> FlowParts:
        """The reduced flow as parts with scalar coefficients (as :meth:`Committee.flow_parts
        <phasekit.committee.flow.CommitteeFlow.flow_parts>`), each of shape ``(..., n_state)``."""
        p = self._parts(z)
        return FlowParts(model=self, first=p["first"], i4=p.get("i4"), j2=p.get("j2"), decay=p["decay"],
                         drift=p["drift"], second_layer=p["second_layer"])

    def rhs_vector(self, z: np.ndarray, alpha: Any = None) -> np.ndarray:
        """``d z / d alpha`` for reduced states ``z`` of shape ``(..., n_state)`` (no validation; batched)."""
        z = _num(z)
        eta = self.parent._eta_for(alpha)
        p = self._parts(z)
        out = eta * p["first"]
        if self.second_order:
            second = p["i4"] + self.noise ** 2 * p["j2"] if self.noise > 0 else p["i4"]
            out = out + eta * eta * second
        if self.weight_decay > 0:
            out = out + (eta * self.weight_decay) * p["decay"]
        if self.drift > 0:
            out = out + self.drift * p["drift"]
        if self.train_second_layer:
            eta_v = self.eta_v if self.eta_schedule is None else self.eta_v * eta / self.eta
            out = out + eta_v * p["second_layer"]
        return out

    def rhs(self, state: Any, alpha: float | None = None) -> np.ndarray:
        """``d z / d alpha`` of a validated state (see :meth:`state_vector` for what ``state`` may be)."""
        return self.rhs_vector(self.validate_state(state), alpha)

    def eg_vector(self, z: np.ndarray) -> np.ndarray:
        """Noise-free ``eps_g = (1/2) sum_{u,w} c_u c_w I2(u, w)`` for reduced states ``(..., n_state)``.

        The plain sum over field pairs: its absolute error is about ``1e-16``
        times the size of its terms, ``~K^2`` for unit weights (the full
        model's difference form near the perfect solution is not used here).
        """
        z = np.asarray(z, dtype=float)
        ext = self._ext(z)
        v, cx = self._coefficients(z)
        return np.maximum(0.5 * self._eg(self._kernel("I2"), ext, cx, self.w)[..., 0], 0.0)

    def eg(self, state: Any) -> float:
        return float(self.eg_vector(self.validate_state(state)))

    # --- linear analysis ----------------------------------------------------------

    def perfect_vector(self) -> np.ndarray:
        """Every student a copy of its group's teacher unit, ``v = w / g``: the perfect solution in reduced coordinates.

        Overlaps within a group ``Td`` (``R = Q = C1 = Td``), across groups
        ``To``; a fixed point when ``g v = w``.
        """
        z = np.where(self._same_group, self.Td, self.To)
        return np.r_[z, [self.w / self.g] * len(self._sizes) if self.train_second_layer else []]

    def jacobian(self, z: Any, fun: Any = None, entry_errors: bool = False) -> tuple[np.ndarray, Any, str]:
        """Jacobian of the reduced flow (or of ``fun``) at ``z``: ``(J, error, scheme)``.

        Where the closed forms are analytic across the cone's boundary (erf,
        linear, one activation for student and teacher): complex-step
        derivatives ``Im f(z + i h e_j) / h`` (scheme ``"complex-step"``),
        exact to rounding at any K, boundary included.  Otherwise central
        differences inside the cone; on its boundary (e.g. the
        perfect solution, where ReLU's flow has square-root terms) the
        one-sided limit from inside along directions into the cone, each
        coordinate's step scaled by how strongly it moves the covariance's
        eigenvalues (:meth:`_balance`: ``K - 1`` for the site-symmetric S and C).
        """
        fun = self.rhs_vector if fun is None else fun
        z = self.state_vector(z, "state")
        n = z.size
        margin = self.min_eigenvalue(z)
        scale = max(1.0, float(np.abs(z).max()))
        if self._complex_step:
            # analytic closed forms: Im f(z + i h e_j) / h, no difference of rounded values, and
            # valid on the cone's boundary too (the forms are analytic across it)
            h = _COMPLEX_STEP * scale
            F = fun(z + 1j * h * np.eye(n))
            J = F.imag.T / h
            m = J.shape[0]
            E = np.empty_like(J)
            for b in range(0, m, n):  # each state-shaped block of outputs (e.g. the A and B parts)
                E[b:b + n] = _COMPLEX_STEP_REL_ERROR * np.maximum(np.abs(J[b:b + n]).max(axis=1, keepdims=True),
                                                                  1e-300)
            return J, E if entry_errors else float(E.max()), "complex-step"
        if margin > _BOUNDARY_MARGIN:
            h = _CENTRAL_STEP * scale
            wmax = float(self._balance().max())
            if margin * scale < 4 * h * wmax:
                h = max(margin * scale / (4 * wmax), 1e-12 * scale)
            E = h * np.eye(n)
            F = fun(np.concatenate([z + E, z - E]))
            return (F[:n] - F[n:]).T / (2.0 * h), None if entry_errors else math.nan, "central"
        n_cov = len(self._cov_labels)
        zc = z.copy()
        zc[:n_cov][~self._is_q] = 0.0
        diag = np.flatnonzero(self._same_unit & self._is_q)
        mu = 0.5 * max(float(z[diag].min()), 1e-3)
        zc[diag] += mu
        lam_c = min(float(self.sector_eigenvalues(zc).min()), self.Td - self.To, self.Td + (self.M - 1) * self.To)
        gam = 0.5 * lam_c / self._balance()
        d_in = zc - z
        _, Jc, Ec, _ = _inward_columns(fun, z, d_in, np.diag(gam), gam)
        J, E = Jc.T, Ec.T
        return J, E if entry_errors else float(np.nanmax(E)), "cone"

    def eta_structure(self, z: Any = None) -> Any:
        """``J(eta) = eta A + eta^2 B`` of the reduced flow at ``z`` (default: the perfect solution).

        Returns an :class:`~phasekit.committee.pencil.EtaStructure` in reduced
        coordinates (its ``state`` is the reduced vector).
        """
        self.require_autonomous("fixed-point analysis (Jacobians, fixed points, stability)")
        if self.train_second_layer and self.eta_second_layer is not None:
            raise ValueError("model: with its own second-layer learning rate (eta_second_layer) the Jacobian is not "
                             "eta A + eta^2 B; leave eta_second_layer=None")
        z = self.perfect_vector() if z is None else self.state_vector(z, "state")
        n = self.n_state

        def fun(Z: np.ndarray) -> np.ndarray:
            p = self._parts(Z)
            a = p["first"] + self.weight_decay * p["decay"] + p["second_layer"] * self.train_second_layer
            b = p["i4"] + self.noise ** 2 * p["j2"] if self.second_order else np.zeros_like(a)
            return np.concatenate([a, b], axis=-1)

        J, E, scheme = self.jacobian(z, fun, entry_errors=True)
        f = fun(z)
        # balanced coordinates (S, C scaled by K - 1, the weight with which they enter the
        # covariance): the same eigenvalues, entries of one size, so that the pencil's
        # tolerances (relative to its largest entry) suit every entry for any K
        d = self._balance()
        scale = d[:, None] / d[None, :]
        A, B = J[:n] * scale, J[n:] * scale
        # A and B keep their own errors: B ~ K A here (eta ~ 1/K), so one error for both
        # would be B's, and would swamp the tolerances on A (fake marginal modes, a
        # crossing lost in its error band at K ~ 1e3 and above)
        if scheme == "complex-step":  # exact to rounding: relative to the (balanced) matrices' entries
            err_a = _COMPLEX_STEP_REL_ERROR * float(np.abs(A).max())
            err_b = _COMPLEX_STEP_REL_ERROR * float(np.abs(B).max())
        else:
            err_a = float(np.nanmax(E[:n] * scale)) if E is not None else math.nan
            err_b = float(np.nanmax(E[n:] * scale)) if E is not None else math.nan
        return EtaStructure(A=A, B=B, error=err_a, state=z, scheme=scheme, residual=float(np.abs(f).max()),
                            error_B=err_b)

    def _balance(self) -> np.ndarray:
        """How many entries of a row of the covariance each coordinate fills (at least 1)."""
        d = np.ones(self.n_state)
        counts = self._row_counts()
        d[:len(counts)] = np.maximum(counts, 1)
        return d

    def _row_counts(self) -> np.ndarray:
        counts = {0: 1, 1: self.K - self.g, 2: 1, 3: self.g - 1, 4: self.K - self.g}
        d = np.ones(len(self._cov_labels))
        for j, c in enumerate(self._ext_src):
            if c >= 0:
                d[c] = max(d[c], counts[j])
        return d

    def linearise(self, z: Any, *, label: str = "", status: str = "ok", message: str = "",
                  iterations: int = 0) -> FixedPoint:
        """The reduced fixed point ``z`` with its Jacobian, spectrum and stability class (in the subspace)."""
        z = self.state_vector(z, "state")
        J, err, scheme = self.jacobian(z)
        spec = eigen_decomposition(J)
        tol = 1e-8 * max(1.0, float(np.abs(J).max())) if not np.isfinite(err) else max(10 * err, 1e-10)
        n_unstable, kind = classify(spec.eigenvalues, tol)
        extra: dict[str, Any] = {"subspace": self.subspace}
        if label == "symmetric_plateau":
            k = int(np.argmax(spec.eigenvalues.real))
            extra.update(escape_eigenvalue=float(spec.eigenvalues[k].real), escape_vector=np.real(spec.eigenvectors[:, k]))
        return FixedPoint(vector=z, eigenvalues=spec.eigenvalues, eigenvectors=spec.eigenvectors, jacobian=J,
                          jacobian_error=err, jacobian_scheme=scheme, residual=float(np.abs(self.rhs_vector(z)).max()),
                          kind=kind, n_unstable=n_unstable, eig_tol=tol, labels=tuple(self.labels),
                          iterations=iterations, extra=extra, status=status, message=message or label)

    def find_fixed_point(self, guess: Any, *, tol: float = 1e-12, max_iter: int = 60, label: str = "",
                         fixed: Sequence[int] = (), tie: Sequence[tuple[int, int]] = ()) -> FixedPoint:
        """Newton's method for the reduced flow from ``guess``, staying inside the cone.

        ``tie``: pairs ``(a, b)`` of coordinates held equal (``z_a = z_b``; the
        symmetric plateau ties S to R), solved on that sub-subspace.
        """
        z = self.state_vector(guess, "guess").copy()
        n = self.n_state
        # free coordinates: b in a tie (a, b) follows a
        follow = {b: a for a, b in tie}
        free = [j for j in range(n) if j not in follow and j not in fixed]
        B = np.zeros((n, len(free)))
        for c, j in enumerate(free):
            B[j, c] = 1.0
            for b, a in follow.items():
                if a == j:
                    B[b, c] = 1.0
        f = self.rhs_vector(z)
        it = 0
        for it in range(1, max_iter + 1):
            res = float(np.abs(B.T @ f).max())
            if res <= tol:
                break
            J = self.jacobian(z)[0]
            step = np.linalg.lstsq(B.T @ J @ B, -(B.T @ f), rcond=None)[0]
            t = 1.0
            while t > 1e-8:
                cand = z + t * (B @ step)
                if self.min_eigenvalue(cand) >= -PSD_TOL and cand[2] > 0:
                    try:
                        fc = self.rhs_vector(cand)
                    except ValueError:
                        fc = np.full(n, np.nan)
                    if np.all(np.isfinite(fc)) and float(np.abs(B.T @ fc).max()) < res * (1 - 1e-4 * t) + tol:
                        break
                t *= 0.5
            else:
                return self.linearise(z, label=label, status="failed", iterations=it,
                                      message=f"Newton stalled at residual {res:.3g}")
            z, f = cand, fc
        res = float(np.abs(B.T @ f).max())
        ok = res <= tol
        if ok:
            # polish: the residual tolerance is absolute, but a slow mode (an eigenvalue
            # ~ eta / K on a wide plateau) leaves the point ~ tol / eigenvalue away; full
            # Newton steps while they still reduce the residual
            for _ in range(3):
                step = np.linalg.lstsq(B.T @ self.jacobian(z)[0] @ B, -(B.T @ f), rcond=None)[0]
                cand = z + B @ step
                if not (self.min_eigenvalue(cand) >= -PSD_TOL and cand[2] > 0):
                    break
                fc = self.rhs_vector(cand)
                rc = float(np.abs(B.T @ fc).max())
                if not (np.all(np.isfinite(fc)) and rc < res):
                    break
                z, f, res = cand, fc, rc
        return self.linearise(z, label=label, status="converged" if ok else "failed", iterations=it,
                              message="converged" if ok else f"residual {res:.3g} above tol {tol:g}")

    def perfect_solution(self) -> FixedPoint:
        """The perfect solution ``R = Q = Td``, ``S = C = To`` linearised inside the subspace (one-sided)."""
        self.require_autonomous("the perfect solution's fixed-point analysis")
        z = self.perfect_vector()
        if float(np.abs(self.rhs_vector(z)).max()) <= 1e-12:
            return self.linearise(z, label="perfect", message="exact fixed point R = Q = T")
        return self.find_fixed_point(z, label="perfect")

    def symmetric_plateau(self, guess: Sequence[float] | None = None, *, alpha_flow: float = 400.0,
                          tol: float = 1e-12) -> FixedPoint:
        """The symmetric plateau (``R = S``, all students alike) and its escape mode (inside the subspace).

        ``guess``: ``(R, Q, C[, v])`` (``C`` every student-student overlap);
        default the end of the flow on ``R = S``
        from ``R = S = 0.01 min(1, 10 / K)``, ``Q = 0.5``, ``C = 0`` integrated to
        ``eta alpha = alpha_flow``.
        """
        self.require_autonomous("the symmetric plateau's fixed-point analysis")
        if self.K < 2:
            raise ValueError("model: the symmetric plateau needs K >= 2 student units")
        tv = [self.v_fixed] if self.train_second_layer else []
        src = list(self._plateau_src) + ([3] if tv else [])
        ties = self._plateau_ties
        if guess is None:
            r0 = 0.01 * min(1.0, 10.0 / self.K)  # inside the cone: (K r0)^2 < Q Td
            g = np.array([r0, 0.5, 0.0] + tv)[src]

            def flow(_a: float, y: np.ndarray) -> np.ndarray:
                # R = S is invariant, but unstable across (the escape): hold it exactly, or
                # rounding grows into specialisation
                y = y.copy()
                for a, b in ties:
                    y[b] = y[a]
                try:
                    f = self.rhs_vector(y)
                except ValueError:  # a trial stage outside the cone (a kernel refuses it)
                    return np.zeros_like(y)
                for a, b in ties:
                    f[b] = f[a]
                return f if np.all(np.isfinite(f)) else np.zeros_like(y)

            def leave(_a: float, y: np.ndarray) -> float:
                return max(self.min_eigenvalue(y), -1.0) + 1e-12

            # on R = S the flow keeps R = S: integrate it there (stopping where it would leave the cone)
            z0 = g
            try:
                with np.errstate(all="ignore"):
                    run = solve_flow(flow, g, (0.0, alpha_flow / self.eta),
                                     events=[Event("cone_exit", leave, status="diverged")],
                                     options=SolverOptions(method="LSODA", rtol=1e-10, atol=1e-12))
                inside = [y for y in run.y[::-1] if np.all(np.isfinite(y)) and self.min_eigenvalue(y) >= 0]
                z0 = np.array(inside[0]) if inside else g
            except (ValueError, RuntimeError, np.linalg.LinAlgError):
                pass
            for a, b in ties:
                z0[b] = z0[a]
        else:
            gg = np.asarray(guess, dtype=float)
            if gg.shape != (3 + len(tv),):
                raise ValueError(f"guess: expected {3 + len(tv)} numbers (R, Q, C{', v' if tv else ''})")
            z0 = gg[src]
        return self.find_fixed_point(z0, tol=tol, label="symmetric_plateau", tie=list(ties))


    def start_vector(self, X: float, Q0: float) -> np.ndarray:
        """The diagonal start: ``R = X`` (each student's overlap with its group's teacher), ``Q_ii = Q0``, the rest 0."""
        n = len(self._cov_labels)
        z = np.full(self.n_state, self.v_fixed)
        z[:n] = np.where(self._same_group & ~self._is_q, X, np.where(self._same_unit & self._is_q, Q0, 0.0))
        return z


class SiteSymmetricCommittee(ReducedCommittee):
    """The committee flow restricted to the site-symmetric subspace (K = M), in ``(R, S, Q, C[, v])``.

    For K = M, a teacher ``T = Td I + To (11^T - I)`` with equal teacher
    weights (and equal student weights), the states left fixed by the
    simultaneous permutations of student and teacher units::

        R_ii = R,   R_in = S (i != n),   Q_ii = Q,   Q_ik = C (i != k)   [, v_i = v],

    built by :meth:`Committee.restrict("site_symmetric")
    <phasekit.committee.model.Committee.restrict>` (the groups of
    :class:`ReducedCommittee` with one student each).  The perfect solution
    is ``R = Q = Td``, ``S = C = To``, ``v = w``.
    """

    subspace = "site_symmetric"
    _cov_labels = ("R", "S", "Q", "C")
    _targets = (("y", 0, 0, 0), ("y", 0, 1, 0), ("x", 0, 0, 0), ("x", 0, 1, 0))
    _ext_src = (0, 1, 2, 3, 3)
    _plateau_ties = ((0, 1),)
    _plateau_src = (0, 0, 1, 2)

    def _group_size(self, K: int, M: int) -> int:
        if K != M:
            raise ValueError(f"model: the site-symmetric subspace needs K == M, got K={K}, M={M}")
        return 1


class GroupedCommittee(ReducedCommittee):
    """The flow of over-realisable students in groups: K = g M, ``g`` students per teacher unit.

    For a teacher ``T = Td I + To (11^T - I)`` of M units with equal weights
    (and equal student weights), student ``i`` belonging to the group of
    teacher unit ``i // g``, the states invariant under permuting the teacher
    units together with their groups and the students within each group::

        R_in = R (i in group n),  S (otherwise),   Q_ii = Q,
        Q_ik = C1 (i != k in one group),  C2 (different groups)   [, v_i = v],

    built by :meth:`Committee.restrict("grouped")
    <phasekit.committee.model.Committee.restrict>`.  The perfect solution
    copies the teacher unit into each student of its group, ``R = Q = C1 = Td``,
    ``S = C2 = To``, with ``v = w / g`` (a fixed point when ``g v = w``, e.g.
    the ``"1/K"`` normalisation); the states of identical students in a group
    (``C1 = Q``, on the boundary of the cone) form an invariant subspace of
    it.  Needs ``g >= 2`` (``g = 1`` is the site-symmetric subspace); with
    one teacher unit (M = 1) the coordinates are ``(R, Q, C1[, v])``.
    """

    subspace = "grouped"
    _cov_labels = ("R", "S", "Q", "C1", "C2")
    _targets = (("y", 0, 0, 0), ("y", 0, 1, 0), ("x", 0, 0, 0), ("x", 0, 0, 1), ("x", 0, 1, 0))
    _ext_src = (0, 1, 2, 3, 4)
    _plateau_ties = ((0, 1), (3, 4))
    _plateau_src = (0, 0, 1, 2, 2)

    def _group_size(self, K: int, M: int) -> int:
        if K % M or K == M:
            raise ValueError(f"K: the grouped subspace needs K = g M students (g >= 2 per teacher unit), "
                             f"a multiple of M = {M} above it, got K = {K}"
                             + (" (for K = M use 'site_symmetric')" if K == M else ""))
        return K // M

    def _layout(self) -> tuple:
        if self.M == 1:  # one teacher unit, one group: no S, no C2
            self._cov_labels = ("R", "Q", "C1")
            self._targets = (("y", 0, 0, 0), ("x", 0, 0, 0), ("x", 0, 0, 1))
            self._ext_src = (0, -1, 1, 2, -1)
            self._plateau_ties, self._plateau_src = (), ()
        return super()._layout()

    def symmetric_plateau(self, *args: Any, **kwargs: Any) -> FixedPoint:
        if self.M == 1:
            raise ValueError("model: with one teacher unit (M = 1) there is no symmetric plateau to break")
        return super().symmetric_plateau(*args, **kwargs)


class PairCommittee(ReducedCommittee):
    """The flow on the states invariant under the permutations of units 3 ... K (K = M), units 1 and 2 distinguished.

    Students and teachers are permuted together; the classes are unit 1,
    unit 2 and the rest (``r``, ``s`` two different ones of them)::

        R_ab (a, b in 1, 2, r; and R_rs),   Q_11, Q_22, Q_12, Q_1r, Q_2r, Q_rr, Q_rs   [, v_1, v_2, v_r],

    17 covariance coordinates for K >= 4 (those with ``r`` absent for K = 2,
    those with ``s`` for K = 3), whatever K.  Every isotypic component of
    S_K acting on the full state space meets this subspace (the trivial once,
    the standard twice, ``(K-2, 2)`` and ``(K-2, 1, 1)`` once), so at the
    perfect solution its Jacobian, split by the class sum of transpositions
    (:meth:`sector_operators`), has every eigenvalue of the full Jacobian:
    :func:`~phasekit.committee.stability.sector_stability` uses it for any K.
    Built by :meth:`Committee.restrict("pair") <phasekit.committee.model.Committee.restrict>`.
    """

    subspace = "pair"
    _v_labels = ("v_1", "v_2", "v_r")

    def _group_size(self, K: int, M: int) -> int:
        if K != M:
            raise ValueError(f"model: the pair subspace needs K == M, got K={K}, M={M}")
        return 1

    def _layout(self) -> tuple:
        K = self.K
        name = {0: "1", 1: "2", 2: "r"}
        x = [("x", 0, 0, 0), ("x", 1, 1, 0), ("x", 2, 2, 0)]
        y = [("y", 0, 0, 0), ("y", 1, 1, 0), ("y", 2, 2, 0)]
        xs, ys = ("x", 2, 3, 0), ("y", 2, 3, 0)
        # the rest's units a coordinate's representative needs: one per rest index (one if they coincide)
        exists = lambda a, b: (1 if a == b == 2 else (a == 2) + (b == 2)) <= K - 2  # noqa: E731
        coords = []
        for a in range(3):
            for b in range(3):
                if exists(a, b):
                    coords.append((f"R_{name[a]}{name[b]}", False, a == b, a == b, [(x[a], y[b], 1.0)]))
                if a == b == 2 and K >= 4:
                    coords.append(("R_rs", False, False, False, [(x[2], ys, 1.0)]))
        for a, b in ((0, 0), (1, 1), (0, 1), (0, 2), (1, 2), (2, 2)):
            if not exists(a, b):
                continue
            if a == b:
                coords.append((f"Q_{name[a]}{name[a]}", True, True, True, [(x[a], x[a], 2.0)]))
            else:
                coords.append((f"Q_{name[a]}{name[b]}", True, False, False, [(x[a], x[b], 1.0), (x[b], x[a], 1.0)]))
        if K >= 4:
            coords.append(("Q_rs", True, False, False, [(x[2], xs, 1.0), (xs, x[2], 1.0)]))
        pos = {}
        for j, (label, q, same, _, terms) in enumerate(coords):
            f, h = terms[0][:2]
            cls = tuple(sorted([f[1], h[1]])) if q else (f[1], h[1])
            pos[("Q" if q else "R", *cls, f[2] == h[2])] = j
        n = len(coords)
        self._pos = pos

        def entry(f: tuple, h: tuple) -> int:
            same = f[2] == h[2]
            if f[0] == "y" and h[0] == "y":
                return n if same else n + 1
            if f[0] == "x" and h[0] == "x":
                return pos[("Q", *sorted([f[1], h[1]]), same)]
            a, b = (f, h) if f[0] == "x" else (h, f)
            return pos[("R", a[1], b[1], same)]

        sizes = (1, 1, K - 2)
        return sizes, entry, n, coords, x if K > 2 else x[:2]

    def _build(self, sizes: Sequence[int], *args: Any) -> None:
        # K = 2: no rest class (its weight coordinate v_r absent too)
        super()._build(sizes if self.K > 2 else sizes[:2], *args)

    @property
    def labels(self) -> list[str]:
        return list(self._cov_labels) + (list(self._v_labels[:len(self._sizes)]) if self.train_second_layer else [])

    def _unit(self, u: int, t: str) -> tuple:
        return (t, min(u, 2), u, 0)

    def basis(self) -> np.ndarray:
        """Embedding of the reduced coordinates into the full state vector (dense: small K only)."""
        K = self.K
        n = len(self._cov_labels)
        rows = [self._entry(self._unit(i, "x"), self._unit(m, "y")) for i in range(K) for m in range(K)]
        iu = np.triu_indices(K)
        rows += [self._entry(self._unit(i, "x"), self._unit(k, "x")) for i, k in zip(*iu)]
        if self.train_second_layer:
            rows += [n + min(i, 2) for i in range(K)]
        P = np.zeros((len(rows), self.n_state))
        P[np.arange(len(rows)), rows] = 1.0
        return P

    def _row_counts(self) -> np.ndarray:
        K = self.K
        size = {0: 1, 1: 1, 2: K - 2}
        d = []
        for label, q, same, _, terms in self._layout_coords():
            f, h = terms[0][:2]
            d.append(1 if same else size[h[1]] - (1 if f[1] == h[1] else 0))
        return np.array(d, dtype=float)

    def _layout_coords(self) -> list:
        return self._layout()[3]

    def sector_eigenvalues(self, z: np.ndarray) -> np.ndarray:
        """Smallest eigenvalue of the field covariance on the span of units 1, 2 and the rest's mean, and on
        the rest's zero-sum directions, shape ``(..., 2)``."""
        e = self._ext(np.asarray(z, dtype=float))
        K, n, p = self.K, len(self._cov_labels), self._pos
        g = lambda key: e[..., p[key]] if key in p else 0.0 * e[..., 0]  # noqa: E731
        Td, To = e[..., n], e[..., n + 1]
        m = K - 2
        rm = math.sqrt(max(m, 0))
        fields = 3 if K > 2 else 2
        C = np.zeros(e.shape[:-1] + (2 * fields, 2 * fields))
        for a in range(fields):
            for b in range(fields):
                wa = rm if a == 2 else 1.0
                wb = rm if b == 2 else 1.0
                lo, hi = sorted([a, b])
                if a == b == 2:
                    qq = g(("Q", 2, 2, True)) + (m - 1) * g(("Q", 2, 2, False))
                    rr = g(("R", 2, 2, True)) + (m - 1) * g(("R", 2, 2, False))
                    tt = Td + (m - 1) * To
                else:
                    qq = wa * wb * g(("Q", lo, hi, a == b))
                    rr = wa * wb * g(("R", a, b, a == b))
                    tt = wa * wb * (Td if a == b else To)
                C[..., a, b] = qq
                C[..., a, fields + b] = rr
                C[..., fields + b, a] = rr
                C[..., fields + a, fields + b] = tt
        out = [np.linalg.eigvalsh(C)[..., 0]]
        if K >= 4:
            out.append(_eig2_min(g(("Q", 2, 2, True)) - g(("Q", 2, 2, False)),
                                 g(("R", 2, 2, True)) - g(("R", 2, 2, False)), Td - To))
        else:
            out.append(out[0])
        return np.stack(out, axis=-1)

    def symmetric_plateau(self, *args: Any, **kwargs: Any) -> FixedPoint:
        raise ValueError("model: the symmetric plateau lies in the site-symmetric subspace; "
                         "use Committee.restrict('site_symmetric')")

    def sector_operators(self) -> tuple[np.ndarray, np.ndarray]:
        """The class sum of transpositions ``sum_{i<j} (i j)`` and the swap ``(1 2)`` on the reduced coordinates.

        Both commute with the flow's Jacobian at a symmetric fixed point and
        map the subspace to itself; the class sum is ``K(K-1)/2 - K`` on the
        standard sector, ``K(K-1)/2 - 2K + 2`` on ``(K-2, 2)``, ``K(K-1)/2 - 2K``
        on ``(K-2, 1, 1)``, ``K(K-1)/2`` on the trivial one; the swap splits the
        standard sector's two copies (``+1``, ``-1``).  Each is the sum over the
        transpositions' images of a representative entry of every coordinate,
        the rest's units other than the representative's counted by multiplicity.
        """
        K, n, N = self.K, len(self._cov_labels), self.n_state
        reps = []
        for label, q, same, _, terms in self._layout_coords():
            f, h = terms[0][:2]
            reps.append((f, h))
        C = np.zeros((N, N))
        swap = np.zeros((N, N))
        rest = K - 2

        def coord(f: tuple, h: tuple) -> int:
            return self._entry(f, h)

        def moved(f: tuple, sigma: dict) -> tuple:
            u = sigma.get(f[2], f[2])
            return (f[0], min(u, 2), u, 0)

        for c, (f, h) in enumerate(reps):
            units = {f[2], h[2]}
            in_rest = sorted(u for u in units if u >= 2)
            other = 99  # a unit of the rest not in the representative
            n_other = rest - len(in_rest)
            # transpositions within the rest: those touching the representative's rest units move it
            pairs = [((0, 1), 1.0)]
            for a in (0, 1):
                pairs += [((a, u), 1.0) for u in in_rest] + ([((a, other), float(n_other))] if n_other > 0 else [])
            pairs += [((u, v), 1.0) for j, u in enumerate(in_rest) for v in in_rest[j + 1:]]
            pairs += [((u, other), float(n_other)) for u in in_rest] if n_other > 0 else []
            n_fixed = rest * (rest - 1) / 2 - len(in_rest) * (len(in_rest) - 1) / 2 - len(in_rest) * n_other
            C[c, c] += n_fixed  # transpositions of two rest units the representative does not use
            for (a, b), mult in pairs:
                sigma = {a: b, b: a}
                j = coord(moved(f, sigma), moved(h, sigma))
                C[c, j] += mult
                if (a, b) == (0, 1):
                    swap[c, j] = 1.0
        if self.train_second_layer:
            # (C v)_i = sum over transpositions t of v_t(i): unit 1 goes to 2 once and to the rest K - 2 times
            tot, nv = K * (K - 1) / 2, len(self._sizes)
            for cls in range(2):
                C[n + cls, n + cls] = tot - 1 - rest
                C[n + cls, n + 1 - cls] = 1.0
                swap[n + cls, n + 1 - cls] = 1.0
                if nv > 2:
                    C[n + cls, n + 2] = rest
            if nv > 2:
                C[n + 2, n] = C[n + 2, n + 1] = 1.0
                C[n + 2, n + 2] = tot - 2
                swap[n + 2, n + 2] = 1.0
        return C, swap


SUBSPACE_MODELS["site_symmetric"] = SiteSymmetricCommittee
SUBSPACE_MODELS["grouped"] = GroupedCommittee
SUBSPACE_MODELS["pair"] = PairCommittee


def reduced_from_parameters(params: Mapping[str, Any] | str) -> ReducedCommittee:
    """Rebuild a reduced model from :meth:`ReducedCommittee.parameters` (dict or JSON string)."""
    p = dict(json.loads(params) if isinstance(params, str) else params)
    if p.get("subspace") not in SUBSPACES:
        raise ValueError(f"params: subspace must be one of {SUBSPACES}, got {p.get('subspace')!r}")
    K, M = int(p["K"]), int(p.get("M", p["K"]))
    Td, To = float(p.get("T_diagonal", 1.0)), float(p.get("T_offdiagonal", 0.0))
    T = None if (Td, To) == (1.0, 0.0) else To * np.ones((M, M)) + (Td - To) * np.eye(M)
    ta = p.get("teacher_activation")
    model = Committee(K, M, p["activation"], eta=p["eta"], second_order=bool(p["second_order"]),
                      noise=p["noise"], T=T, teacher_activation=None if ta == p["activation"] else ta,
                      teacher_weights=np.full(M, float(p["teacher_weight"])),
                      student_weights=np.full(K, float(p["student_weight"])),
                      normalisation=p.get("normalisation", "none"),
                      train_second_layer=bool(p.get("train_second_layer", False)),
                      eta_second_layer=p.get("eta_second_layer"), weight_decay=p.get("weight_decay", 0.0),
                      drift=p.get("drift", 0.0), eta_schedule=p.get("eta_schedule"))
    return model.restrict(p["subspace"])


# --- the symmetric group's sectors in the full state space ---------------------------------


def transposition_class_sum(K: int, second_layer: bool = False) -> np.ndarray:
    """``sum over transpositions (i j)`` of the coordinate permutation matrices on the full state vector (K = M).

    It commutes with every simultaneous permutation and is a scalar on each
    isotypic component: the content sum of the Young diagram,
    ``K(K-1)/2 - K`` on the standard sector (K-1, 1), ``K(K-1)/2 - 2K + 2``
    on (K-2, 2), ``K(K-1)/2 - 2K`` on (K-2, 1, 1), ``K(K-1)/2`` on the
    trivial one (the site-symmetric subspace).  Dense ``(n_state, n_state)``: small K.
    """
    n = K * K + K * (K + 1) // 2 + (K if second_layer else 0)
    Csum = np.zeros((n, n))
    for i in range(K):
        for j in range(i + 1, K):
            sigma = list(range(K))
            sigma[i], sigma[j] = j, i
            pi = _coordinate_permutation(K, K, sigma, sigma, second_layer)
            Csum[pi, np.arange(n)] += 1.0
    return Csum


def _contents(K: int) -> dict[str, float]:
    base = K * (K - 1) / 2
    return {"trivial": base, "standard": base - K, "(K-2,2)": base - 2 * K + 2, "(K-2,1,1)": base - 2 * K}


def sector_projectors(K: int, second_layer: bool = False) -> dict[str, np.ndarray]:
    """Orthonormal bases (columns) of the isotypic components of S_K on the full state space (K = M).

    Keys ``"trivial"`` (the site-symmetric subspace), ``"standard"``,
    ``"(K-2,2)"``, ``"(K-2,1,1)"``; components that do not occur at this K
    are absent (for K = 2 only trivial and standard (the sign) occur; for
    K = 3, (K-2,2) does not exist).
    """
    Csum = transposition_class_sum(K, second_layer)
    w, V = np.linalg.eigh(0.5 * (Csum + Csum.T))
    out = {}
    for name, c in _contents(K).items():
        sel = np.abs(w - c) < 1e-6
        if name != "trivial" and abs(c - _contents(K)["trivial"]) < 1e-9:
            continue  # K = 1
        if sel.any() and (name == "trivial" or not any(abs(c - _contents(K)[o]) < 1e-9 for o in out)):
            out[name] = V[:, sel]
    return out


def sector_of(vector: np.ndarray, K: int, second_layer: bool = False, Csum: np.ndarray | None = None) -> str:
    """Name of the isotypic component of S_K that a full-space (eigen)vector lies in (nearest content)."""
    Csum = transposition_class_sum(K, second_layer) if Csum is None else Csum
    x = np.asarray(vector)
    c = float(np.real(np.vdot(x, Csum @ x) / np.vdot(x, x)))
    names = _contents(K)
    return min(names, key=lambda k: abs(names[k] - c))
