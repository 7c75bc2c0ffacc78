"""Permutation symmetry of committee states.

A state invariant under permutations of the student units (and of the teacher
units, separately or together) has an equivariant Jacobian: only one column
per orbit of coordinates needs computing, and averaging over pair orbits makes
eigenvalues of different symmetry sectors cross exactly.  Also the basis of
the site-symmetric subspace ``R_in = R``, ``Q_ii = Q``, ``Q_ik = C``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .model import Committee


def _coordinate_permutation(K: int, M: int, sigma: Sequence[int], tau: Sequence[int],
                            second_layer: bool = False) -> np.ndarray:
    """Index map ``pi`` with ``P e_k = e_pi[k]`` for student permutation sigma, teacher permutation tau.

    ``second_layer``: the state vector ends with the students' weights ``v_i`` (they follow sigma).
    """
    idx_q = {}
    iu = np.triu_indices(K)
    for j, (a, b) in enumerate(zip(*iu)):
        idx_q[(int(a), int(b))] = K * M + j
    n0 = K * M + len(iu[0])
    pi = np.empty(n0 + (K if second_layer else 0), dtype=int)
    for i in range(K):
        for n in range(M):
            pi[i * M + n] = sigma[i] * M + tau[n]
    for (a, b), j in idx_q.items():
        x, y = sorted((sigma[a], sigma[b]))
        pi[j] = idx_q[(x, y)]
    if second_layer:
        pi[n0:] = n0 + np.asarray(sigma)
    return pi


def _perm_sending(size: int, targets: Sequence[int]) -> list[int]:
    """A permutation of ``range(size)`` sending 0 -> targets[0], 1 -> targets[1], ..."""
    perm = [-1] * size
    for a, b in enumerate(targets):
        perm[a] = b
    free = [x for x in range(size) if x not in targets]
    for a in range(len(targets), size):
        perm[a] = free.pop(0)
    return perm


def _swap(size: int, i: int) -> list[int]:
    p = list(range(size))
    p[i], p[i + 1] = p[i + 1], p[i]
    return p


@dataclass(frozen=True)
class _Symmetry:
    """For every coordinate j: a representative r[j] and a map pi_j with J[pi_j, j] = J[:, r[j]]."""

    reps: np.ndarray
    perms: np.ndarray  # (n, n)
    kind: str
    generators: tuple = ()  # coordinate maps of adjacent transpositions generating the group

    @property
    def representatives(self) -> np.ndarray:
        return np.unique(self.reps)

    def symmetrise(self, J: np.ndarray) -> np.ndarray:
        """Average ``J`` over the group: ``J[a, b]`` becomes the mean over the orbit of ``(a, b)``.

        Equivariance ``P J P^T = J`` then holds to rounding, so eigenvalues of
        different symmetry sectors cross exactly instead of repelling at the
        square root of the numerical error.  Rows may stack several state-shaped blocks.
        """
        n = self.perms.shape[0]
        m = J.shape[0]
        rows = np.arange(m)
        labels = np.arange(m * n).reshape(m, n)
        maps = []
        for g in self.generators:
            g_rows = np.concatenate([g + b * n for b in range(m // n)])
            maps.append((g_rows, g))
        # label propagation to the smallest index of each pair orbit (pairs (a, b) -> (g a, g b))
        while True:
            old = labels.copy()
            for g_rows, g in maps:
                img = np.empty_like(labels)
                img[g_rows[:, None], g[None, :]] = labels[rows[:, None], np.arange(n)[None, :]]
                labels = np.minimum(labels, img)
                back = labels[g_rows[:, None], g[None, :]]
                labels = np.minimum(labels, back)
            if np.array_equal(labels, old):
                break
        flat = labels.ravel()
        sums = np.bincount(flat, weights=J.ravel(), minlength=m * n)
        counts = np.bincount(flat, minlength=m * n)
        return (sums[flat] / counts[flat]).reshape(m, n)


def _state_symmetry(model: Committee, v: np.ndarray, tol: float = 1e-12) -> _Symmetry | None:
    """Detect invariance of ``v`` under all unit permutations (separate or simultaneous).

    The model must be invariant too: ``T``, the teacher's weights and fixed
    student weights are permuted along (trained weights are part of ``v``).
    """
    K, M = model.K, model.M
    n = model.n_state
    T = model.T
    tw = model.teacher_weights
    sw = None if model.train_second_layer else model.student_weights
    trained = model.train_second_layer
    scale = max(1.0, float(np.abs(v).max()))

    def invariant(pi: np.ndarray, sigma: Sequence[int], tau: Sequence[int]) -> bool:
        w = np.empty_like(v)
        w[pi] = v
        Tp = T[np.ix_(tau, tau)]
        same_weights = np.array_equal(tw[list(tau)], tw) and (sw is None or np.array_equal(sw[list(sigma)], sw))
        return bool(same_weights and np.abs(w - v).max() <= tol * scale and np.abs(Tp - T).max() <= tol)

    def build(kind: str) -> _Symmetry | None:
        reps = np.empty(n, dtype=int)
        perms = np.empty((n, n), dtype=int)
        iu = np.triu_indices(K)
        coords = [("R", i, m) for i in range(K) for m in range(M)] + [("Q", int(a), int(b)) for a, b in zip(*iu)]
        if trained:
            coords += [("v", i, 0) for i in range(K)]
        index = {c: j for j, c in enumerate(coords)}
        for j, (typ, a, b) in enumerate(coords):
            if typ == "v":
                rep, sigma = ("v", 0, 0), _perm_sending(K, [a])
                tau = list(range(M)) if kind == "separate" else sigma
            elif kind == "separate":
                if typ == "R":
                    rep, sigma, tau = ("R", 0, 0), _perm_sending(K, [a]), _perm_sending(M, [b])
                elif a == b:
                    rep, sigma, tau = ("Q", 0, 0), _perm_sending(K, [a]), list(range(M))
                else:
                    rep, sigma, tau = ("Q", 0, 1), _perm_sending(K, [a, b]), list(range(M))
            else:  # simultaneous permutation of students and teachers (K == M)
                if typ == "R" and a == b:
                    rep, sigma = ("R", 0, 0), _perm_sending(K, [a])
                elif typ == "R":
                    rep, sigma = ("R", 0, 1), _perm_sending(K, [a, b])
                elif a == b:
                    rep, sigma = ("Q", 0, 0), _perm_sending(K, [a])
                else:
                    rep, sigma = ("Q", 0, 1), _perm_sending(K, [a, b])
                tau = sigma
            pi = _coordinate_permutation(K, M, sigma, tau, trained)
            if not invariant(pi, sigma, tau):
                return None
            reps[j] = index[rep]
            perms[j] = pi
        if kind == "separate":
            gens = [(_swap(K, i), list(range(M))) for i in range(K - 1)]
            gens += [(list(range(K)), _swap(M, a)) for a in range(M - 1)]
        else:
            gens = [(_swap(K, i), _swap(K, i)) for i in range(K - 1)]
        generators = tuple(_coordinate_permutation(K, M, sg, tg, trained) for sg, tg in gens)
        return _Symmetry(reps, perms, kind, generators)

    if K * M == 1:
        return None
    sym = build("separate")
    if sym is None and K == M:
        sym = build("simultaneous")
    if sym is not None and len(sym.representatives) >= n:
        return None
    return sym


def _symmetric_basis(K: int, M: int, second_layer: bool = False) -> np.ndarray:
    """Columns spanning the site-symmetric subspace (R_in = R, Q_ii = Q, Q_ik = C[, v_i = v]).

    ``second_layer``: the state vector ends with trained weights ``v_i``, all equal there.
    """
    n = K * M + K * (K + 1) // 2 + (K if second_layer else 0)
    n0 = K * M + K * (K + 1) // 2
    cols = [np.r_[np.ones(K * M), np.zeros(n - K * M)]]
    iu = np.triu_indices(K)
    diag = np.zeros(n)
    diag[K * M:n0] = (iu[0] == iu[1])
    cols.append(diag)
    if K > 1:
        off = np.zeros(n)
        off[K * M:n0] = (iu[0] != iu[1])
        cols.append(off)
    if second_layer:
        vcol = np.zeros(n)
        vcol[n0:] = 1.0
        cols.append(vcol)
    return np.stack(cols, axis=1)
