"""Every fixed point: a multi-start Newton search seeded by the flow.

Starts are random states inside the cone, the points of smallest speed along
their flows (where a trajectory lingers near a saddle) and the ends of those
flows.  Roots are deduplicated modulo permutations of the students, and
continua of fixed points (ReLU is positively homogeneous, so collinear
students can trade norm at no cost) are reported once.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping

import numpy as np

from ..core.ode import rk4_batch
from ..core.options import NewtonOptions, coerce_options
from ..core.parallel import Progress
from .cone import _margin
from .landmarks import _check_symmetric_teacher, _perfect_vector, symmetric_plateau
from .linearisation import CommitteeFixedPoint, linearise
from .model import Committee, State, full_model_only, is_reduced
from .newton import _newton
from .symmetry import _symmetric_basis

__all__ = ['fixed_points']


# Duplicates: states closer than this (max-norm, relative to the state scale).
_DEDUP_TOL = 1e-6


def _random_states(model: Committee, n: int, rng: np.random.Generator) -> np.ndarray:
    """States of random student vectors ``J_i = sum_n A_in B_n + w_i`` (inside the cone)."""
    K, M = model.K, model.M
    Lt = np.linalg.cholesky(model.T)
    out = np.empty((n, model.n_state))
    iu = np.triu_indices(K)
    for j in range(n):
        a = rng.uniform(0.1, 1.2)
        A = rng.normal(scale=a, size=(K, M)) / math.sqrt(M)
        Wf = rng.normal(scale=rng.uniform(0.05, 1.0), size=(K, K + 1)) / math.sqrt(K + 1)
        B = A @ Lt  # teacher-space coordinates
        R = B @ Lt.T
        Q = B @ B.T + Wf @ Wf.T
        out[j, :model.n_order] = np.concatenate([R.ravel(), Q[iu]])
    if model.train_second_layer:  # second-layer weights spread around the initial ones
        out[:, model.n_order:] = model.student_weights * rng.uniform(0.5, 1.5, size=(n, K))
    return out


def _batched_flow(model: Committee, V0: np.ndarray, alpha: float, n_steps: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-step RK4 on all starts at once; returns (end states, states of smallest |rhs|).

    The minimum of ``|rhs| / (1 + |v|)`` is taken over the first half of each
    trajectory, where the plateaus (saddles) are visited.
    """
    best = V0.copy()
    best_val = np.full(len(V0), np.inf)

    def observe(step: int, V: np.ndarray, F: np.ndarray, alive: np.ndarray) -> None:
        if 0 < step < n_steps // 2:
            val = np.abs(F).max(axis=1) / (1 + np.abs(V).max(axis=1))
            upd = alive & (val < best_val)
            best[upd], best_val[upd] = V[upd], val[upd]

    def valid(Vn: np.ndarray, V: np.ndarray) -> np.ndarray:
        ok = np.all(np.isfinite(Vn), axis=1) & (np.abs(Vn).max(axis=1) < 1e3)
        return ok & (_margin(model, np.where(ok[:, None], Vn, V)) >= 0)

    run = rk4_batch(lambda _a, V: model.rhs_vector(V), V0, (0.0, alpha), n_steps, valid=valid, observe=observe)
    return run.y, best


def _permutation_distance(model: Committee, a: np.ndarray, b: np.ndarray) -> float:
    """Smallest max-norm distance between states a and b over permutations of the students."""
    K, M = model.K, model.M
    sa, sb = State.from_vector(a, K, M), State.from_vector(b, K, M)
    best = np.inf
    if K <= 7:
        perms = itertools.permutations(range(K))
    else:  # match students greedily by their overlaps with the teachers
        order_a = np.lexsort(np.round(sa.R.T, 6)[::-1])
        order_b = np.lexsort(np.round(sb.R.T, 6)[::-1])
        p = np.empty(K, dtype=int)
        p[order_a] = order_b
        perms = [tuple(p)]
    for p in perms:
        p = list(p)
        d = max(float(np.abs(sa.R - sb.R[p]).max()), float(np.abs(sa.Q - sb.Q[np.ix_(p, p)]).max()))
        best = min(best, d)
        if best == 0:
            break
    return best


