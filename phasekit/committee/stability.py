"""Critical and optimal learning rates of a fixed point that does not move with eta.

At such a fixed point (the perfect solution without noise, any zero-error
state) the Jacobian is ``eta A + eta^2 B`` (:mod:`phasekit.committee.pencil`),
so the critical learning rate is the zero of ``max Re spec(A + eta B)`` and
the optimal learning rate maximises the slowest decay rate
``-eta max Re spec(A + eta B)``; both exclude the modes that are marginal at
every eta and name them.  The results are :class:`CriticalEta` and
:class:`OptimalEta` (``float(result)`` is the learning rate).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import linalg, optimize

from ..core.results import FixedPoint, ScalarResult
from ..core.spectrum import leading_pair_discriminant
from .model import Committee, State, full_model_only, vector_labels
from .pencil import (EtaStructure, MarginalMode, _lead_piece, _marginal_summary, _null_modes, _structure_for,
                     eta_structure)
from .subspaces import SUBSPACES, ReducedCommittee, _contents, sector_projectors

__all__ = ['CriticalEta', 'OptimalEta', 'SectorStability', 'critical_eta', 'optimal_eta', 'sector_stability']


_NAN_PAIR = (math.nan, math.nan)


@dataclass(frozen=True, kw_only=True, eq=False)
class CriticalEta(ScalarResult):
    """The learning rate at which a fixed point loses linear stability; ``float(result)`` is ``value``.

    Attributes
    ----------
    value : float
        eta_c: ``inf`` when stable up to ``eta_max`` (status ``"not_reached"``),
        ``0.0`` when unstable already at the start of the search ``eta_min``
        (``"not_reached"``, bracket ``(0, eta_min)``), ``nan`` when not
        determined (``"failed"``) or when every mode is marginal (``"marginal"``).
    bracket : (float, float)
        An interval that contains eta_c (the leading eigenvalue changes sign in it).
    precision : float
        Half the bracket's width.
    error : float
        First-order propagation of the Jacobian's error estimate into eta_c.
    crossing : str or None
        ``"real"`` (a real eigenvalue crosses zero), ``"complex"`` (a complex
        pair) or ``None`` (no crossing found).
    unresolved : (float, float) or None
        Where the sign of the leading eigenvalue is within its error band
        over several grid cells before the crossing (the root is not resolved
        there); ``None`` when it is resolved.
    marginal_modes : tuple of MarginalMode
        Modes marginal at every eta (excluded from the search), named.
    n_marginal : int
        Eigenvalues that vanish identically.
    linear_branches : tuple of (a, b, multiplicity)
        Eigenvalues ``a + eta b`` of ``A + eta B`` split off exactly.
    jacobian_error : float
        Entrywise error estimate of A and B.
    eta_max : float
        Upper end of the search.
    iterations : int
        Brent iterations.
    structure : EtaStructure
    status : str
        ``"ok"``, ``"marginal"`` (found, with marginal modes excluded),
        ``"not_reached"`` or ``"failed"``.
    message : str
    """

    value: float
    bracket: tuple[float, float] = _NAN_PAIR
    precision: float = math.nan
    error: float = math.nan
    crossing: str | None = None
    unresolved: tuple[float, float] | None = None
    marginal_modes: tuple[MarginalMode, ...] = ()
    n_marginal: int = 0
    linear_branches: tuple[tuple[float, float, int], ...] = ()
    jacobian_error: float = math.nan
    eta_max: float = math.nan
    iterations: int = 0
    structure: EtaStructure | None = None


@dataclass(frozen=True, kw_only=True, eq=False)
class OptimalEta(ScalarResult):
    """The learning rate of fastest asymptotic convergence; ``float(result)`` is ``value``.

    Attributes
    ----------
    value : float
        eta_opt (``nan`` unless the status is a success).
    rate : float
        Slowest decay rate ``-eta max Re spec(A + eta B)`` at eta_opt (units 1/alpha).
    rate_error : float
        Its error propagated from the Jacobian's error estimate.
    error : float
        Error of eta_opt propagated from the Jacobian's error estimate.
    kink : bool
        The maximum is a kink (the lead changes hands) rather than smooth.
    kink_type : str or None
        ``"crossing"`` (two eigenvalues exchange the lead), ``"coalescence"``
        (two real eigenvalues become a complex pair) or ``None``.
    bracket : (float, float)
        The scan cell around the maximum in which the candidates were sought.
    precision : float
        Tolerance to which the maximiser was located (a kink is solved to
        rounding, a smooth maximum to ``xtol`` relative).
    candidates : tuple of (eta, rate, type)
        Every candidate considered.
    critical : CriticalEta
        The critical learning rate bounding the search.
    marginal_modes : tuple of MarginalMode
    structure : EtaStructure
    status : str
        ``"ok"``, ``"marginal"`` (marginal modes excluded), ``"not_reached"``
        (no finite positive eta_c: the optimum is undefined) or ``"failed"``.
    message : str
    """

    value: float
    rate: float = math.nan
    rate_error: float = math.nan
    error: float = math.nan
    kink: bool = False
    kink_type: str | None = None
    bracket: tuple[float, float] = _NAN_PAIR
    precision: float = math.nan
    candidates: tuple[tuple[float, float, str], ...] = ()
    critical: CriticalEta | None = None
    marginal_modes: tuple[MarginalMode, ...] = ()
    structure: EtaStructure | None = None


def _check_xtol(xtol: float) -> float:
    if isinstance(xtol, bool) or not isinstance(xtol, (int, float, np.floating)) or not (0 < xtol < 1):
        raise ValueError(f"xtol: relative tolerance must be in (0, 1), got {xtol!r}")
    return float(xtol)


def _setup(model: Any, state: Any, structure: EtaStructure | None, subspace: str | None
           ) -> tuple[EtaStructure, list[str]]:
    """The eta structure (full, or restricted to ``subspace``) and the names of its coordinates."""
    reduced = isinstance(model, ReducedCommittee)
    if not isinstance(model, Committee) and not reduced:
        raise ValueError(f"model: expected a phasekit.Committee or a reduced model, got {type(model).__name__}")
    if subspace is not None and subspace not in SUBSPACES:
        raise ValueError(f"subspace: must be None (the full space) or one of {SUBSPACES}, got {subspace!r}")
    if reduced and subspace not in (None, model.subspace):
        raise ValueError(f"subspace: the model is already restricted to {model.subspace!r}, got {subspace!r}")
    if reduced or subspace is not None:
        red = model if reduced else model.restrict(subspace)
        st = structure if structure is not None else red.eta_structure(state)
        st = _structure_for(model, None, st)
        return st, red.labels
    st = _structure_for(model, state, structure)
    return st, vector_labels(model.K, model.M, model.train_second_layer)


def critical_eta(model: Committee, *, state: State | FixedPoint | np.ndarray | None = None, eta_max: float = 1e3,
                 xtol: float = 1e-10, structure: EtaStructure | None = None,
                 subspace: str | None = None) -> CriticalEta:
    """Learning rate at which a fixed point (default: the perfect solution) loses linear stability.

    At a state that is a fixed point for every eta the Jacobian is
    ``eta A + eta^2 B`` (A, B from :func:`phasekit.committee.pencil.eta_structure`,
    the one-sided limit inside the cone on its boundary), so eta_c is the
    first zero of ``max Re spec(A + eta B)``.  First the parts of the spectrum
    that are exact for every eta are split off
    (:func:`phasekit.core.spectrum.split_pencil`): eigenvalues that vanish
    identically (a continuum of fixed points, e.g. ReLU students that share a
    teacher's norm, or an antiparallel pair of erf students) are *marginal
    modes*, excluded from the search and named in the result; common
    eigenvectors of A and B give linear branches ``a + eta b`` whose zeros are
    closed forms.  On the rest, the zero is bracketed on a geometric grid from
    ``eta_min`` to ``eta_max`` (signs decided only outside the eigenvalue error
    band ``3 n (err_A + eta err_B)``, the entrywise errors of A and B) and refined
    by Brent's method to ``xtol`` relative; a real crossing is polished with
    the generalised eigenvalue problem ``A v = -eta B v``.

    Parameters
    ----------
    model : Committee
        No output noise (otherwise use :func:`phasekit.committee.branches.continuation`).
        The model's eta is irrelevant; ``second_order`` must be True for a
        finite answer (without the eta^2 term the fixed point is stable at
        every eta or at none).
    state : State, CommitteeFixedPoint or ndarray, optional
        The fixed point of interest; it must be fixed for every eta (e.g. any
        zero-error state).  Default: the perfect solution (K = M).
    eta_max : float
        Upper end of the search (``> eta_min``).
    xtol : float
        Relative tolerance of the root, in ``(0, 1)``.
    structure : EtaStructure, optional
        A precomputed structure at ``state`` (saves the Jacobian).
    subspace : {None, "site_symmetric", "grouped", "pair"}
        ``None``: the full space.  ``"site_symmetric"``: the learning rate at
        which the fixed point loses stability *inside* the subspace, from
        the reduced flow (:meth:`Committee.restrict`; cost independent of K);
        ``state`` is then reduced ``(R, S, Q, C[, v])``.  A reduced model
        gives the restricted value without ``subspace``.  The full-space value
        is the smaller of it and those of the modes that leave the subspace
        (:func:`sector_stability` names them; for K > 8 it computes them, and
        the full-space eta_c and optimal eta, from a reduced flow, for any K).

    Returns
    -------
    CriticalEta
        ``float(result)`` is eta_c; status ``"ok"``, ``"marginal"``,
        ``"not_reached"`` (``inf``: stable up to ``eta_max``) or ``"failed"``.

    Raises
    ------
    ValueError
        For bad parameters, output noise, or a state that is not fixed for every eta.
    """
    if isinstance(model, (Committee, ReducedCommittee)) and model.noise > 0 and model.second_order:
        raise ValueError("model: with output noise the perfect solution moves with eta; use continuation()")
    restricted = subspace is not None or isinstance(model, ReducedCommittee)
    if not (eta_max > (0.0 if restricted else 1e-3)):
        raise ValueError(f"eta_max: must be > {'0' if restricted else '1e-3'}, got {eta_max!r}")
    xtol = _check_xtol(xtol)
    st, labels = _setup(model, state, structure, subspace)
    eta_min = _eta_min(st, model, subspace)
    if not (eta_max > eta_min):
        raise ValueError(f"eta_max: must be > {eta_min:g} (the start of the search), got {eta_max!r}")
    return _critical(st, labels, eta_max, xtol, eta_min)


def _eta_min(st: EtaStructure, model: Any, subspace: str | None) -> float:
    """Start of the search: ``1e-3`` in the full space; in a subspace (wide models, eta_c ~ 1/K)
    also below ``1e-2 |A| / |B|``, where the eta^2 term is still small."""
    if subspace is None and not isinstance(model, ReducedCommittee):
        return 1e-3
    a, b = float(np.abs(st.A).max(initial=0.0)), float(np.abs(st.B).max(initial=0.0))
    return min(1e-3, 1e-2 * a / b) if a > 0 and b > 0 else 1e-3


def _critical(st: EtaStructure, labels: Sequence[str], eta_max: float, xtol: float,
              eta_min: float = 1e-3) -> CriticalEta:
    """Body of :func:`critical_eta` on a given structure (coordinates named by ``labels``)."""
    split = st.split
    n = len(st.A)
    modes = tuple(_null_modes(split.null_right, labels, "right") + _null_modes(split.null_left, labels, "left"))
    note = _marginal_summary(split, modes)
    common: dict[str, Any] = {
        "structure": st, "jacobian_error": st.error, "marginal_modes": modes, "n_marginal": int(split.n_null),
        "linear_branches": tuple((br.a, br.b, br.multiplicity) for br in split.branches), "eta_max": float(eta_max),
    }

    def done(value: float, status: str, message: str, **fields: Any) -> CriticalEta:
        if status == "ok" and split.n_null:
            status = "marginal"
        return CriticalEta(value=value, status=status, message="; ".join(x for x in (message, note) if x),
                           **common, **fields)

    if split.n_null == n:
        return done(math.nan, "marginal", "every eigenvalue vanishes for every eta: no crossing to find")
    g = split.max_real
    grid = np.geomspace(eta_min, eta_max, 400)
    vals = np.array([g(e) for e in grid])
    if not np.all(np.isfinite(vals)):
        return done(math.nan, "failed", "the spectrum could not be computed on the search grid")
    band = 3.0 * np.array([st.eigenvalue_error(e) for e in grid])
    sign = np.where(vals > band, 1, np.where(vals < -band, -1, 0))
    if sign[0] == 1:
        return done(0.0, "not_reached", f"unstable already at eta = {grid[0]:g}, the start of the search",
                    bracket=(0.0, float(grid[0])), precision=0.5 * float(grid[0]))
    pos = np.nonzero(sign == 1)[0]
    if len(pos) == 0:
        return done(math.inf, "not_reached", f"stable up to eta_max = {eta_max:g}",
                    bracket=(float(eta_max), math.inf), precision=math.inf)
    p = int(pos[0])
    neg = np.nonzero(sign[:p] == -1)[0]
    if len(neg) == 0:
        return done(math.nan, "failed",
                    f"the leading eigenvalue is within its error band of zero for eta up to {grid[p]:.6g}",
                    bracket=(0.0, float(grid[p])), precision=0.5 * float(grid[p]))
    q = int(neg[-1])
    lo, hi = float(grid[q]), float(grid[p])
    unresolved = None
    message = "converged"
    if p - q > 2:
        unresolved = (float(grid[q + 1]), float(grid[p - 1]))
        message = (f"the leading eigenvalue is within its error band of zero for eta in "
                   f"[{grid[q + 1]:.6g}, {grid[p - 1]:.6g}]; the root there is not resolved")
    root, r = optimize.brentq(g, lo, hi, xtol=1e-300, rtol=max(xtol * 1e-2, 1e-15), full_output=True)
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
    # a tight bracket around the final value (widened until it brackets)
    step = max(xtol * eta_c, 1e-15 * eta_c)
    for _ in range(10):
        a, b = eta_c - step, eta_c + step
        if g(a) <= 0 <= g(b):
            lo, hi = a, b
            break
        step *= 10
    # first-order propagation of the Jacobian error: d lambda / d eta and the condition number
    err_lambda = lead["cond"] * st.eigenvalue_error(eta_c) / np.sqrt(n)
    slope = lead["slope"]
    eta_err = float(err_lambda / abs(slope)) if np.isfinite(slope) and slope != 0 else math.inf
    return done(eta_c, "ok", message, bracket=(float(lo), float(hi)), precision=float(0.5 * (hi - lo)),
                error=eta_err, crossing=crossing, unresolved=unresolved, iterations=int(r.iterations))


def optimal_eta(model: Committee, *, state: State | FixedPoint | np.ndarray | None = None, xtol: float = 1e-10,
                structure: EtaStructure | None = None, subspace: str | None = None) -> OptimalEta:
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
    (``eta n (err_A + eta err_B)`` times the eigenvalue condition number) the kinks win.

    Parameters
    ----------
    model : Committee
        As for :func:`critical_eta`.
    state : State, CommitteeFixedPoint or ndarray, optional
        The fixed point (fixed for every eta); default: the perfect solution.
    xtol : float
        Relative tolerance (in ``(0, 1)``) of Brent's maximiser and of the
        critical learning rate bounding the search; the kinks are solved to rounding.
    structure : EtaStructure, optional
        A precomputed structure at ``state``.
    subspace : {None, "site_symmetric", "grouped", "pair"}
        As for :func:`critical_eta`: the optimum of the decay rate of the
        modes inside the subspace (published values were often computed
        there); the full space can be slower because of modes that break the
        symmetry.

    Returns
    -------
    OptimalEta
        ``float(result)`` is eta_opt.  Without a finite positive eta_c the
        optimum is undefined: status ``"not_reached"`` (or ``"failed"`` when
        eta_c failed) and value ``nan``.

    Raises
    ------
    ValueError
        For bad parameters, output noise, or a state that is not fixed for every eta.
    """
    xtol = _check_xtol(xtol)
    st, labels = _setup(model, state, structure, subspace)
    return _optimal(st, labels, xtol, _eta_min(st, model, subspace))


def _optimal(st: EtaStructure, labels: Sequence[str], xtol: float, eta_min: float = 1e-3,
             crit: CriticalEta | None = None) -> OptimalEta:
    """Body of :func:`optimal_eta` on a given structure (``crit``: its critical learning rate, if known)."""
    crit = _critical(st, labels, 1e3, xtol, eta_min) if crit is None else crit
    eta_c = crit.value
    if not crit.success or not (np.isfinite(eta_c) and eta_c > 0):
        status = "failed" if crit.status == "failed" else "not_reached"
        return OptimalEta(value=math.nan, status=status, critical=crit, marginal_modes=crit.marginal_modes,
                          structure=st, message=f"no finite critical learning rate (eta_c = {eta_c}, "
                                                f"{crit.message}): the optimum is undefined")
    brent_xatol = max(xtol * 1e-2, 1e-13) * eta_c
    split = st.split
    n = len(st.A)
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
        return 3.0 * st.eigenvalue_error(e) / np.sqrt(n)

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
                                   options={"xatol": brent_xatol, "maxiter": 500})
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
    if crit.n_marginal:
        message += "; " + _marginal_summary(split, crit.marginal_modes)
    # a kink is a root solved to rounding (brentq with xtol 1e-15 eta); a smooth maximum is Brent's xatol
    precision = 1e-15 * eta_o + 4 * np.finfo(float).eps * eta_o if kink else brent_xatol
    return OptimalEta(value=float(eta_o), rate=float(rate_o), rate_error=float(rate_err), error=eta_err,
                      kink=bool(kink), kink_type=kind if kink else None, bracket=(float(cell[0]), float(cell[1])),
                      precision=float(precision), candidates=tuple((float(e), float(r_), k) for e, r_, k in scored),
                      critical=crit, marginal_modes=crit.marginal_modes, structure=st,
                      status="marginal" if crit.n_marginal else "ok", message=message)


