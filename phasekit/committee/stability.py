"""Learning-rate structure of a fixed point: critical and optimal learning rates.

The flow is ``eta a(x) + eta^2 b(x)``.  At a fixed point that does not move
with eta (the perfect solution without noise) the Jacobian is
``eta A + eta^2 B`` with A, B independent of eta, so the critical learning
rate is the zero of ``max Re spec(A + eta B)`` and the optimal learning rate
maximises the slowest decay rate ``-eta max Re spec(A + eta B)``.  The pencil
is split first: common null vectors of A and B are modes marginal at every
eta (continua of fixed points), common eigenvectors give branches linear in
eta, and only the rest needs eigenvalues at each eta.  Tolerances follow the
error estimate of the Jacobian.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np
from scipy import linalg, optimize

from ..core.spectrum import (
    PencilSplit,
    eigenvalues_only,
    leading_pair_discriminant,
    split_pencil,
)
from .jacobians import _as_vector, _jacobian_of
from .linearisation import FixedPoint
from .model import Committee, State, vector_labels

__all__ = ['EtaStructure', 'critical_eta', 'eta_structure', 'optimal_eta']


# Entrywise error assumed for Jacobians without an estimate of their own (central
# differences), relative to the largest entry.
_NOMINAL_REL_ERROR = 1e-9


# A state counts as a fixed point for every eta when both parts a(x), b(x) of the flow
# eta a(x) + eta^2 b(x) vanish to this (units 1/alpha per unit eta and eta^2).
_FIXED_FOR_EVERY_ETA = 1e-10


@dataclass(frozen=True)
class EtaStructure:
    """Jacobian split ``J(eta) = eta A + eta^2 B`` at a fixed point that does not move with eta.

    Attributes
    ----------
    A, B : ndarray, shape (n_state, n_state)
        First-order part (per unit eta) and second-order part (per unit eta^2).
    error : float
        Estimated max entrywise error of A and B (``nan`` if not estimated).
    state : State
    method : str
    residual : float
        ``max(|a(x)|, |b(x)|)`` of the two parts of the flow ``eta a + eta^2 b`` at
        ``state``: zero (to rounding) where the state is fixed for every eta.
    """

    A: np.ndarray
    B: np.ndarray
    error: float
    state: State
    method: str
    residual: float = float("nan")

    def jacobian(self, eta: float) -> np.ndarray:
        """``eta A + eta^2 B``."""
        return eta * self.A + eta * eta * self.B

    def max_real(self, eta: float) -> float:
        """Largest real part of the spectrum of ``A + eta B`` (same sign as that of J(eta))."""
        w = eigenvalues_only(self.A + eta * self.B)
        return float(np.max(w.real)) if len(w) else float("nan")

    def decay_rate(self, eta: float) -> float:
        """Slowest asymptotic decay rate ``-max Re spec J(eta)`` (units 1/alpha)."""
        return -eta * self.max_real(eta)

    @property
    def entry_error(self) -> float:
        """Entrywise error of A and B behind every tolerance: ``error``, or a nominal one if not estimated."""
        if np.isfinite(self.error):
            return float(self.error)
        scale = max(1.0, float(np.abs(self.A).max(initial=0.0)), float(np.abs(self.B).max(initial=0.0)))
        return _NOMINAL_REL_ERROR * scale

    def eigenvalue_error(self, eta: float) -> float:
        """Error of a well-conditioned eigenvalue of ``A + eta B``: ``||dA + eta dB|| <= n err (1 + eta)``."""
        return len(self.A) * self.entry_error * (1.0 + abs(eta))

    @cached_property
    def split(self) -> PencilSplit:
        """The eta-independent parts of the spectrum (:func:`phasekit.core.spectrum.split_pencil`).

        Singular values below ``20 n`` times :attr:`entry_error` count as zero.
        """
        return split_pencil(self.A, self.B, 20.0 * len(self.A) * self.entry_error)


def eta_structure(model: Committee, state: State | np.ndarray | None = None, *, method: str = "auto") -> EtaStructure:
    """The matrices A and B of ``J(eta) = eta A + eta^2 B`` at ``state`` (default: the perfect solution).

    Valid as the Jacobian at every eta only where the state is a fixed point
    for every eta (the perfect solution without output noise, or any
    zero-error state); ``residual`` of the result says whether it is.  B is
    zero for a first-order model.

    Parameters
    ----------
    model : Committee
        Its eta is irrelevant.
    state : State, FixedPoint or ndarray, optional
        Default: the perfect solution ``R = Q = T`` (K = M).
    method : str
        Jacobian method, see :func:`jacobian`.
    """
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    if state is None:
        if model.K != model.M:
            raise ValueError(f"model: the perfect solution needs K == M, got K={model.K}, M={model.M}; "
                             "pass the fixed point of interest as state")
        state = State(model.T, model.T)
    v = _as_vector(model, state, "state")
    first = model.replace(eta=1.0, second_order=False)
    if model.second_order:
        full = model.replace(eta=1.0, second_order=True)

        def fun(V: np.ndarray) -> np.ndarray:
            a = first.rhs_vector(V)
            return np.concatenate([a, full.rhs_vector(V) - a], axis=-1)
    else:
        fun = first.rhs_vector
    J, info = _jacobian_of(model, fun, v, method=method, full_output=True)
    n = v.size
    A = J[:n]
    B = J[n:] if model.second_order else np.zeros_like(A)
    err = info["error"]
    f0 = np.asarray(info["rhs"])
    residual = float(np.abs(f0).max()) if np.all(np.isfinite(f0)) else float("inf")
    return EtaStructure(A, B, err, State.from_vector(v, model.K, model.M), info["method"], residual)


def _structure_for(model: Committee, state: Any, structure: EtaStructure | None) -> EtaStructure:
    """The eta structure at ``state`` (default: perfect solution), checked to be fixed for every eta."""
    if structure is not None:
        if not isinstance(structure, EtaStructure):
            raise ValueError(f"structure: expected an EtaStructure, got {type(structure).__name__}")
        if state is not None:
            v = _as_vector(model, state, "state")
            if np.abs(v - structure.state.to_vector()).max() > 1e-12 * max(1.0, float(np.abs(v).max())):
                raise ValueError("structure: was computed at a different state than the one passed as state")
        st = structure
    else:
        st = eta_structure(model, state)
    if np.isfinite(st.residual) and st.residual > _FIXED_FOR_EVERY_ETA or st.residual == np.inf:
        raise ValueError(
            f"state: not a fixed point for every eta (max |a|, |b| = {st.residual:.3g} for the flow "
            f"eta a + eta^2 b), so the Jacobian is not eta A + eta^2 B; follow the branch with continuation()")
    return st


def _null_modes(basis: np.ndarray, labels: Sequence[str], side: str) -> list[dict[str, Any]]:
    """Describe a null space: one vector per pivot component (reduced echelon form), unit, largest entry > 0."""
    d = basis.shape[1]
    if d == 0:
        return []
    _, _, piv = linalg.qr(basis.T, pivoting=True)
    E = basis @ np.linalg.inv(basis[piv[:d], :])
    out = []
    for k in range(d):
        e = E[:, k] / np.linalg.norm(E[:, k])
        big = int(np.argmax(np.abs(e)))
        e = e * np.sign(e[big])
        comps = [labels[i] for i in np.nonzero(np.abs(e) > 1e-6 * np.abs(e[big]))[0]]
        what = "moves" if side == "right" else "the flow leaves unchanged the combination of"
        out.append({"side": side, "vector": e, "components": comps,
                    "description": f"{'direction' if side == 'right' else 'left null vector'}: {what} "
                                   + ", ".join(comps)})
    return out


def _marginal_summary(split: PencilSplit, modes: list[dict[str, Any]]) -> str:
    if split.n_null == 0:
        return ""
    right = [m for m in modes if m["side"] == "right"]
    left = [m for m in modes if m["side"] == "left"]
    parts = []
    if right:
        parts.append("directions with A v = B v = 0 moving " + "; ".join(", ".join(m["components"]) for m in right))
    if left:
        parts.append("combinations with u^T A = u^T B = 0 of " + "; ".join(", ".join(m["components"]) for m in left))
    return (f"{split.n_null} eigenvalue(s) vanish for every eta and are excluded ("
            + "; ".join(parts) + ")")


def _lead_piece(st: EtaStructure, eta: float) -> dict[str, Any]:
    """Leading eigenvalue of the non-marginal spectrum at eta, its d/d eta and condition number."""
    split = st.split
    vals = [br.value(eta) for br in split.branches]
    best: dict[str, Any] = {"value": -np.inf, "slope": np.nan, "cond": 1.0, "piece": None, "imag": 0.0}
    for k, (br, val) in enumerate(zip(split.branches, vals)):
        if val > best["value"]:
            best = {"value": float(val), "slope": float(br.b), "cond": 1.0, "piece": k, "imag": 0.0}
    if len(split.A):
        try:
            w, vl, vr = linalg.eig(split.A + eta * split.B, left=True, right=True)
        except (np.linalg.LinAlgError, ValueError):
            return best
        k = int(np.argmax(w.real))
        if w[k].real >= best["value"]:
            overlap = vl[:, k].conj() @ vr[:, k]
            slope = (vl[:, k].conj() @ split.B @ vr[:, k]) / overlap
            cond = float(np.linalg.norm(vl[:, k]) * np.linalg.norm(vr[:, k]) / abs(overlap))
            best = {"value": float(w[k].real), "slope": float(slope.real), "cond": cond, "piece": -1,
                    "imag": float(w[k].imag)}
    return best


def critical_eta(model: Committee, *, state: State | FixedPoint | np.ndarray | None = None, eta_max: float = 1e3,
                 rtol: float = 1e-10, full_output: bool = False,
                 structure: EtaStructure | None = None) -> float | tuple[float, dict[str, Any]]:
    """Learning rate at which a fixed point (default: the perfect solution) loses linear stability.

    At a state that is a fixed point for every eta the Jacobian is
    ``eta A + eta^2 B`` (A, B from :func:`eta_structure`, the one-sided limit
    inside the cone on its boundary), so eta_c is the first zero of
    ``max Re spec(A + eta B)``.  First the parts of the spectrum that are
    exact for every eta are split off (:func:`phasekit.core.spectrum.split_pencil`):
    eigenvalues that vanish identically (a continuum of fixed points, e.g.
    ReLU students that share a teacher's norm, or an antiparallel pair of
    erf students) are *marginal modes*, excluded from the search and named in
    the result; common eigenvectors of A and B give linear branches
    ``a + eta b`` whose zeros are closed forms.  On the rest, the zero is
    bracketed on a geometric grid from ``1e-3`` to ``eta_max`` (signs decided
    only outside the eigenvalue error band ``3 n err (1 + eta)``, err the
    entrywise Jacobian error) and refined by Brent's method to ``rtol``
    relative; a real crossing is polished with the generalised eigenvalue
    problem ``A v = -eta B v``.

    Parameters
    ----------
    model : Committee
        No output noise (otherwise use :func:`continuation`).  The model's
        eta is irrelevant; ``second_order`` must be True for a finite answer
        (without the eta^2 term the fixed point is stable at every eta or at none).
    state : State, FixedPoint or ndarray, optional
        The fixed point of interest; it must be fixed for every eta (e.g. any
        zero-error state).  Default: the perfect solution (K = M).
    eta_max : float
        Upper end of the search; ``inf`` is returned when stable up to there.
    rtol : float
        Relative tolerance of the root.
    full_output : bool
        Also return a dict: ``status`` (``"converged"``, ``"stable"``,
        ``"unstable_at_small_eta"``, ``"uncertain"`` (the sign of the leading
        eigenvalue is within its error band over several grid cells before
        the crossing), ``"indeterminate"`` or ``"all_marginal"``),
        ``message``, ``marginal_modes`` (list of dicts: ``side`` ``"right"``
        (a direction in state space, ``A v = B v = 0``) or ``"left"`` (a
        combination of components the linearised flow does not change),
        ``vector`` (unit, state order), ``components`` (the labels it
        involves, e.g. ``"R22"``), ``description``), ``n_marginal`` (how many
        eigenvalues vanish identically), ``bracket`` (lo, hi), ``precision``
        (half the final bracket), ``jacobian_error`` and ``eta_error``
        (first-order propagation of the Jacobian error into eta_c),
        ``crossing`` (``"real"``, ``"complex"`` or ``"none"``),
        ``linear_branches`` (the (a, b, multiplicity) of the split-off
        branches), ``structure`` (the :class:`EtaStructure`).

    Returns
    -------
    float
        ``eta_c`` (``0.0`` if unstable already for small eta, ``inf`` if none
        below ``eta_max``, ``nan`` if undetermined: see ``status``).

    Raises
    ------
    ValueError
        For bad parameters, output noise, or a state that is not fixed for every eta.
    """
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    if model.noise > 0 and model.second_order:
        raise ValueError("model: with output noise the perfect solution moves with eta; use continuation()")
    if not (eta_max > 1e-3):
        raise ValueError(f"eta_max: must be > 1e-3, got {eta_max!r}")
    if not (0 < rtol < 1):
        raise ValueError(f"rtol: must be in (0, 1), got {rtol!r}")
    st = _structure_for(model, state, structure)
    split = st.split
    n = len(st.A)
    err = st.entry_error
    modes = (_null_modes(split.null_right, vector_labels(model.K, model.M), "right")
             + _null_modes(split.null_left, vector_labels(model.K, model.M), "left"))
    note = _marginal_summary(split, modes)
    info: dict[str, Any] = {
        "structure": st, "jacobian_error": st.error, "marginal_modes": modes, "n_marginal": int(split.n_null),
        "linear_branches": [(br.a, br.b, br.multiplicity) for br in split.branches], "crossing": "none",
        "bracket": (float("nan"), float("nan")), "precision": float("nan"), "eta_error": float("nan"),
        "iterations": 0,
    }

    def done(value: float, status: str, message: str) -> float | tuple[float, dict[str, Any]]:
        info.update(status=status, message="; ".join(x for x in (message, note) if x))
        return (value, info) if full_output else value

    if split.n_null == n:
        return done(float("nan"), "all_marginal", "every eigenvalue vanishes for every eta: no crossing to find")
    g = split.max_real
    grid = np.geomspace(1e-3, eta_max, 400)
    vals = np.array([g(e) for e in grid])
    if not np.all(np.isfinite(vals)):
        return done(float("nan"), "indeterminate", "the spectrum could not be computed on the search grid")
    band = 3.0 * np.array([st.eigenvalue_error(e) for e in grid])
    sign = np.where(vals > band, 1, np.where(vals < -band, -1, 0))
    if sign[0] == 1:
        info.update(bracket=(0.0, float(grid[0])), precision=float(grid[0]))
        return done(0.0, "unstable_at_small_eta", "unstable already at small eta")
    pos = np.nonzero(sign == 1)[0]
    if len(pos) == 0:
        info.update(bracket=(float(eta_max), float("inf")), precision=float("inf"))
        return done(float("inf"), "stable", f"stable up to eta_max = {eta_max:g}")
    p = int(pos[0])
    neg = np.nonzero(sign[:p] == -1)[0]
    if len(neg) == 0:
        info.update(bracket=(0.0, float(grid[p])), precision=float(grid[p]))
        return done(float("nan"), "indeterminate",
                    f"the leading eigenvalue is within its error band of zero for eta up to {grid[p]:.6g}")
    q = int(neg[-1])
    lo, hi = float(grid[q]), float(grid[p])
    status = "converged"
    message = "converged"
    if p - q > 2:
        status = "uncertain"
        message = (f"the leading eigenvalue is within its error band of zero for eta in "
                   f"[{grid[q + 1]:.6g}, {grid[p - 1]:.6g}]; the root there is not resolved")
    root, r = optimize.brentq(g, lo, hi, xtol=1e-300, rtol=max(rtol * 1e-2, 1e-15), full_output=True)
    eta_c = float(root)
    lead = _lead_piece(st, eta_c)
    scale = max(1.0, abs(lead["value"]))
    crossing = "real" if abs(lead["imag"]) <= 1e-8 * scale else "complex"
    if crossing == "real":
        # exact zeros: linear branches a + eta b, and det(A + eta B) = 0 on the rest of the pencil
        cand = [-br.a / br.b for br in split.branches if br.b != 0]
        if len(split.A):
            try:
                ge = linalg.eigvals(split.A, -split.B)
                ge = ge[np.isfinite(ge) & (np.abs(ge.imag) <= 1e-8 * np.abs(ge))].real
                cand += list(ge)
            except (np.linalg.LinAlgError, ValueError):
                pass
        cand = np.array([c for c in cand if c > 0])
        if len(cand):
            best = float(cand[np.argmin(np.abs(cand - eta_c))])
            if abs(best - eta_c) <= 1e-6 * eta_c:
                eta_c = best
                lead = _lead_piece(st, eta_c)
    # a tight bracket around the final value for the report (widened until it brackets)
    step = max(rtol * eta_c, 1e-15 * eta_c)
    for _ in range(10):
        a, b = eta_c - step, eta_c + step
        if g(a) <= 0 <= g(b):
            lo, hi = a, b
            break
        step *= 10
    # first-order propagation of the Jacobian error: d lambda / d eta and the condition number
    err_lambda = lead["cond"] * err * (1 + eta_c) * np.sqrt(n)
    slope = lead["slope"]
    eta_err = float(err_lambda / abs(slope)) if np.isfinite(slope) and slope != 0 else float("inf")
    info.update(bracket=(float(lo), float(hi)), precision=float(0.5 * (hi - lo)), eta_error=eta_err,
                crossing=crossing, iterations=int(r.iterations))
    return done(eta_c, status, message)


def optimal_eta(model: Committee, *, state: State | FixedPoint | np.ndarray | None = None, rtol: float = 1e-10,
                full_output: bool = False,
                structure: EtaStructure | None = None) -> float | tuple[float, dict[str, Any]]:
    """Learning rate that maximises the slowest asymptotic decay rate at a fixed point (default: perfect solution).

    Maximises ``r(eta) = -eta max Re spec(A + eta B)`` over ``(0, eta_c)``
    with the marginal modes excluded (see :func:`critical_eta`).  The
    maximum is often a kink where the lead changes hands: where two branches
    cross (often at a defective Jacobian: for erf K = M the branch of a common
    eigenvector of A and B meets another one in a Jordan block, where
    eigenvalues are only accurate to ``sqrt(eps)``; after splitting off the
    common eigenvector the crossing is a simple zero of a difference of two
    well-conditioned eigenvalues) or where two real eigenvalues coalesce into
    a complex pair (a simple zero of the discriminant of their 2 x 2 Schur
    block, :func:`phasekit.core.spectrum.leading_pair_discriminant`).  Candidates:
    Brent's bounded maximiser in the best cell of a 401-point scan, the
    crossings and coalescences in that cell, and the smooth maxima of each
    branch; among those within the rate's error band of the best
    (``eta n err (1 + eta)`` times the eigenvalue condition number) the kinks win.

    Parameters
    ----------
    model : Committee
        As for :func:`critical_eta`.
    state : State, FixedPoint or ndarray, optional
        The fixed point (fixed for every eta); default: the perfect solution.
    rtol : float
        Relative tolerance of Brent's maximiser (the kinks are solved to rounding).
    full_output : bool
        Also return a dict with ``rate`` (the decay rate at eta_opt, units
        1/alpha), ``rate_error``, ``eta_error`` (propagated Jacobian error),
        ``eta_c``, ``kink`` (bool), ``kink_type`` (``"crossing"``,
        ``"coalescence"`` or ``None``), ``candidates`` (list of (eta, rate,
        type)), ``status``, ``message``, ``marginal_modes``, ``structure``
        and ``eta_c_info``.

    Returns
    -------
    float
        ``eta_opt``.

    Raises
    ------
    ValueError
        If there is no finite positive critical learning rate (the optimum is then undefined).
    """
    if not (0 < rtol < 1):
        raise ValueError(f"rtol: must be in (0, 1), got {rtol!r}")
    st = _structure_for(model, state, structure)
    eta_c, cinfo = critical_eta(model, full_output=True, structure=st)
    if not np.isfinite(eta_c) or eta_c <= 0:
        raise ValueError(f"model: no finite critical learning rate (eta_c = {eta_c}, {cinfo['message']}); "
                         "the optimum is undefined")
    split = st.split
    n = len(st.A)
    err = st.entry_error
    branches = split.branches
    has_rest = len(split.A) > 0

    def rest_eig(e: float) -> np.ndarray:
        return split.rest_eigenvalues(e)

    def value(piece: int, e: float) -> float:
        """Branch ``piece`` (index) or, for -1, the leading real part of the remaining pencil."""
        if piece >= 0:
            return float(branches[piece].value(e))
        w = rest_eig(e)
        return float(w[0].real) if len(w) else -np.inf

    pieces = list(range(len(branches))) + ([-1] if has_rest else [])

    def rate(e: float) -> float:
        return -e * split.max_real(e)

    def dlam(e: float) -> float:
        return 3.0 * np.sqrt(n) * err * (1.0 + e)

    def leaders(e: float, slack: float) -> set[int]:
        vals = {p: value(p, e) for p in pieces}
        top = max(vals.values())
        return {p for p, v in vals.items() if v >= top - slack}

    grid = np.linspace(0.0, eta_c, 401)[1:-1]
    rates = np.array([rate(e) for e in grid])
    j = int(np.argmax(rates))
    cell = (float(grid[j - 1]) if j > 0 else 1e-9 * eta_c, float(grid[min(j + 1, len(grid) - 1)]))
    mid = float(grid[j])
    subs = [(cell[0], mid), (mid, cell[1])]
    cands: list[tuple[float, str, Any]] = []

    res = optimize.minimize_scalar(lambda e: -rate(e), bounds=cell, method="bounded",
                                   options={"xatol": max(rtol * 1e-2, 1e-13) * eta_c, "maxiter": 500})
    cands.append((float(res.x), "smooth", "brent"))

    near = set()
    for x in (cell[0], mid, cell[1]):
        near |= leaders(x, 10 * dlam(x))
    near = sorted(near)

    # crossings of two pieces (the only kinks between pieces)
    for p, q in itertools.combinations(near, 2):
        def diff(e: float, p: int = p, q: int = q) -> float:
            return value(p, e) - value(q, e)

        for x0, x1 in subs:
            f0, f1 = diff(x0), diff(x1)
            if not (np.isfinite(f0) and np.isfinite(f1)) or f0 * f1 > 0:
                continue
            if p >= 0 and q >= 0:
                bp, bq = branches[p], branches[q]
                if bp.b == bq.b:
                    continue
                root = (bq.a - bp.a) / (bp.b - bq.b)
                if not (x0 <= root <= x1):
                    continue
            elif f0 == 0 or f1 == 0:
                root = x0 if f0 == 0 else x1
            else:
                try:
                    root = optimize.brentq(diff, x0, x1, xtol=1e-15 * x1, rtol=4 * np.finfo(float).eps)
                except (ValueError, RuntimeError):
                    continue
            if value(p, root) >= split.max_real(root) - dlam(root):
                cands.append((float(root), "crossing", (p, q)))

    # smooth maxima of single pieces
    for p in near:
        if p >= 0:
            br = branches[p]
            if br.b > 0 and cell[0] <= -br.a / (2 * br.b) <= cell[1]:
                cands.append((float(-br.a / (2 * br.b)), "smooth", p))
            continue

        def rest_slope(e: float) -> float:
            """d/d eta of eta * (leading real part of the remaining pencil), by perturbation theory."""
            w, vl, vr = linalg.eig(split.A + e * split.B, left=True, right=True)
            k = int(np.argmax(w.real))
            dl = (vl[:, k].conj() @ split.B @ vr[:, k]) / (vl[:, k].conj() @ vr[:, k])
            return float((w[k] + e * dl).real)

        for x0, x1 in subs:
            try:
                if rest_slope(x0) * rest_slope(x1) < 0:
                    cands.append((float(optimize.brentq(rest_slope, x0, x1, xtol=1e-15 * x1, rtol=1e-15)),
                                  "smooth", -1))
            except (ValueError, RuntimeError, np.linalg.LinAlgError):
                pass

    # inside the remaining pencil: two real eigenvalues coalescing into a complex pair, or
    # two of its branches exchanging the lead
    def disc(e: float) -> float:
        out = leading_pair_discriminant(split.A + e * split.B) if has_rest else None
        return float("nan") if out is None else out[0]

    if has_rest and -1 in near:
        def rest_lead_vector(e: float) -> np.ndarray:
            w, vr = linalg.eig(split.A + e * split.B)
            k = int(np.argmax(w.real))
            return vr[:, k] / np.linalg.norm(vr[:, k])

        def tracked(e: float, ref: np.ndarray) -> complex:
            w, vr = linalg.eig(split.A + e * split.B)
            vr = vr / np.linalg.norm(vr, axis=0)
            return w[int(np.argmax(np.abs(ref.conj() @ vr)))]

        for x0, x1 in subs:
            try:
                d0, d1 = disc(x0), disc(x1)
                if np.isfinite(d0) and np.isfinite(d1) and d0 * d1 < 0:
                    root = optimize.brentq(disc, x0, x1, xtol=1e-15 * x1, rtol=4 * np.finfo(float).eps)
                    cands.append((float(root), "coalescence", -1))
                v0, v1 = rest_lead_vector(x0), rest_lead_vector(x1)
                if len(v0) > 1 and abs(v0.conj() @ v1) < 0.99:
                    def gap(e: float, v0: np.ndarray = v0, v1: np.ndarray = v1) -> float:
                        return float(tracked(e, v0).real - tracked(e, v1).real)

                    if gap(x0) * gap(x1) < 0:
                        root = optimize.brentq(gap, x0, x1, xtol=1e-15 * x1, rtol=4 * np.finfo(float).eps)
                        cands.append((float(root), "crossing", -1))
            except (ValueError, RuntimeError, np.linalg.LinAlgError):
                pass

    def rate_at(e: float, kind: str) -> float:
        if kind == "coalescence":
            # the mean of the coalescing pair is well conditioned where each eigenvalue is not
            out = leading_pair_discriminant(split.A + e * split.B)
            if out is not None:
                others = [br.value(e) for br in branches]
                return -e * max([out[1]] + others)
        return rate(e)

    scored = [(e, rate_at(e, kind), kind) for e, kind, _ in cands if cell[0] <= e <= cell[1]]
    best_rate = max(r_ for _, r_, _ in scored)
    e_best = max(scored, key=lambda t: t[1])[0]
    lead = _lead_piece(st, e_best)
    rate_err = e_best * min(max(lead["cond"], 1.0), 1e8) * dlam(e_best)
    # within the error band of the best rate the kinks (exact solutions) win over Brent's estimate
    tied = [t for t in scored if t[1] >= best_rate - rate_err]
    kinks = [t for t in tied if t[2] != "smooth"]
    eta_o, rate_o, kind = max(kinks or tied, key=lambda t: t[1])
    kink = kind != "smooth"

    # error of eta_opt propagated from the Jacobian error
    lead = _lead_piece(st, eta_o)
    dl = min(max(lead["cond"], 1.0), 1e8) * dlam(eta_o)
    h = 1e-6 * eta_o
    if kind == "crossing":
        left = _lead_piece(st, eta_o - 1e-3 * (cell[1] - cell[0]))
        right = _lead_piece(st, eta_o + 1e-3 * (cell[1] - cell[0]))
        ds = abs(left["slope"] - right["slope"])
        eta_err = float(2 * dl / ds) if ds > 0 else float("inf")
    elif kind == "coalescence":
        dd = (disc(eta_o + h) - disc(eta_o - h)) / (2 * h)
        T = np.abs(split.A + eta_o * split.B).max()
        eta_err = float(8 * T * dl / abs(dd)) if dd else float("inf")
    else:
        h2 = 1e-4 * eta_o
        curv = abs(rate(eta_o + h2) - 2 * rate_o + rate(eta_o - h2)) / h2 ** 2
        eta_err = float(np.sqrt(2 * rate_err / curv)) if curv > 0 else float("inf")
    message = "converged" if kink or len(tied) == 1 else "converged (smooth maximum)"
    if cinfo.get("n_marginal"):
        message += "; " + _marginal_summary(split, cinfo["marginal_modes"])
    info = {"rate": float(rate_o), "rate_error": float(rate_err), "eta_error": eta_err, "eta_c": eta_c,
            "kink": bool(kink), "kink_type": kind if kink else None,
            "candidates": [(float(e), float(r_), k) for e, r_, k in scored], "status": "converged",
            "message": message, "marginal_modes": cinfo["marginal_modes"], "structure": st, "eta_c_info": cinfo}
    return (eta_o, info) if full_output else eta_o
