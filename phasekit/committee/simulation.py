"""Finite-N on-line SGD: the microscopic simulation and the exact order-parameter chain.

Two routes to the same law of the order parameters ``(R, Q)`` at finite N:

``level="microscopic"``
    Real N-dimensional teacher rows ``B_n`` and student rows ``J_i``, built
    (not sampled) so that their overlaps equal the initial state, fresh inputs
    ``xi ~ N(0, I_N)`` and the on-line SGD update
    ``J_i <- J_i + (eta/N) delta_i xi``, ``delta_i = (tau + zeta - sigma) g'(x_i)``.

``level="reduced"``
    The exact Markov chain in ``(R, Q)`` whose cost per step does not depend on N.

Blocks of examples
------------------
Both routes process ``b`` examples at once.  Within a block the student moves
only along the block's own inputs, so with ``J_0`` the weights at the start,
``c = eta / N`` and the Gram matrix ``G_st = xi_s . xi_t``,

    x_t = J_0 . xi_t + c sum_{s<t} delta_s G_st,         y_t = B . xi_t,
    J_b = J_0 + c Delta^T Xi,
    R_b = R_0 + c Delta^T Y,
    Q_b = Q_0 + c (Delta^T X_0 + X_0^T Delta) + c^2 Delta^T G Delta.

The fields of the whole block solve a causal (strictly lower-triangular)
fixed-point problem ``x = X_0 + c tril(G, -1) delta(x)``.  It is solved by
iterating the map on all b fields at once: after t sweeps the first t fields
are final, so at most b + 1 sweeps reach the exact sequential answer, and
because ``c |G_st| ~ eta / sqrt(N)`` the iterates contract by about
``eta sqrt(b / N)`` per sweep and settle (bit for bit) after a few sweeps.
The block length is chosen so that this factor stays below 0.1.

Microscopically ``G = Xi Xi^T`` and ``X_0 = Xi J_0^T`` are two matrix products
and ``J_b`` a third: the sequential part costs O(b^2 K) per block instead of
O(b N K).

The reduced chain samples the same block from ``(R, Q)`` alone.  Let P project
onto span(J_0, B), of rank r, and write the field covariance
``Sigma = [[Q, R], [R^T, T]] = F F^T`` with F of rank r.  The coordinates
``z_t`` of ``P xi_t`` in an orthonormal basis of the span are i.i.d.
``N(0, I_r)``, and give the fields ``(x_t, y_t) = F z_t``.  The components
orthogonal to the span are independent of them, so

    G = Z Z^T + W,     W ~ Wishart_b(N - r, I),

and ``W`` is drawn by Bartlett's decomposition ``W = A A^T`` (A lower
triangular, ``A_tt^2 ~ chi^2(N - r - t)``, ``A_st ~ N(0, 1)`` below the
diagonal).  For ``b = 1`` this is the one-step chain: Gaussian fields from the
current order parameters, and ``|xi|^2 = |z|^2 + chi^2(N - r)`` where
``|z|^2 = (x, y)^T Sigma^+ (x, y)`` is the part of ``|xi|^2`` inside the span
(``F^T (F F^T)^+ F`` is the identity on the range of ``F^T``).  Nothing in a
block depends on N except the degrees of freedom of the chi-square variables,
whose sampling cost does not.

The general committee machine
-----------------------------
Second-layer weights enter the errors, ``delta_ti = v_ti (tau_t - sigma_t)
g'(x_ti)`` with ``sigma_t = sum_i v_ti g(x_ti)``, ``tau_t = sum_n w_n g(y_tn)``.
A trained second layer moves within the block, ``v_t = v_0 + sum_{s<t}
c^v_s g(x_s) (tau_s - sigma_s)``, and is iterated with the fields (both are
causal).  With weight decay and a schedule (``c_t = eta(alpha_t) / N``,
``a_t = 1 - c_t lambda``, ``P_t = prod_{r<t} a_r``)

    J_t = P_t J_0 + sum_{s<t} (P_t / P_{s+1}) c_s delta_s xi_s,

so the fields are ``x_t = P_t X_0t + sum_{s<t} W_ts G_st delta_s`` with
``W_ts = (P_t / P_{s+1}) c_s``, and the block ends at ``J_b = P_b J_0 +
U^T Xi`` with ``U_s = (P_b / P_{s+1}) c_s delta_s``: ``R_b = P_b R_0 + U^T Y``,
``Q_b = P_b^2 Q_0 + P_b (U^T X_0 + X_0^T U) + U^T G U``.  A drifting teacher
moves as ``B_{t+1} = d B_t + s nu_t``, ``d = 1 - delta/N``, ``s = sqrt(2
delta/N)``, ``nu_t ~ N(0, I/N)`` (one per teacher unit), so ``y_t = d^t
B_0 . xi_t + s sum_{s<t} d^(t-1-s) nu_s . xi_t``.

Under drift the teacher's overlaps ``T`` fluctuate at finite N, so the reduced
chain carries ``(R, Q, T)`` (``T`` is not in the state vector it returns: as
microscopically, eps_g is reported with ``T`` at its mean, the identity).  The
steps ``nu_tn`` are Gaussian vectors like the inputs, only ``1/sqrt(N)``
smaller: a block's ``b`` inputs and ``b M`` steps have coordinates in the span
of ``(J_0, B_0)`` (``z_t ~ N(0, I_r)``, ``w_tn ~ N(0, I_r / N)``, projections
``F z``, ``F w``) and a joint Gram matrix outside it, ``D A A^T D`` with ``A``
Bartlett's factor of ``Wishart_{b(M+1)}(N - r, I)`` and ``D`` the scales (1 for
an input, ``1/sqrt(N)`` for a step).  From these inner products the block's
fields and its end are exact:

    R_b = P_b (d^b R_0 + s sum_t e_t J_0 . nu_t) + U^T (d^b Y_0 + s sum_t e_t Xi . nu_t),
    T_b = d^(2b) T_0 + d^b s sum_t e_t (B_0 . nu_t + (B_0 . nu_t)^T) + s^2 sum_{t,t'} e_t e_t' nu_t . nu_t',

``e_t = d^(b-1-t)``, ``Q_b`` as without drift.  The cost per block is that of
a ``b (M + 1)``-dimensional Gram matrix, still independent of N.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from ..core.options import SolverOptions
from ..core.parallel import Progress, choose_backend, parallel_map
from .dynamics import trajectory_dataset
from .model import Committee, State, full_model_only

__all__ = ['align_teachers', 'block_size', 'simulate']


LEVELS = ("microscopic", "reduced")


# A run whose largest |order parameter| exceeds this has diverged (the ODE solver's default).
_MAX_NORM = SolverOptions().max_norm


# Largest block: beyond it the Gram matrix (b N flops per example) costs more
# than drawing the inputs (N normals per example).
_MAX_BLOCK = 32


# Target contraction eta sqrt(b / N) of the block's fixed-point sweeps.
_CONTRACTION = 0.1


# Floats of inputs held at once by a microscopic chunk of runs (32 MB).
_MICRO_CHUNK_FLOATS = 1 << 22


# Runs sampled together by the reduced chain.
_REDUCED_CHUNK_RUNS = 1024


# Default block of the chain under drift: its Gram matrix has b (M + 1) rows, so the work per
# example grows with b and short blocks are the cheaper ones.
_DRIFT_BLOCK = 4


# Relative eigenvalue threshold of the field covariance's rank.
_RANK_TOL = 1e-12


def _plain(model: Committee) -> bool:
    """The soft committee machine with a constant learning rate and a fixed teacher (the fast block path)."""
    return (model._soft and model.autonomous and model.weight_decay == 0 and model.drift == 0
            and not model.train_second_layer)


def block_size(model: Committee, N: int) -> int:
    """Default number of examples processed together.

    ``b = min(b_max, N - K - M, floor(0.01 N / eta^2))`` (at least 1): short
    enough that the block's fixed-point sweeps contract fast and that the
    Wishart remainder of the reduced chain has ``N - r >= b`` degrees of freedom.
    """
    limit = int(_CONTRACTION**2 * N / model.eta**2)
    return max(1, min(_MAX_BLOCK, N - model.L, limit))


def _block_deltas(model: Committee, X0: np.ndarray, Y: np.ndarray, Gc: np.ndarray,
                  zeta: np.ndarray | None) -> np.ndarray:
    """Errors ``delta`` of a block of examples, processed in sequence.

    Parameters
    ----------
    X0 : ndarray, shape (B, b, K)
        Student fields ``J_0 . xi_t`` with the weights at the start of the block.
    Y : ndarray, shape (B, b, M)
        Teacher fields.
    Gc : ndarray, shape (B, b, b)
        ``(eta / N) G_st`` for ``s < t``, zero on and above the diagonal.
    zeta : ndarray, shape (B, b), optional
        Output noise on the teacher.

    Returns
    -------
    ndarray, shape (B, b, K)
        ``delta_ti = (tau_t - sigma_t) g'(x_ti)`` with the fields ``x_t`` seen by
        example t after the updates of examples ``s < t``.
    """
    g, dg = model.activation.g, model.activation.dg
    tau = model.teacher_activation.g(Y).sum(axis=-1)
    if zeta is not None:
        tau = tau + zeta
    x = X0
    # Causal sweeps: after t sweeps the first t fields are exact, so b + 1
    # sweeps always suffice; in practice a handful do (module docstring).
    for _ in range(X0.shape[-2] + 1):
        delta = (tau - g(x).sum(axis=-1))[..., None] * dg(x)
        x_new = X0 + Gc @ delta
        if not (x_new != x).any():  # NaN (a diverged run) never settles: b + 1 sweeps
            return delta
        x = x_new
    return (tau - g(x).sum(axis=-1))[..., None] * dg(x)


def _block_rates(model: Committee, done: int, b: int, N: int) -> dict[str, Any]:
    """Per-example rates of a block starting after ``done`` examples (see the module docstring).

    ``W`` (b, b): weights of ``G_st delta_s`` in the fields (strictly lower);
    ``P`` (b,): factors of ``X_0``; ``u`` (b,): weights of ``delta_s`` in ``J_b``;
    ``Pb``: factor of ``J_0`` at the end; ``cv`` (b,): second-layer rates per example.
    """
    alpha = (done + np.arange(b)) / N
    eta = np.asarray(model.eta_at(alpha), dtype=float)
    c = eta / N
    logP = np.concatenate([[0.0], np.cumsum(np.log1p(-c * model.weight_decay))])
    W = np.tril(np.exp(logP[:b, None] - logP[None, 1:]) * c[None, :], -1)
    return {"W": W, "P": np.exp(logP[:b]), "u": np.exp(logP[b] - logP[1:]) * c, "Pb": float(np.exp(logP[b])),
            "cv": model.eta_v * (eta / model.eta) / N}


def _block_general(model: Committee, X0: np.ndarray, Y: np.ndarray, G: np.ndarray, zeta: np.ndarray | None,
                   v0: np.ndarray | None, rates: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Errors ``delta`` (B, b, K) of a block of the general model and the second-layer weights after it.

    ``X0`` are the fields of the weights at the start of the block (unscaled),
    ``v0`` (B, K) the trained second-layer weights at its start (``None``: fixed).
    The fields and the weights are iterated together; both are causal, so the
    sweeps settle exactly as in :func:`_block_deltas`.
    """
    g, dg = model.activation.g, model.activation.dg
    tau = model.teacher_activation.g(Y) @ model.teacher_weights
    if zeta is not None:
        tau = tau + zeta
    Xs = X0 * rates["P"][:, None]
    Gc = rates["W"] * G
    cv = rates["cv"][:, None]
    vt = np.broadcast_to(model.student_weights if v0 is None else v0[..., None, :], X0.shape)
    x = Xs
    for _ in range(X0.shape[-2] + 2):
        gx = g(x)
        err = tau - (vt * gx).sum(axis=-1)
        delta = vt * err[..., None] * dg(x)
        x_new = Xs + Gc @ delta
        steps = cv * gx * err[..., None] if v0 is not None else None
        v_new = vt if v0 is None else v0[..., None, :] + np.cumsum(steps, axis=-2) - steps
        if not ((x_new != x).any() or (v_new != vt).any()):
            break
        x, vt = x_new, v_new
    v_end = None if v0 is None else v0 + steps.sum(axis=-2)
    return delta, v_end