def _same_point(model: Committee, a: np.ndarray, b: np.ndarray, tol: float = _DEDUP_TOL) -> bool:
    scale = max(1.0, float(np.abs(a).max()), float(np.abs(b).max()))
    return _permutation_distance(model, a, b) <= tol * scale


def fixed_points(model: Committee, n_starts: int = 64, seed: int = 0, *,
                 newton: NewtonOptions | Mapping[str, Any] | None = None, alpha_flow: float = 200.0,
                 include_landmarks: bool = True, progress: bool = True) -> list[CommitteeFixedPoint]:
    """Every distinct fixed point found by a multi-start Newton search.

    Starts: ``n_starts`` random states inside the cone (random student
    vectors), plus, for each, the point of smallest ``|rhs|`` along its flow
    (where it lingers near a saddle) and the end of the flow after
    ``eta alpha = alpha_flow``; plus the landmarks (perfect solution when
    K = M, symmetric plateau when T allows).  Converged roots are deduplicated
    modulo permutations of the student units (max-norm distance ``1e-6``
    relative) and each is linearised and classified.

    Parameters
    ----------
    model : Committee or a reduced model
        A reduced model (:meth:`Committee.restrict`): the search runs in its
        coordinates (random starts inside the cone around its perfect solution,
        ``S``-like coordinates of size ``1/K``), fixed points deduplicated by
        distance, linearised inside the subspace
        (:class:`~phasekit.core.results.FixedPoint`, sorted by eps_g; the
        landmarks' ``message`` is ``"perfect"`` / ``"symmetric_plateau"``).
    n_starts : int
        Random starting states, ``>= 1``.
    seed : int
        Seed of the random starts.
    newton : NewtonOptions, mapping or None
        Newton's residual tolerance ``tol`` (units 1/alpha) and ``max_iter``.
    alpha_flow : float
        Flow time of the seeding trajectories in units of ``eta alpha``.
    include_landmarks : bool
        Also try the perfect solution and the symmetric plateau.
    progress : bool
        Newton solves and linearisations done, and the estimated time left,
        on stderr once the search has taken a few seconds (:class:`phasekit.core.parallel.Progress`).

    Returns
    -------
    list of CommitteeFixedPoint
        Converged fixed points (status ``"converged"``) sorted by
        generalisation error; the perfect solution and the symmetric plateau
        carry their ``label``.
    """
    if not is_reduced(model):
        full_model_only(model, "fixed_points")
    if int(n_starts) < 1:
        raise ValueError(f"n_starts: must be >= 1, got {n_starts!r}")
    if not (np.isfinite(alpha_flow) and alpha_flow > 0):
        raise ValueError(f"alpha_flow: must be finite and > 0, got {alpha_flow!r}")
    model.require_autonomous("the fixed-point search")
    opts = coerce_options(newton, NewtonOptions, "newton")
    with Progress(3 * int(n_starts), enabled=progress, what=f"fixed_points (K = {model.K}, M = {model.M})",
                  unit="solves", tick=1.0) as bar:
        if is_reduced(model):
            return _reduced_search(model, int(n_starts), seed, opts, alpha_flow, include_landmarks, bar)
        return _search(model, int(n_starts), seed, opts, alpha_flow, include_landmarks, bar)


