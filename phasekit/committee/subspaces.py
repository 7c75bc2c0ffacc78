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

from ..core.activations import expect_H2, expect_I2, expect_I4, expect_J2
from ..core.results import FixedPoint, classify
from ..core.spectrum import eigen_decomposition
from ..core.ode import Event, solve_flow
from ..core.options import SolverOptions
from .flow import FlowParts
from .jacobians import _BOUNDARY_MARGIN, _CENTRAL_STEP, _inward_columns
from .model import PSD_TOL, SUBSPACE_MODELS, Committee, State
from .pencil import EtaStructure
from .symmetry import _coordinate_permutation

__all__ = ["SUBSPACES", "SiteSymmetricCommittee", "site_symmetric_basis", "reduced_from_parameters",
           "sector_of", "sector_projectors", "transposition_class_sum"]


#: The invariant subspaces :meth:`Committee.restrict` knows.
SUBSPACES = ("site_symmetric",)


# Indices of the covariance entries in the extended vector (R, S, Q, C, Td, To).
_ENTRY = {("x", "x", True): 2, ("x", "x", False): 3, ("y", "y", True): 4, ("y", "y", False): 5,
          ("x", "y", True): 0, ("x", "y", False): 1, ("y", "x", True): 0, ("y", "x", False): 1}


def _falling(n: int, p: int) -> float:
    out = 1.0
    for j in range(p):
        out *= max(n - j, 0)
    return out


def _patterns(fixed: Sequence[tuple[str, int]], n_free: int) -> list[tuple[tuple[tuple[str, int], ...], int]]:
    """Every (types, index pattern) of ``n_free`` summed fields next to ``fixed`` fields ``(type, unit)``.

    Returns ``(fields, n_new)``: the fixed fields followed by the free ones as
    ``(type, unit)``, new units numbered after the fixed ones, and the number
    of new units.
    """
    used = sorted({b for _, b in fixed})
    m0 = len(used)
    out = []

    def rec(units: list[int], m: int) -> None:
        # each free index is a fixed unit, a new unit met before, or the next new unit
        if len(units) == n_free:
            for types in _product("xy", n_free):
                out.append((tuple(fixed) + tuple(zip(types, units)), m - m0))
            return
        for b in used + list(range(m0, m)):
            rec(units + [b], m)
        rec(units + [m], m + 1)

    rec([], m0)
    return out


def _product(alphabet: str, n: int) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for _ in range(n):
        out = [p + (a,) for p in out for a in alphabet]
    return out


def _key(field: tuple[str, int]) -> tuple[int, int]:
    """Position of a field in the full flow's order: students first, then by unit."""
    return (0 if field[0] == "x" else 1, field[1])


class _PatternSum:
    """Several sums ``sum over patterns of count * prod(c of summed fields) * kernel(cov) [* cov(extra)]``.

    Each spec ``(fixed, n_free, slots, sort_from, extra)`` gives one output:
    ``slots`` picks the fields the kernel sees (in order; those from
    ``sort_from`` on sorted as the full flow sorts them), ``extra`` an
    optional covariance factor (a pair of field positions).  Patterns of all
    outputs are evaluated in one kernel call per activation combination
    (one call in all unless teacher and student activations differ).
    """

    def __init__(self, K: int, specs: Sequence[tuple], mixed: bool) -> None:
        groups: dict[tuple[str, ...], list] = {}
        self.n_out = len(specs)
        for out, (fixed, n_free, slots, sort_from, extra) in enumerate(specs):
            n_used = len({b for _, b in fixed})
            for fields, n_new in _patterns(fixed, n_free):
                count = _falling(K - n_used, n_new)
                if count == 0.0:
                    continue
                chosen = [fields[s] for s in slots]
                chosen = chosen[:sort_from] + sorted(chosen[sort_from:], key=_key)
                d = len(chosen)
                idx = np.empty((d, d), dtype=np.intp)
                for a in range(d):
                    for b in range(d):
                        idx[a, b] = _ENTRY[(chosen[a][0], chosen[b][0], chosen[a][1] == chosen[b][1])]
                free = fields[len(fixed):]
                nx = sum(1 for t, _ in free if t == "x")
                e = 6 if extra is None else _ENTRY[(fields[extra[0]][0], fields[extra[1]][0],
                                                     fields[extra[0]][1] == fields[extra[1]][1])]
                types = tuple(t for t, _ in chosen) if mixed else ()
                groups.setdefault(types, []).append((idx, count, nx, n_free - nx, e, out))
        self.groups = []
        for types, rows in groups.items():
            seg = np.zeros((len(rows), self.n_out))
            seg[np.arange(len(rows)), [r[5] for r in rows]] = 1.0
            self.groups.append((types or ("x",) * 4, np.stack([r[0] for r in rows]), np.array([r[1] for r in rows]),
                                np.array([r[2] for r in rows]), np.array([r[3] for r in rows]),
                                np.array([r[4] for r in rows]), seg))

    def __call__(self, kernel: Any, ext: np.ndarray, cx: Any, cy: float) -> np.ndarray:
        """The outputs, shape ``(..., n_out)``; ``ext`` is ``(R, S, Q, C, Td, To, 1)`` per state."""
        total = 0.0
        cx = np.asarray(cx, dtype=float)[..., None]
        for types, idx, count, nx, ny, e, seg in self.groups:
            vals = kernel(ext[..., idx], types)  # (..., P)
            w = count * (cy ** ny) * ext[..., e]
            w = w * (cx ** nx if cx.ndim > 1 else float(cx[0]) ** nx)
            total = total + (vals * w) @ seg
        return total