def _drift_fields(model: Committee, Y0: np.ndarray, nu: np.ndarray, Xi: np.ndarray, N: int) -> np.ndarray:
    """Teacher fields ``y_t = d^t B_0 . xi_t + s sum_{s<t} d^(t-1-s) nu_s . xi_t`` of a drifting teacher (B, b, M)."""
    b = Y0.shape[-2]
    d, s = 1.0 - model.drift / N, math.sqrt(2.0 * model.drift / N)
    t = np.arange(b)
    D = np.tril(d ** np.maximum(t[:, None] - t[None, :] - 1, 0), -1)  # (t, s)
    NX = np.einsum("bsmn,btn->btsm", nu, Xi)
    return (d ** t)[:, None] * Y0 + s * np.einsum("ts,btsm->btm", D, NX)


def _micro_block_general(model: Committee, V: np.ndarray, vw: np.ndarray | None, Xi: np.ndarray,
                         zeta: np.ndarray | None, rates: dict[str, Any], nu: np.ndarray | None,
                         N: int) -> np.ndarray | None:
    """:func:`_micro_block` for the general model; also moves a drifting teacher. Returns the new ``v``."""
    K = model.K
    fields = Xi @ np.swapaxes(V, -1, -2)
    G = Xi @ np.swapaxes(Xi, -1, -2)
    Y = fields[..., K:] if nu is None else _drift_fields(model, fields[..., K:], nu, Xi, N)
    delta, v_end = _block_general(model, fields[..., :K], Y, G, zeta, vw, rates)
    V[:, :K] = rates["Pb"] * V[:, :K] + np.swapaxes(delta * rates["u"][:, None], -1, -2) @ Xi
    if nu is not None:
        b = Xi.shape[-2]
        d, s = 1.0 - model.drift / N, math.sqrt(2.0 * model.drift / N)
        V[:, K:] = d**b * V[:, K:] + s * np.einsum("s,bsmn->bmn", d ** (b - 1 - np.arange(b)), nu)
    return v_end