@dataclass(frozen=True, eq=False)
class SectorStability:
    """Critical and optimal learning rates of each symmetry sector of a fixed point (:func:`sector_stability`).

    Attributes
    ----------
    critical, optimal : dict of str to CriticalEta / OptimalEta
        Per isotypic component of S_K (``"trivial"``: inside the
        site-symmetric subspace; ``"standard"``, ``"(K-2,2)"``,
        ``"(K-2,1,1)"``: the modes that leave it).
    dimensions : dict of str to int
        Dimension of each component (its eigenvalues repeat ``dim(irrep)`` times).
    method : str
        ``"full"`` (the full Jacobian projected) or ``"pair"`` (the reduced flow
        of :class:`~phasekit.committee.subspaces.PairCommittee`).
    full_critical, full_optimal : CriticalEta, OptimalEta
        Of the whole space (the smallest eta_c over the sectors).
    limiting : str
        The sector whose eta_c is the full-space one.
    """

    critical: dict[str, CriticalEta]
    optimal: dict[str, OptimalEta]
    dimensions: dict[str, int]
    full_critical: CriticalEta
    full_optimal: OptimalEta
    limiting: str
    method: str = "full"


#: Largest K at which ``sector_stability(method="auto")`` forms the full Jacobian.
_FULL_SECTORS_MAX_K = 8


