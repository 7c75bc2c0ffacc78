"""A trained deep linear network, to check the mode dynamics."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..core.datasets import coordinate, provenance_attrs, variable
from .modes import Array, _as_modes, _check_depth, mode_strength

__all__ = ['simulate_deep_linear']


def _random_orthogonal(n: int, rng: np.random.Generator) -> Array:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def simulate_deep_linear(
    singular_values: Any,
    *,
    depth: int = 2,
    hidden: int = 8,
    n_in: int = 8,
    n_out: int = 6,
    n_samples: int = 64,
    u0: Any = 1e-3,
    weight_decay: float = 0.0,
    learning_rate: float = 0.01,
    t_max: float = 10.0,
    n_records: int = 201,
    seed: int = 0,
) -> xr.Dataset:
    """Train an actual deep linear network by full-batch gradient descent.

    Whitened inputs ``X`` (``n_in x n_samples``, ``X X^T / n_samples = I``
    exactly), targets ``Y = U S V^T X`` with random orthogonal ``U, V``; weights
    ``W_1 (hidden x n_in), ..., W_k (n_out x hidden)`` start balanced and aligned
    with the modes (random orthogonal hidden-layer rotations ``R_i``), and descend
    ``L = |Y - W X|^2 / (2 n_samples) + (lambda/2) sum |W_i|^2`` with step
    ``learning_rate`` (time ``t`` = steps x ``learning_rate``, ``tau = 1``).  Euler
    steps deviate from the gradient flow by ``O(learning_rate)``.

    Parameters
    ----------
    singular_values : array_like, shape (n_modes,)
        ``n_modes <= min(n_in, n_out, hidden)``.
    depth : int
        Number of weight matrices ``k >= 1`` (``hidden`` unused for ``k = 1``).
    u0 : float or array_like
        Initial mode strengths ``> 0``.
    weight_decay, learning_rate, t_max : float
    n_records : int
        Number of recorded times (evenly spaced in ``[0, t_max]``, on steps).
    seed : int

    Returns
    -------
    xarray.Dataset
        ``u_sim(mode, time)`` = ``u_alpha^T W v_alpha``, ``u_theory(mode, time)``
        (:func:`mode_strength`), ``offdiag(time)`` (Frobenius norm of the
        off-diagonal part of ``U^T W V``), ``loss(time)``, ``singular_value(mode)``.
    """
    k = _check_depth(depth)
    sv, u0 = _as_modes(singular_values, u0)
    m = sv.size
    for name, val in (("hidden", hidden), ("n_in", n_in), ("n_out", n_out), ("n_samples", n_samples),
                      ("n_records", n_records)):
        if not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name}: must be a positive integer, got {val!r}")
    if m > min(n_in, n_out, hidden if k > 1 else n_in):
        raise ValueError(f"singular_values: at most min(n_in, n_out, hidden) modes, got {m}")
    if n_samples < n_in:
        raise ValueError(f"n_samples: need at least n_in = {n_in} samples to whiten, got {n_samples}")
    if np.any(u0 <= 0):
        raise ValueError(f"u0: initial strengths must be > 0, got {u0!r}")
    lr, lam = float(learning_rate), float(weight_decay)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"learning_rate: must be > 0, got {learning_rate!r}")
    if not (np.isfinite(lam) and lam >= 0):
        raise ValueError(f"weight_decay: must be >= 0, got {weight_decay!r}")
    if not (np.isfinite(t_max) and t_max > 0):
        raise ValueError(f"t_max: must be > 0, got {t_max!r}")

    rng = np.random.default_rng(seed)
    U = _random_orthogonal(n_out, rng)
    V = _random_orthogonal(n_in, rng)
    Q, _ = np.linalg.qr(rng.standard_normal((n_samples, n_in)))
    X = np.sqrt(n_samples) * Q.T                          # X X^T / P = I
    sigma_yx = U[:, :m] @ np.diag(sv) @ V[:, :m].T
    Y = sigma_yx @ X

    a0 = u0 ** (1.0 / k)
    if k == 1:
        Ws = [U[:, :m] @ np.diag(a0) @ V[:, :m].T]
    else:
        R = [_random_orthogonal(hidden, rng) for _ in range(k - 1)]
        Ws = [R[0][:, :m] @ np.diag(a0) @ V[:, :m].T]
        for i in range(1, k - 1):
            Ws.append(R[i][:, :m] @ np.diag(a0) @ R[i - 1][:, :m].T)
        Ws.append(U[:, :m] @ np.diag(a0) @ R[-1][:, :m].T)

    n_steps = int(round(t_max / lr))
    record_steps = np.unique(np.round(np.linspace(0, n_steps, n_records)).astype(int))
    times = record_steps * lr
    u_sim = np.empty((m, record_steps.size))
    offdiag = np.empty(record_steps.size)
    loss = np.empty(record_steps.size)

    def product(mats: list[Array], n: int) -> Array:
        out = np.eye(n)
        for Wm in mats:
            out = Wm @ out
        return out

    rec = 0
    for step in range(n_steps + 1):
        W = product(Ws, n_in)
        E = Y - W @ X
        if step == record_steps[rec]:
            M = U.T @ W @ V
            u_sim[:, rec] = np.diag(M)[:m]
            off = M.copy()
            np.fill_diagonal(off, 0.0)
            offdiag[rec] = np.linalg.norm(off)
            loss[rec] = 0.5 * np.sum(E * E) / n_samples + 0.5 * lam * sum(np.sum(w * w) for w in Ws)
            rec += 1
            if rec == record_steps.size:
                break
        G = E @ X.T / n_samples                           # -dL/dW (data term)
        grads = []
        for i in range(k):
            above = product(Ws[i + 1:], Ws[i].shape[0])   # W_k ... W_{i+1}
            below = product(Ws[:i], n_in)                 # W_{i-1} ... W_1
            grads.append(above.T @ G @ below.T - lam * Ws[i])
        Ws = [Wi + lr * Gi for Wi, Gi in zip(Ws, grads)]

    u_th = np.stack([mode_strength(times, s, a, depth=k, weight_decay=lam) for s, a in zip(sv, u0)])
    params = {"singular_values": sv, "u0": u0, "depth": k, "hidden": hidden, "n_in": n_in,
              "n_out": n_out, "n_samples": n_samples, "weight_decay": lam,
              "learning_rate": lr, "t_max": float(t_max), "seed": seed}
    return xr.Dataset(
        {
            "u_sim": variable("u_sim", ("mode", "time"), u_sim),
            "u_theory": variable("u_theory", ("mode", "time"), u_th),
            "offdiag": variable("offdiag", "time", offdiag),
            "loss": variable("loss", "time", loss, long_name="training loss"),
            "singular_value": variable("singular_value", "mode", sv),
        },
        coords={"mode": coordinate("mode", np.arange(m)), "time": coordinate("time", times)},
        attrs=provenance_attrs(params, kind="deep_linear_simulation", depth=k,
                               weight_decay=lam, learning_rate=lr),
    )