def _reduced_search(model: Any, n_starts: int, seed: int, opts: NewtonOptions, alpha_flow: float,
                    include_landmarks: bool, bar: Progress) -> list[Any]:
    """:func:`fixed_points` of a reduced model, in its own coordinates (written against its interface only:
    ``perfect_vector``, ``validate_state``, ``min_eigenvalue``, ``rhs_vector``, ``find_fixed_point``, ...)."""
    rng = np.random.default_rng(seed)
    top = model.perfect_vector()
    n = top.size
    starts: list[np.ndarray] = []
    for _ in range(200 * n_starts):  # rejection: the cone of a wide model is thin in the off-diagonal directions
        if len(starts) == n_starts:
            break
        z = top * rng.uniform(0.05, 1.2, n) + rng.normal(scale=0.3 / max(1, model.K - 1), size=n)
        try:
            starts.append(model.validate_state(z))
        except ValueError:
            pass
    V0 = np.array(starts).reshape(-1, n)
    candidates: list[tuple[np.ndarray, str]] = []
    landmarks: dict[str, np.ndarray] = {}
    if include_landmarks:
        for lab, find in (("perfect", model.perfect_solution), ("symmetric_plateau", model.symmetric_plateau)):
            try:
                fp = find()
            except ValueError:  # e.g. no plateau for K = 1
                continue
            if fp.success:
                landmarks[lab] = fp.vector
                candidates.append((fp.vector, lab))
    if len(V0):
        def valid(Vn: np.ndarray, V: np.ndarray) -> np.ndarray:
            ok = np.all(np.isfinite(Vn), axis=1) & (np.abs(Vn).max(axis=1) < 1e3)
            return ok & np.array([bool(o) and model.min_eigenvalue(x) >= 0 for o, x in zip(ok, Vn)])

        run = rk4_batch(lambda _a, V: model.rhs_vector(V), V0, (0.0, alpha_flow / model.eta),
                        max(1, int(4 * alpha_flow)), valid=valid)
        candidates += [(v, "") for v in np.concatenate([run.y, V0])]
    bar.add(len(candidates) - bar.total)
    roots: list[tuple[Any, str]] = []  # (converged FixedPoint, label)

    def seen(a: np.ndarray, b: np.ndarray) -> bool:
        return float(np.abs(a - b).max()) <= _DEDUP_TOL * max(1.0, float(np.abs(a).max()), float(np.abs(b).max()))

    for z0, lab in _counted(candidates, bar):
        if not np.all(np.isfinite(z0)):
            continue
        fp = model.find_fixed_point(z0, tol=opts.tol, max_iter=opts.max_iter, label=lab)
        if fp.success and not any(seen(fp.vector, r.vector) for r, _ in roots):
            lab = lab or next((name for name, z in landmarks.items() if seen(fp.vector, z)), "")
            roots.append((fp, lab))
    out: list[tuple[float, Any]] = []
    for fp, lab in roots:
        lin = model.linearise(fp.vector, label=lab, status="converged", message=lab or "converged")
        eg = float(model.eg_vector(lin.vector))
        # one representative of a family of non-isolated roots with one eps_g (as _merge_families)
        twin = next((j for j, (e, o) in enumerate(out) if abs(e - eg) <= 1e-9 * max(abs(e), abs(eg), 1e-12)
                     and not (_is_isolated(o) and _is_isolated(lin))), None)
        if twin is None:
            out.append((eg, lin))
        elif lab and out[twin][1].message not in landmarks:
            out[twin] = (eg, lin)
    out.sort(key=lambda item: (item[0], item[1].n_unstable))
    return [fp for _, fp in out]


def _counted(items: list, bar: Progress) -> Any:
    """The items, with ``bar`` advanced after the loop body has handled each."""
    for item in items:
        yield item
        bar.update(1)