def site_symmetric_basis(K: int, second_layer: bool = False) -> np.ndarray:
    """Embedding ``P`` of ``(R, S, Q, C[, v])`` into the full state vector (K = M), shape ``(n_state, 4[+1])``.

    Columns: the indicators of ``R_ii``, ``R_in`` (i != n), ``Q_ii``, ``Q_ik``
    (i < k) and, with ``second_layer``, of the weights ``v_i``.  The full
    state of reduced coordinates ``z`` is ``P @ z``; ``pinv(P) @ f`` reads the
    reduced flow off a full flow ``f`` on the subspace.
    """
    n0 = K * K + K * (K + 1) // 2
    n = n0 + (K if second_layer else 0)
    P = np.zeros((n, 5 if second_layer else 4))
    eye = np.eye(K, dtype=bool).ravel()
    P[:K * K, 0] = eye
    P[:K * K, 1] = ~eye
    iu = np.triu_indices(K)
    P[K * K:n0, 2] = iu[0] == iu[1]
    P[K * K:n0, 3] = iu[0] != iu[1]
    if second_layer:
        P[n0:, 4] = 1.0
    return P


def _eig2_min(a: np.ndarray, b: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Smallest eigenvalue of the symmetric 2 x 2 matrices ``[[a, b], [b, d]]``."""
    return 0.5 * (a + d) - np.hypot(0.5 * (a - d), b)


class SiteSymmetricCommittee:
    """The committee flow restricted to the site-symmetric subspace (K = M), in ``(R, S, Q, C[, v])``.

    Built by :meth:`Committee.restrict("site_symmetric")
    <phasekit.committee.model.Committee.restrict>`.  The state vector is
    ``z = (R, S, Q, C)`` plus the common second-layer weight ``v`` when the
    second layer is trained.  Construction and every evaluation cost the same
    for any K; nothing of size K^2 is ever formed.

    Accepted by :func:`~phasekit.committee.dynamics.integrate`,
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
        ``"site_symmetric"``.
    Td, To : float
        Diagonal and off-diagonal teacher overlaps.
    labels : list of str
        ``["R", "S", "Q", "C"]`` (``+ ["v"]``).
    """

    subspace = "site_symmetric"

    def __init__(self, parent: Committee) -> None:
        if not isinstance(parent, Committee):
            raise ValueError(f"model: expected a phasekit.Committee, got {type(parent).__name__}")
        K, M = parent.K, parent.M
        if K != M:
            raise ValueError(f"model: the site-symmetric subspace needs K == M, got K={K}, M={M}")
        T = parent._T
        if T is None:
            Td, To = 1.0, 0.0
        else:
            off = T[~np.eye(M, dtype=bool)]
            Td, To = float(T[0, 0]), float(off[0]) if M > 1 else 0.0
            if not (np.allclose(np.diag(T), Td, rtol=0, atol=1e-12) and np.allclose(off, To, rtol=0, atol=1e-12)):
                raise ValueError("model: the site-symmetric subspace needs T = Td I + To (11^T - I), e.g. the identity")
        w = parent.teacher_weights
        if np.any(w != w[0]):
            raise ValueError(f"model: the site-symmetric subspace needs equal teacher weights, got {w.tolist()}")
        sw = parent.student_weights
        if np.any(sw != sw[0]):
            raise ValueError("model: the site-symmetric subspace needs equal student weights "
                             f"(fixed, or the initial trained ones), got {sw.tolist()}")
        self.parent = parent
        self.K = self.M = K
        self.Td, self.To = Td, To
        self.w = float(w[0])
        self.v_fixed = float(sw[0])
        for name in ("eta", "second_order", "noise", "activation", "teacher_activation", "train_second_layer",
                     "eta_second_layer", "weight_decay", "drift", "eta_schedule", "normalisation", "mixed",
                     "autonomous", "eta_v"):
            setattr(self, name, getattr(parent, name))
        x = [("x", 0)]
        mixed = self.mixed
        # first order: h_i and the tables A_{i, target} for targets y_i, y_n, x_i, x_k (i != k, n)
        self._h = _PatternSum(K, [(x, 1, (0, 1), 2, None)], mixed)
        self._first = _PatternSum(K, [(x + [tgt], 1, (0, 2), 2, (2, 1))
                                      for tgt in (("y", 0), ("y", 1), ("x", 0), ("x", 1))], mixed)
        if self.second_order:
            self._second = _PatternSum(K, [(x + [("x", 0)], 2, (0, 1, 2, 3), 2, None),
                                           (x + [("x", 1)], 2, (0, 1, 2, 3), 2, None)], mixed)
        self._eg = _PatternSum(K, [([], 2, (0, 1), 0, None)], mixed)
        self._i2_student = _PatternSum(K, [(x, 1, (0, 1), 0, None)], mixed)
        self._acts = {"x": self.activation, "y": self.teacher_activation}

    # --- description -------------------------------------------------------

    @property
    def n_state(self) -> int:
        """Length of the reduced state vector: 4, or 5 with a trained second layer."""
        return 5 if self.train_second_layer else 4

    @property
    def labels(self) -> list[str]:
        return ["R", "S", "Q", "C"] + (["v"] if self.train_second_layer else [])

    def eta_at(self, alpha: Any) -> Any:
        return self.parent.eta_at(alpha)

    def scaled_time(self, alpha: Any) -> Any:
        return self.parent.scaled_time(alpha)

    def require_autonomous(self, what: str) -> None:
        self.parent.require_autonomous(what)

    def replace(self, **changes: Any) -> "SiteSymmetricCommittee":
        """A copy with some parameters of the full model changed (``M`` follows ``K``)."""
        if "K" in changes and "M" not in changes:
            changes["M"] = changes["K"]
        return SiteSymmetricCommittee(self.parent.replace(**changes))

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
        return np.concatenate([z[..., :4], np.broadcast_to([self.Td, self.To, 1.0], batch + (3,))], axis=-1)

    def state_vector(self, state: Any, name: str = "state") -> np.ndarray:
        """Reduced coordinates of ``state``: a sequence ``(R, S, Q, C[, v])``, a mapping, or a full :class:`State`.

        A full state must lie in the subspace (to ``1e-12`` relative).
        """
        if isinstance(state, FixedPoint):
            state = state.vector
        if isinstance(state, State):
            P = site_symmetric_basis(self.K, self.train_second_layer)
            v = self.parent.state_vector(state, name)
            z = np.linalg.lstsq(P, v, rcond=None)[0]
            if np.abs(P @ z - v).max() > 1e-12 * max(1.0, float(np.abs(v).max())):
                raise ValueError(f"{name}: not in the site-symmetric subspace (R_ii, R_in, Q_ii, Q_ik not all equal "
                                 "within their class)")
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
        R = z[1] + (z[0] - z[1]) * np.eye(K)
        Q = z[3] + (z[2] - z[3]) * np.eye(K)
        return State(R, Q, np.full(K, z[4]) if self.train_second_layer else None)

    def sector_eigenvalues(self, z: np.ndarray) -> np.ndarray:
        """Smallest eigenvalue of the field covariance in the trivial and the standard sector, shape ``(..., 2)``.

        The covariance ``[[Q, R], [R^T, T]]`` of a site-symmetric state is a
        2 x 2 block matrix of ``a I + b (11^T - I)`` blocks: on the all-ones
        direction ``[[Q + (K-1) C, R + (K-1) S], [., Td + (K-1) To]]``, on its
        complement (K - 1 times) ``[[Q - C, R - S], [., Td - To]]``.
        """
        z = np.asarray(z, dtype=float)
        R, S, Q, C = (z[..., j] for j in range(4))
        k1 = self.K - 1
        triv = _eig2_min(Q + k1 * C, R + k1 * S, self.Td + k1 * self.To + 0 * R)
        if self.K == 1:
            return np.stack([triv, triv], axis=-1)
        std = _eig2_min(Q - C, R - S, self.Td - self.To + 0 * R)
        return np.stack([triv, std], axis=-1)

    def min_eigenvalue(self, z: np.ndarray) -> float:
        """Smallest eigenvalue of the full field covariance divided by its largest absolute entry (as ``Committee``)."""
        z = np.asarray(z, dtype=float)
        scale = max(1.0, float(np.abs(z[..., :4]).max()), abs(self.Td), abs(self.To))
        return float(self.sector_eigenvalues(z).min()) / scale

    def validate_state(self, state: Any, name: str = "state") -> np.ndarray:
        """Reduced coordinates of ``state``, checked: ``Q > 0`` and the covariance positive semidefinite."""
        z = self.state_vector(state, name)
        if not np.all(np.isfinite(z)):
            raise ValueError(f"{name}: entries must be finite")
        if z[2] <= 0:
            raise ValueError(f"{name}: the student norm Q must be > 0, got {z[2]!r}")
        lam = self.min_eigenvalue(z)
        if lam < -PSD_TOL:
            raise ValueError(f"{name}: the covariance [[Q, R], [R^T, T]] must be positive semidefinite "
                             f"(smallest eigenvalue / scale = {lam:.3g} < 0)")
        return z

    # --- the flow --------------------------------------------------------------

    def _kernel(self, name: str) -> Any:
        acts = self._acts
        sa = self.activation

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
        v = z[..., 4] if self.train_second_layer else self.v_fixed
        return v, -np.asarray(v, dtype=float)

    def _parts(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """The flow's parts per unit coefficient, each of shape ``(..., n_state)``."""
        z = np.asarray(z, dtype=float)
        ext = self._ext(z)
        v, cx = self._coefficients(z)
        cy = self.w
        zero = np.zeros(z.shape[:-1] + (self.n_state,))
        H2, J2 = self._kernel("H2"), self._kernel("J2")
        h = self._h(H2, ext, cx, cy)[..., 0]
        A = (ext[..., :4] * h[..., None] + self._first(J2, ext, cx, cy)) * np.asarray(v, dtype=float)[..., None]
        first = np.concatenate([A[..., :2], 2.0 * A[..., 2:4], zero[..., 4:]], axis=-1)
        parts = {"first": first}
        if self.second_order:
            vv = (np.asarray(v, dtype=float) ** 2)[..., None]
            i4, j2 = zero.copy(), zero.copy()
            i4[..., 2:4] = self._second(self._kernel("I4"), ext, cx, cy) * vv
            C2 = ext[..., np.array([[[2, 2], [2, 2]], [[2, 3], [3, 2]]])]
            j2[..., 2:4] = expect_J2(C2, self.activation, self.activation) * vv
            parts["i4"], parts["j2"] = i4, j2
        decay = zero.copy()
        decay[..., :2] = -z[..., :2]
        decay[..., 2:4] = -2.0 * z[..., 2:4]
        drift = zero.copy()
        drift[..., :2] = -z[..., :2]
        parts["decay"], parts["drift"] = decay, drift
        second = zero.copy()
        if self.train_second_layer:
            second[..., 4] = self._i2_student(self._kernel("I2"), ext, cx, cy)[..., 0]
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
        z = np.asarray(z, dtype=float)
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
        """``R = Q = Td``, ``S = C = To`` (``v = w``): the perfect solution in reduced coordinates."""
        z = [self.Td, self.To, self.Td, self.To] + ([self.w] if self.train_second_layer else [])
        return np.array(z, dtype=float)

    def jacobian(self, z: Any, fun: Any = None, entry_errors: bool = False) -> tuple[np.ndarray, Any, str]:
        """Jacobian of the reduced flow (or of ``fun``) at ``z``: ``(J, error, scheme)``.

        Central differences inside the cone; on its boundary (e.g. the
        perfect solution, where ReLU's flow has square-root terms) the
        one-sided limit from inside along directions into the cone, each
        coordinate's step scaled by how strongly it moves the covariance's
        eigenvalues (``K - 1`` for S and C).
        """
        fun = self.rhs_vector if fun is None else fun
        z = self.state_vector(z, "state")
        n = z.size
        margin = self.min_eigenvalue(z)
        scale = max(1.0, float(np.abs(z).max()))
        if margin > _BOUNDARY_MARGIN:
            h = _CENTRAL_STEP * scale
            if margin * scale < 4 * h * max(1, self.K - 1):
                h = max(margin * scale / (4 * max(1, self.K - 1)), 1e-12 * scale)
            E = h * np.eye(n)
            F = fun(np.concatenate([z + E, z - E]))
            return (F[:n] - F[n:]).T / (2.0 * h), None if entry_errors else math.nan, "central"
        zc = z.copy()
        zc[0] = zc[1] = 0.0
        mu = 0.5 * max(z[2], 1e-3)
        zc[2] += mu
        lam_c = min(float(self.sector_eigenvalues(zc).min()), self.Td - self.To, self.Td + (self.K - 1) * self.To)
        weight = np.ones(n)
        weight[[1, 3]] = max(1, self.K - 1)
        gam = 0.5 * lam_c / weight
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
        err = float(np.nanmax(np.r_[E[:n] * scale, E[n:] * scale])) if E is not None else math.nan
        return EtaStructure(A=A, B=B, error=err, state=z, scheme=scheme, residual=float(np.abs(f).max()))

    def _balance(self) -> np.ndarray:
        d = np.ones(self.n_state)
        d[[1, 3]] = max(1, self.K - 1)
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
        """The symmetric plateau (``R = S``) and its escape mode (which separates R from S, inside the subspace).

        ``guess``: ``(R, Q, C[, v])``; default the end of the flow on ``R = S``
        from ``R = S = 0.01 min(1, 10 / K)``, ``Q = 0.5``, ``C = 0`` integrated to
        ``eta alpha = alpha_flow``.
        """
        self.require_autonomous("the symmetric plateau's fixed-point analysis")
        if self.K < 2:
            raise ValueError("model: the symmetric plateau needs K >= 2 student units")
        tv = [self.v_fixed] if self.train_second_layer else []
        if guess is None:
            r0 = 0.01 * min(1.0, 10.0 / self.K)  # inside the cone: (K r0)^2 < Q Td
            g = np.array([r0, r0, 0.5, 0.0] + tv)

            def flow(_a: float, y: np.ndarray) -> np.ndarray:
                # R = S is invariant, but unstable across (the escape): hold it exactly, or
                # rounding grows into specialisation
                y = y.copy()
                y[1] = y[0]
                try:
                    f = self.rhs_vector(y)
                except ValueError:  # a trial stage outside the cone (a kernel refuses it)
                    return np.zeros_like(y)
                f[1] = f[0]
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
            z0[1] = z0[0]
        else:
            gg = np.asarray(guess, dtype=float)
            if gg.shape != (self.n_state - 1,):
                raise ValueError(f"guess: expected {self.n_state - 1} numbers (R, Q, C{', v' if tv else ''})")
            z0 = np.r_[gg[0], gg]
        return self.find_fixed_point(z0, tol=tol, label="symmetric_plateau", tie=[(0, 1)])


SUBSPACE_MODELS["site_symmetric"] = SiteSymmetricCommittee


def reduced_from_parameters(params: Mapping[str, Any] | str) -> SiteSymmetricCommittee:
    """Rebuild a reduced model from :meth:`SiteSymmetricCommittee.parameters` (dict or JSON string)."""
    p = dict(json.loads(params) if isinstance(params, str) else params)
    if p.get("subspace") not in SUBSPACES:
        raise ValueError(f"params: subspace must be one of {SUBSPACES}, got {p.get('subspace')!r}")
    K = int(p["K"])
    Td, To = float(p.get("T_diagonal", 1.0)), float(p.get("T_offdiagonal", 0.0))
    T = None if (Td, To) == (1.0, 0.0) else To * np.ones((K, K)) + (Td - To) * np.eye(K)
    ta = p.get("teacher_activation")
    model = Committee(K, K, p["activation"], eta=p["eta"], second_order=bool(p["second_order"]),
                      noise=p["noise"], T=T, teacher_activation=None if ta == p["activation"] else ta,
                      teacher_weights=np.full(K, float(p["teacher_weight"])),
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