def _micro_block(model: Committee, V: np.ndarray, Xi: np.ndarray, zeta: np.ndarray | None,
                 c: float) -> np.ndarray:
    """Train weights ``V`` (B, K + M, N), students first, on inputs ``Xi`` (B, b, N) in place.

    Three matrix products (fields, Gram matrix, update) instead of b
    sequential passes over N-vectors.
    """
    K = model.K
    fields = Xi @ np.swapaxes(V, -1, -2)  # (B, b, K + M)
    Gc = np.tril(Xi @ np.swapaxes(Xi, -1, -2), -1) * c
    delta = _block_deltas(model, fields[..., :K], fields[..., K:], Gc, zeta)
    V[:, :K] += c * (np.swapaxes(delta, -1, -2) @ Xi)
    return V


def _overlap_increment(model: Committee, X0: np.ndarray, Y: np.ndarray, G: np.ndarray,
                       delta: np.ndarray, c: float) -> np.ndarray:
    """Change of the state vector (B, n_state) over a block, from its fields and Gram matrix.

    ``dR = c Delta^T Y``, ``dQ = c (Delta^T X_0 + X_0^T Delta) + c^2 Delta^T G Delta``.
    """
    iu = np.triu_indices(model.K)
    dT = np.swapaxes(delta, -1, -2)
    dR = c * (dT @ Y)
    DX = dT @ X0
    dQ = c * (DX + np.swapaxes(DX, -1, -2)) + c * c * (dT @ (G @ delta))
    return np.concatenate([dR.reshape(len(dR), -1), dQ[:, iu[0], iu[1]]], axis=-1)