def _search(model: Committee, n_starts: int, seed: int, opts: NewtonOptions, alpha_flow: float,
            include_landmarks: bool, bar: Progress) -> list[CommitteeFixedPoint]:
    """:func:`fixed_points` after its checks; ``bar`` counts the Newton solves, then the linearisations."""
    tol = opts.tol
    rng = np.random.default_rng(seed)
    starts = _random_states(model, n_starts, rng)
    ends, lingering = _batched_flow(model, starts, alpha_flow / model.eta, n_steps=max(1, int(4 * alpha_flow)))
    candidates: list[tuple[np.ndarray, str]] = []
    if include_landmarks:
        if model.K == model.M:
            candidates.append((_perfect_vector(model), "perfect"))
        try:
            _check_symmetric_teacher(model)
            plateau = symmetric_plateau(model, newton=opts)
            if plateau.success:
                candidates.append((plateau.vector, "symmetric_plateau"))
        except ValueError:
            pass
    candidates += [(v, "") for v in np.concatenate([lingering, ends, starts])]
    bar.add(len(candidates) - bar.total)

    roots: list[tuple[np.ndarray, str]] = []
    for v0, lab in _counted(candidates, bar):
        if not np.all(np.isfinite(v0)):
            continue
        if lab == "perfect" and float(np.abs(model.rhs_vector(v0)).max()) <= tol:
            res_v, ok = v0, True
        else:
            res = _newton(model, v0, tol=tol, max_iter=opts.max_iter)
            res_v, ok = res.v, res.converged
        if not ok:
            continue
        if any(_same_point(model, res_v, r) for r, _ in roots):
            continue
        roots.append((res_v, lab))

    # name the landmarks even when a random start found them first
    perfect_v = _perfect_vector(model) if model.K == model.M else None
    Qb, _ = np.linalg.qr(_symmetric_basis(model.K, model.M, model.train_second_layer))
    try:
        _check_symmetric_teacher(model)
        symmetric_ok = model.K >= 2  # one student: no plateau (see symmetric_plateau)
    except ValueError:
        symmetric_ok = False
    found: list[CommitteeFixedPoint] = []
    bar.add(len(roots))  # each root is linearised and classified
    for v, lab in _counted(roots, bar):
        if not lab:
            if perfect_v is not None and _same_point(model, v, perfect_v):
                lab = "perfect"
            elif symmetric_ok and np.abs(v - Qb @ (Qb.T @ v)).max() <= _DEDUP_TOL * max(1.0, float(np.abs(v).max())):
                lab = "symmetric_plateau"
        found.append(linearise(model, v, status="converged", label=lab, message="converged"))
    out = _merge_families(found)
    out.sort(key=lambda fp: (fp.eg, fp.n_unstable))
    return out


def _is_isolated(fp: CommitteeFixedPoint) -> bool:
    """Whether the Jacobian is clearly non-singular.

    Singular values, unlike eigenvalues, are not blown up by a Jordan block
    (a defective zero eigenvalue is perturbed by the square root of the error),
    so the test is ``sigma_min > 1e-5 sigma_max``.
    """
    if not np.all(np.isfinite(fp.jacobian)):
        return True  # no linearisation: never merged with others
    try:
        sv = np.linalg.svd(fp.jacobian, compute_uv=False)
    except np.linalg.LinAlgError:
        return True
    return bool(sv[-1] > 1e-5 * sv[0])


def _merge_families(points: list[CommitteeFixedPoint]) -> list[CommitteeFixedPoint]:
    """Keep one representative of fixed points that are not isolated and share eps_g.

    A zero eigenvalue means the root is degenerate: either a continuum of fixed
    points (ReLU is positively homogeneous, so collinear students can trade
    norm at no cost) or a root that Newton locates only to ~1e-6 (the erf
    plateau outside its symmetric subspace).  Such points with equal eps_g
    (relative 1e-9) are reported once; the representative is a labelled
    landmark if there is one, else the member with the fewest unstable
    directions, and ``extra["family_size"]`` counts the members found.
    """
    groups: list[list[CommitteeFixedPoint]] = []
    for fp in points:
        if _is_isolated(fp):
            groups.append([fp])
            continue
        for g in groups:
            rep = g[0]
            if not _is_isolated(rep) and abs(rep.eg - fp.eg) <= 1e-9 * max(1.0, abs(fp.eg)):
                g.append(fp)
                break
        else:
            groups.append([fp])
    out = []
    for g in groups:
        rep = min(g, key=lambda f: (f.label == "", f.n_unstable))
        rep.extra["family_size"] = len(g)
        rep.extra["isolated"] = _is_isolated(rep)
        out.append(rep)
    return out