def _irrep_dimension(name: str, K: int) -> int:
    return {"trivial": 1, "standard": K - 1, "(K-2,2)": K * (K - 3) // 2, "(K-2,1,1)": (K - 1) * (K - 2) // 2}[name]


def _pair_sectors(model: Committee) -> tuple[EtaStructure, dict[str, np.ndarray], float, Any]:
    """The pair subspace's pencil at the perfect solution and a basis of each sector's block in it.

    The class sum of transpositions is ``c_lambda`` on sector lambda; its
    eigenspace in the subspace is the sector's multiplicity space times the
    S_(K-2)-invariants of the irrep (one dimension, two for the standard
    sector, whose copies the swap (1 2) separates: its ``-1`` eigenspace).
    """
    red = model.restrict("pair")
    st = red.eta_structure()
    C, swap = red.sector_operators()
    d = red._balance()  # the structure is in balanced coordinates
    C = C * d[:, None] / d[None, :]
    swap = swap * d[:, None] / d[None, :]
    n = len(C)
    eye = np.eye(n)
    contents = _contents(model.K)
    names = ["trivial", "standard"] if model.K == 2 else list(contents)
    bases = {}
    for name in names:
        rows = [(C - contents[name] * eye) / max(1.0, float(np.abs(C).max()))]
        if name == "standard":
            rows.append(swap + eye)
        u, sv, vt = np.linalg.svd(np.vstack(rows))
        null = vt[sv.size:].T if sv.size < n else np.zeros((n, 0))
        small = vt[:sv.size][sv <= 1e-9].T
        V = np.hstack([small, null])
        if V.shape[1]:
            bases[name] = V
    return st, bases, _eta_min(st, red, "pair"), red


def sector_stability(model: Committee, *, xtol: float = 1e-10, method: str = "auto") -> SectorStability:
    """Stability of the perfect solution sector by sector of the simultaneous permutations S_K (K = M).

    At the perfect solution the Jacobian ``eta A + eta^2 B`` commutes with the
    permutations of the units, so it is block diagonal over the isotypic
    components of S_K acting on the state space (orthonormal bases from the
    class sum of transpositions, :func:`phasekit.committee.subspaces.sector_projectors`):
    the trivial component is the site-symmetric subspace, the others are the
    modes that leave it.  Each block's eta_c and optimal eta are computed as
    by :func:`critical_eta` on ``B_s^T A B_s``, ``B_s^T B B_s``.

    ``method``: ``"full"`` forms the full Jacobian (small K); ``"pair"`` the
    Jacobian of the 17-coordinate flow on the states invariant under the
    permutations of units 3 ... K
    (:class:`~phasekit.committee.subspaces.PairCommittee`), which every
    sector meets, split by the class sum of transpositions and the swap
    (1 2): each sector's eigenvalues once, for any K (K = 1e4 in about a
    second).  ``"auto"``: ``"full"`` up to K = 8, else ``"pair"``.  The two
    agree to ~1e-9 (tested for K = 2 ... 8).
    """
    full_model_only(model, "sector_stability (it forms the full Jacobian and splits it into the symmetry sectors, "
                           "the subspace being the trivial one)")
    if model.K != model.M:
        raise ValueError(f"model: the sectors of S_K need K == M, got K={model.K}, M={model.M}")
    if model.noise > 0 and model.second_order:
        raise ValueError("model: with output noise the perfect solution moves with eta; use continuation()")
    xtol = _check_xtol(xtol)
    if method not in ("auto", "full", "pair"):
        raise ValueError(f"method: must be 'auto', 'full' or 'pair', got {method!r}")
    if method == "pair" or (method == "auto" and model.K > _FULL_SECTORS_MAX_K):
        return _sector_stability_pair(model, xtol)
    st = _structure_for(model, None, eta_structure(model))
    labels = vector_labels(model.K, model.M, model.train_second_layer)
    crit, opt, dims = {}, {}, {}
    for name, basis in sector_projectors(model.K, model.train_second_layer).items():
        sub = EtaStructure(A=basis.T @ st.A @ basis, B=basis.T @ st.B @ basis, error=st.error, state=st.state,
                           scheme=st.scheme, residual=st.residual)
        names = [f"{name}[{j}]" for j in range(basis.shape[1])]
        crit[name] = _critical(sub, names, 1e3, xtol)
        opt[name] = _optimal(sub, names, xtol)
        dims[name] = basis.shape[1]
    full_c = _critical(st, labels, 1e3, xtol)
    full_o = _optimal(st, labels, xtol)
    finite = {k: float(c.value) for k, c in crit.items() if np.isfinite(c.value)}
    limiting = min(finite, key=finite.get) if finite else ""
    return SectorStability(critical=crit, optimal=opt, dimensions=dims, full_critical=full_c, full_optimal=full_o,
                           limiting=limiting)


def _sector_stability_pair(model: Committee, xtol: float) -> SectorStability:
    """:func:`sector_stability` from the pair subspace's reduced flow (any K)."""
    st, bases, eta_min, red = _pair_sectors(model)
    crit, opt, dims, blocks = {}, {}, {}, []
    for name, V in bases.items():
        Vp = np.linalg.pinv(V)
        sub = EtaStructure(A=Vp @ st.A @ V, B=Vp @ st.B @ V, error=st.error, state=st.state, scheme=st.scheme,
                           residual=st.residual)
        names = [f"{name}[{j}]" for j in range(V.shape[1])]
        crit[name] = _critical(sub, names, 1e3, xtol, eta_min)
        opt[name] = _optimal(sub, names, xtol, eta_min)
        dims[name] = V.shape[1] * _irrep_dimension(name, model.K)
        blocks.append((sub, names))
    # the whole space: the sectors' blocks side by side (each eigenvalue once)
    A = linalg.block_diag(*[b.A for b, _ in blocks])
    B = linalg.block_diag(*[b.B for b, _ in blocks])
    whole = EtaStructure(A=A, B=B, error=st.error, state=st.state, scheme=st.scheme, residual=st.residual)
    labels = [n for _, names in blocks for n in names]
    finite = {k: float(c.value) for k, c in crit.items() if np.isfinite(c.value)}
    limiting = min(finite, key=finite.get) if finite else ""
    # the blocks are uncoupled: the whole space's eta_c is the limiting sector's (searched on the whole,
    # the error band, growing with the dimension, can hide a root that the sector resolves)
    full_c = crit[limiting] if limiting else _critical(whole, labels, 1e3, xtol, eta_min)
    full_o = _optimal(whole, labels, xtol, eta_min, crit=full_c)
    return SectorStability(critical=crit, optimal=opt, dimensions=dims, full_critical=full_c, full_optimal=full_o,
                           limiting=limiting, method="pair")