def _factor(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``F`` with ``F F^T = S`` (columns of dropped eigenvalues zero) and the kept mask.

    ``S`` has shape (..., L, L); returns ``F`` (..., L, L) and ``keep`` (..., L).
    """
    lam, U = np.linalg.eigh(S)
    keep = lam > _RANK_TOL * np.maximum(lam[..., -1:], 1e-300)
    return U * np.sqrt(np.where(keep, lam, 0.0))[..., None, :], keep


def _state_vectors(model: Committee, V: np.ndarray, vw: np.ndarray | None = None) -> np.ndarray:
    """State vectors (B, n_state) from stacked weights V (B, K + M, N), students first, and trained ``vw`` (B, K)."""
    K = model.K
    J = V[:, :K]
    R = J @ np.swapaxes(V[:, K:], -1, -2)
    Q = J @ np.swapaxes(J, -1, -2)
    iu = np.triu_indices(K)
    parts = [R.reshape(len(V), -1), Q[:, iu[0], iu[1]]]
    if vw is not None:
        parts.append(vw)
    return np.concatenate(parts, axis=-1)


def _noise(model: Committee, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray | None:
    return model.noise * rng.standard_normal(shape) if model.noise > 0 else None


def _normals(gens: list[np.random.Generator], shape: tuple[int, ...]) -> np.ndarray:
    """Standard normals (len(gens), *shape), run r's from its own generator."""
    return np.stack([g.standard_normal(shape) for g in gens])


def _initial_weights(model: Committee, v0: np.ndarray, N: int, gens: list[np.random.Generator]) -> np.ndarray:
    """Weights (n, K + M, N) whose overlaps equal the state ``v0``, in a random frame per run."""
    F, _ = _factor(model.covariance(v0))  # (L, L), F F^T = [[Q, R], [R^T, T]]
    # A uniformly random orthonormal L-frame in R^N: QR of a Gaussian matrix,
    # with the signs fixed so the frame's law is rotation invariant.
    Z = _normals(gens, (N, model.L))
    E, upper = np.linalg.qr(Z)
    E = E * np.sign(np.diagonal(upper, axis1=-2, axis2=-1))[:, None, :]
    return F @ np.swapaxes(E, -1, -2)


def _run_microscopic(model: Committee, v0: np.ndarray, N: int, steps: np.ndarray, b: int, n_test: int,
                     seeds: list[np.random.SeedSequence]) -> tuple[np.ndarray, np.ndarray]:
    # One generator per run: a run's numbers do not depend on how runs are grouped.
    gens = [np.random.default_rng(s) for s in seeds]
    n, c = len(gens), model.eta / N
    V = _initial_weights(model, v0, N, gens)
    vw = np.repeat(v0[None, model.n_order:], n, axis=0) if model.train_second_layer else None
    plain = _plain(model)
    Xtest = _normals(gens, (n_test, N)) if n_test else None
    out = np.empty((n, len(steps), model.n_state))
    eg_test = np.full((n, len(steps)), np.nan)
    done = 0
    for j, target in enumerate(steps):
        while done < target:
            bb = min(b, target - done)
            Xi = _normals(gens, (bb, N))
            zeta = model.noise * _normals(gens, (bb,)) if model.noise > 0 else None
            if plain:
                _micro_block(model, V, Xi, zeta, c)
            else:
                nu = _normals(gens, (bb, model.M, N)) / math.sqrt(N) if model.drift > 0 else None
                vw = _micro_block_general(model, V, vw, Xi, zeta, _block_rates(model, done, bb, N), nu, N)
            done += bb
            _tick(n * bb)
        out[:, j] = _state_vectors(model, V, vw)
        if Xtest is not None:
            eg_test[:, j] = _test_error(model, Xtest @ np.swapaxes(V, -1, -2), vw)
    return out, eg_test


def _test_error(model: Committee, fields: np.ndarray, vw: np.ndarray | None = None) -> np.ndarray:
    """Mean of ``(sigma - tau)^2 / 2`` over test fields (n, n_test, L), noise free; ``vw`` (n, K) trained weights."""
    K = model.K
    gx, gy = model.activation.g(fields[..., :K]), model.teacher_activation.g(fields[..., K:])
    if model._soft:
        sigma, tau = gx.sum(axis=-1), gy.sum(axis=-1)
    else:
        v = model.student_weights if vw is None else vw[:, None, :]
        sigma, tau = (gx * v).sum(axis=-1), gy @ model.teacher_weights
    return 0.5 * np.mean((sigma - tau) ** 2, axis=-1)


def _bartlett(rng: np.random.Generator, dof: np.ndarray, b: int) -> np.ndarray:
    """Lower-triangular ``A`` (n, b, b) with ``A A^T ~ Wishart_b(dof, I)`` (Bartlett).

    ``A_tt^2 ~ chi^2(dof - t)``, ``A_st ~ N(0, 1)`` for ``s < t``; ``dof`` has
    shape (n,) and must be at least b.  ``A A^T`` is the Gram matrix of b
    standard Gaussian vectors in ``dof`` dimensions.
    """
    t = np.arange(b)
    A = np.tril(rng.standard_normal((len(dof), b, b)), -1)
    A[:, t, t] = np.sqrt(rng.chisquare(dof[:, None] - t))
    return A


def _run_reduced(model: Committee, v0: np.ndarray, N: int, steps: np.ndarray, b: int, n_test: int,
                 chunk: tuple[np.random.SeedSequence, int]) -> tuple[np.ndarray, np.ndarray]:
    # One generator for the chunk's n runs: each block is drawn in one call.
    seed, n = chunk
    rng = np.random.default_rng(seed)
    K, L, c = model.K, model.L, model.eta / N
    plain = _plain(model)
    eye = np.eye(L)
    v = np.repeat(v0[None, :], n, axis=0)
    T = np.repeat(np.asarray(model.T, dtype=float)[None], n, axis=0) if model.drift > 0 else None
    out = np.empty((n, len(steps), model.n_state))
    done = 0
    for j, target in enumerate(steps):
        while done < target:
            bb = min(b, target - done)
            alive = np.all(np.isfinite(v), axis=-1) & (np.abs(v).max(axis=-1) < _MAX_NORM)
            if T is not None:
                v_next, T = _reduced_block_drift(model, v, T, alive, rng, bb, _block_rates(model, done, bb, N), N)
                v = np.where(alive[:, None], v_next, np.nan)
                done += bb
                _tick(n * bb)
                continue
            S = np.where(alive[:, None, None], model.covariance(v), eye)
            F, keep = _factor(S)
            z = rng.standard_normal((n, bb, L)) * keep[:, None, :]
            fields = z @ np.swapaxes(F, -1, -2)  # (n, bb, L) = (x_0, y)
            A = _bartlett(rng, N - keep.sum(axis=-1), bb)
            G = z @ np.swapaxes(z, -1, -2) + A @ np.swapaxes(A, -1, -2)
            X0, Y = fields[..., :K], fields[..., K:]
            if plain:
                delta = _block_deltas(model, X0, Y, np.tril(G, -1) * c, _noise(model, rng, (n, bb)))
                v_next = v + _overlap_increment(model, X0, Y, G, delta, c)
            else:
                v_next = _reduced_block_general(model, v, X0, Y, G, _noise(model, rng, (n, bb)),
                                                _block_rates(model, done, bb, N))
            v = np.where(alive[:, None], v_next, np.nan)
            done += bb
            _tick(n * bb)
        out[:, j] = v
    return out, np.full((n, len(steps)), np.nan)


def _reduced_block_general(model: Committee, v: np.ndarray, X0: np.ndarray, Y: np.ndarray, G: np.ndarray,
                           zeta: np.ndarray | None, rates: dict[str, Any]) -> np.ndarray:
    """State vectors (n, n_state) after a block of the general model (no drift), from its fields and Gram matrix."""
    K, n0 = model.K, model.n_order
    vw = v[:, n0:] if model.train_second_layer else None
    delta, v_end = _block_general(model, X0, Y, G, zeta, vw, rates)
    U = delta * rates["u"][:, None]
    Ut = np.swapaxes(U, -1, -2)
    Pb = rates["Pb"]
    S = model.covariance(v)
    iu = np.triu_indices(K)
    R = Pb * S[:, :K, K:] + Ut @ Y
    UX = Ut @ X0
    Q = Pb * Pb * S[:, :K, :K] + Pb * (UX + np.swapaxes(UX, -1, -2)) + Ut @ (G @ U)
    parts = [R.reshape(len(v), -1), Q[:, iu[0], iu[1]]]
    if v_end is not None:
        parts.append(v_end)
    return np.concatenate(parts, axis=-1)


def _reduced_block_drift(model: Committee, v: np.ndarray, T: np.ndarray, alive: np.ndarray,
                         rng: np.random.Generator, b: int, rates: dict[str, Any],
                         N: int) -> tuple[np.ndarray, np.ndarray]:
    """A block of the chain under drift: state vectors (n, n_state) and teacher overlaps T (n, M, M) after it."""
    K, M, L = model.K, model.M, model.L
    n = len(v)
    S = model.covariance(v)
    S[:, K:, K:] = T
    S = np.where(alive[:, None, None], S, np.eye(L))
    F, keep = _factor(S)
    Ft = np.swapaxes(F, -1, -2)
    # span coordinates of the b inputs and of the b M teacher steps (nu_tm: row t M + m)
    z = rng.standard_normal((n, b, L)) * keep[:, None, :]
    w = rng.standard_normal((n, b * M, L)) * keep[:, None, :] / math.sqrt(N)
    fields, proj = z @ Ft, w @ Ft
    A = _bartlett(rng, N - keep.sum(axis=-1), b * (M + 1))
    scale = np.concatenate([np.ones(b), np.full(b * M, 1.0 / math.sqrt(N))])
    Zall = np.concatenate([z, w], axis=-2)
    Gall = Zall @ np.swapaxes(Zall, -1, -2) + scale[:, None] * (A @ np.swapaxes(A, -1, -2)) * scale[None, :]
    G = Gall[:, :b, :b]
    XN = Gall[:, :b, b:].reshape(n, b, b, M)  # xi_t . nu_sm
    NN = Gall[:, b:, b:].reshape(n, b, M, b, M)  # nu_tm . nu_t'm'
    JN = proj[..., :K].reshape(n, b, M, K)  # J_0i . nu_tm
    BN = proj[..., K:].reshape(n, b, M, M)  # B_0m' . nu_tm, indexed [t, m, m']
    X0, Y0 = fields[..., :K], fields[..., K:]
    d, sd = 1.0 - model.drift / N, math.sqrt(2.0 * model.drift / N)
    t = np.arange(b)
    Dm = np.tril(d ** np.maximum(t[:, None] - t[None, :] - 1, 0), -1)  # weight of nu_s in B_t, s < t
    Y = (d ** t)[:, None] * Y0 + sd * np.einsum("ts,btsm->btm", Dm, XN)
    vw = v[:, model.n_order:] if model.train_second_layer else None
    delta, v_end = _block_general(model, X0, Y, G, _noise(model, rng, (n, b)), vw, rates)
    U = delta * rates["u"][:, None]
    Ut = np.swapaxes(U, -1, -2)
    Pb = rates["Pb"]
    e = d ** (b - 1 - t)
    db = d**b
    XB = db * Y0 + sd * np.einsum("t,bstm->bsm", e, XN)  # xi_s . B_b
    R0, Q0 = S[:, :K, K:], S[:, :K, :K]
    R = Pb * (db * R0 + sd * np.swapaxes(np.einsum("t,btmi->bmi", e, JN), -1, -2)) + Ut @ XB
    UX = Ut @ X0
    Q = Pb * Pb * Q0 + Pb * (UX + np.swapaxes(UX, -1, -2)) + Ut @ (G @ U)
    BNe = np.einsum("t,btmk->bkm", e, BN)  # sum_t e_t B_0k . nu_tm, as [k, m]
    T_next = (db * db * T + db * sd * (BNe + np.swapaxes(BNe, -1, -2))
              + sd * sd * np.einsum("t,u,btmun->bmn", e, e, NN))
    iu = np.triu_indices(K)
    parts = [R.reshape(n, -1), Q[:, iu[0], iu[1]]]
    if v_end is not None:
        parts.append(v_end)
    return np.concatenate(parts, axis=-1), np.where(alive[:, None, None], T_next, np.nan)


_RUNNERS = {"microscopic": _run_microscopic, "reduced": _run_reduced}


# While simulate runs chunks in this process: called with the examples of each block (runs x steps),
# for the progress report (never set in worker processes).
_ON_BLOCK: Callable[[int], None] | None = None


def _tick(n_examples: int) -> None:
    if _ON_BLOCK is not None:
        _ON_BLOCK(n_examples)


def _run_chunk(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    level, *args = job
    with np.errstate(over="ignore", invalid="ignore"):
        return _RUNNERS[level](*args)


def _run_chunks(jobs: list, runs: list[int], steps: int, backend: Any, client: Any, n_workers: int | None,
                bar: Progress) -> list:
    """The chunks' results, with ``bar`` advanced by the runs done (block by block when in this process)."""
    global _ON_BLOCK
    serial = backend.kind == "serial"
    if serial:
        _ON_BLOCK = lambda k: bar.update(k / max(steps, 1))  # noqa: E731
    try:
        return parallel_map(_run_chunk, jobs, client=client, n_workers=n_workers, batch_size=1,
                            progress=None if serial else bar, weights=runs)
    finally:
        _ON_BLOCK = None
        bar.close()


def simulate(
    model: Committee,
    state0: State,
    N: int,
    alpha_max: float,
    *,
    n_runs: int = 1,
    seed: int = 0,
    level: str = "microscopic",
    n_points: int = 101,
    block: int | None = None,
    n_test: int = 0,
    n_workers: int | None = None,
    client: Any = None,
    progress: bool = True,
) -> xr.Dataset:
    """Simulate on-line SGD of the committee machine at finite input dimension N.

    Parameters
    ----------
    model : Committee
        Network, learning rate ``eta`` (or its schedule) and output noise
        (``model.noise`` > 0 adds ``zeta ~ N(0, noise^2)`` to every teacher
        output), second-layer weights (trained or fixed), weight decay and a
        drifting teacher.  ``model.second_order`` is
        irrelevant here: SGD is simulated exactly.
    state0 : State
        Initial order parameters ``(R, Q)`` (and ``v`` when the second layer
        is trained); ``[[Q, R], [R^T, T]]`` must be positive semidefinite.
        Microscopic weights are built with exactly these overlaps.
    N : int
        Input dimension, ``N > K + M``.
    alpha_max : float
        Final time ``alpha = mu / N``, ``> 0``; the run takes ``round(alpha_max N)`` steps.
    n_runs : int
        Independent runs (``>= 1``).
    seed : int
        Seed; the same arguments and seed give the same numbers, whatever
        ``n_workers`` or ``client``.
    level : {"microscopic", "reduced"}
        Simulate real N-dimensional vectors, or the exact Markov chain in
        ``(R, Q)`` (cost per step independent of N).
    n_points : int
        Samples on an even grid of ``[0, alpha_max]``, rounded to whole steps
        (``alpha = mu / N`` exactly).
    block : int, optional
        Examples per block (default :func:`block_size`; under drift the chain
        needs ``b (M + 1) <= N - K - M``).  Changes which random numbers are
        used, not the law of the result.
    n_test : int
        Microscopic only: size of a fixed test set of real inputs per run; if
        positive, the dataset gets ``eg_test(run, alpha)``, the empirical
        noise-free test error next to the closed-form ``eg``.
    n_workers, client :
        Spread chunks of runs over worker processes (``n_workers >= 2``) or a
        dask cluster (``client``, or the active dask client when ``n_workers``
        is not given); by default in this process (:func:`phasekit.core.parallel.parallel_map`).
    progress : bool
        Runs done and the estimated time left on stderr, once the simulation
        has taken a few seconds (:class:`phasekit.core.parallel.Progress`):
        block by block in this process, chunk by chunk of runs on workers.

    Returns
    -------
    xarray.Dataset
        As :func:`phasekit.integrate` with a leading ``run`` dimension:
        ``R(run, alpha, i, n)``, ``Q(run, alpha, i, k)``, ``v(run, alpha, i)``
        (trained second layer), ``eg(run, alpha)`` (closed form from the order
        parameters; under drift with ``T`` at its mean, the identity), optionally ``eg_test``;
        attrs ``level``, ``N``, ``n_runs``, ``seed``, ``block``, ``status``
        (``"ok"``, or ``"diverged"`` if any run's order parameters left
        ``|.| < 1e6``; the reduced chain fills such a run with NaN from then on)
        and ``n_diverged``.
    """
    full_model_only(model, "simulate (a microscopic network has K x N weights, not a subspace's order parameters)")
    model.validate_state(state0, "state0")
    if level not in LEVELS:
        raise ValueError(f"level: must be one of {LEVELS}, got {level!r}")
    if not isinstance(N, (int, np.integer)) or isinstance(N, bool) or N <= model.L:
        raise ValueError(f"N: input dimension must be an integer > K + M = {model.L}, got {N!r}")
    N = int(N)
    alpha_max = float(alpha_max)
    if not math.isfinite(alpha_max) or alpha_max <= 0:
        raise ValueError(f"alpha_max: must be finite and > 0, got {alpha_max!r}")
    if int(n_runs) != n_runs or n_runs < 1:
        raise ValueError(f"n_runs: must be an integer >= 1, got {n_runs!r}")
    if int(n_points) != n_points or n_points < 2:
        raise ValueError(f"n_points: need an integer >= 2, got {n_points!r}")
    if int(n_test) != n_test or n_test < 0:
        raise ValueError(f"n_test: must be an integer >= 0, got {n_test!r}")
    if n_test and level != "microscopic":
        raise ValueError("n_test: a test set needs real input vectors (level='microscopic'); use 0")
    # under drift the chain's block also holds b M teacher steps: b (M + 1) vectors outside span(J, B)
    per = model.M + 1 if (model.drift > 0 and level == "reduced") else 1
    b_max = (N - model.L) // per
    b_default = block_size(model, N) if per == 1 else min(block_size(model, N), _DRIFT_BLOCK)
    b = min(b_default, max(1, b_max)) if block is None else block
    if int(b) != b or not 1 <= b <= b_max:
        what = "(N - K - M) // (M + 1) under drift" if per > 1 else "N - K - M"
        raise ValueError(f"block: must be an integer in [1, {what}] = [1, {b_max}], got {block!r}")
    b, n_runs, n_test = int(b), int(n_runs), int(n_test)
    backend = choose_backend(client, n_workers)  # validates n_workers before any work

    steps = np.unique(np.rint(np.linspace(0.0, alpha_max, int(n_points)) * N).astype(np.int64))
    v0 = model.state_vector(state0, "state0")
    if level == "microscopic":
        # Per-run seeds, so chunks may follow the number of workers.
        workers = backend.n_workers
        per_chunk = max(1, min(_MICRO_CHUNK_FLOATS // ((b + n_test) * N), -(-n_runs // workers)))
        run_seeds = np.random.SeedSequence(seed).spawn(n_runs)
        chunks = [run_seeds[s:s + per_chunk] for s in range(0, n_runs, per_chunk)]
    else:
        # A generator per fixed-size chunk: the numbers depend on n_runs, not on workers.
        sizes = [min(_REDUCED_CHUNK_RUNS, n_runs - s) for s in range(0, n_runs, _REDUCED_CHUNK_RUNS)]
        chunks = [(ss, n) for ss, n in zip(np.random.SeedSequence(seed).spawn(len(sizes)), sizes)]
    jobs = [(level, model, v0, N, steps, b, n_test, chunk) for chunk in chunks]
    results = _run_chunks(jobs, [len(c) if level == "microscopic" else c[1] for c in chunks], int(steps[-1]),
                          backend, client, n_workers,
                          Progress(n_runs, enabled=progress, what=f"simulate ({level}, N = {N})", unit="runs"))
    Yv = np.concatenate([r[0] for r in results])
    settings = {"level": level, "N": N, "n_runs": n_runs, "seed": int(seed), "block": b,
                "n_test": n_test, "alpha_max": alpha_max}
    with np.errstate(invalid="ignore"):
        ds = trajectory_dataset(model, steps / N, Yv, settings=settings, extra_dims=("run",))
    ds = ds.assign_coords(run=("run", np.arange(n_runs), {"long_name": "run", "units": "1"}))
    if n_test:
        ds["eg_test"] = (("run", "alpha"), np.concatenate([r[1] for r in results]),
                         {"long_name": f"test-set error ({n_test} inputs)", "units": "1"})
    with np.errstate(invalid="ignore"):
        diverged = int(np.sum(~np.all(np.abs(Yv) < _MAX_NORM, axis=(1, 2))))
    ds.attrs.update(status="diverged" if diverged else "ok", n_diverged=diverged,
                    message=f"{diverged} of {n_runs} runs diverged" if diverged else "reached alpha_max")
    return ds


def align_teachers(ds: xr.Dataset, index: int = -1) -> xr.Dataset:
    """Relabel the teacher units of each run so that sample ``index`` has the largest trace of R.

    Runs that start near the symmetric subspace specialise to any permutation
    of the teachers; with ``T`` invariant under the permutation this is an
    exact symmetry, so relabelling makes runs comparable with each other and
    with the ODE.  Adds ``teacher_perm(run, n)`` (1-based labels used) and the
    attribute ``n_relabelled``.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`simulate` (needs ``K == M``).
    index : int
        The sample of ``alpha`` whose ``R`` decides the labels.
    """
    if "subspace" in ds.attrs:
        raise ValueError(f"ds: a reduced dataset ({ds.attrs['subspace']} subspace) has no teacher units to relabel "
                         "(its order parameters are invariant under permutations); align_teachers takes simulate's")
    R = ds["R"].values
    if R.shape[-1] != R.shape[-2]:
        raise ValueError(f"ds: teacher relabelling needs K == M, got K={R.shape[-2]}, M={R.shape[-1]}")
    T = np.array(json.loads(ds.attrs["model"])["T"])
    perms = np.stack([linear_sum_assignment(-np.nan_to_num(r[index], nan=0.0))[1] for r in R])
    for p in perms:
        if not np.allclose(T[np.ix_(p, p)], T):
            raise ValueError("ds: the teacher overlaps T are not invariant under the relabelling")
    out = ds.copy()
    out["R"] = (ds["R"].dims, np.take_along_axis(R, perms[:, None, None, :], axis=-1), ds["R"].attrs)
    out["teacher_perm"] = (("run", "n"), perms + 1, {"long_name": "teacher relabelled as n", "units": "1"})
    out.attrs["n_relabelled"] = int(np.sum(np.any(perms != np.arange(perms.shape[1]), axis=1)))
    return out
