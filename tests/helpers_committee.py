"""Shared cases and independent references for the committee-machine tests (not collected)."""

import math

import numpy as np

import phasekit as pk
from phasekit.committee.model import Committee

# Exact Jacobian of the ReLU perceptron at (R, Q) = (1, 1): J(eta) = eta A + eta^2 B,
# eigenvalues -eta/2 (eigenvector (1/2, 1)) and eta^2/2 - eta (eigenvector (0, 1)).
A_PERCEPTRON = np.array([[-0.5, 0.0], [1.0, -1.0]])
B_PERCEPTRON = np.array([[0.0, 0.0], [-1.0, 0.5]])


def generic_state(K, M, seed):
    """A random state strictly inside the cone with T = identity."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(K + M, K + M + 2))
    S = A @ A.T / (K + M + 2)
    # rescale the teacher block to identity while keeping S positive definite
    Lt = np.linalg.cholesky(S[K:, K:])
    W = np.eye(K + M)
    W[K:, K:] = np.linalg.inv(Lt)
    S = W @ S @ W.T
    return pk.State(S[:K, K:], S[:K, :K])


def interior_vector(rng, K, M):
    """A state vector inside the cone from random student vectors."""
    A = rng.normal(scale=0.5, size=(K, M))
    W = rng.normal(scale=0.5, size=(K, K + 1))
    return np.concatenate([A.ravel(), (A @ A.T + W @ W.T / (K + 1))[np.triu_indices(K)]])


class Counting(Committee):
    """A committee that counts right-hand-side evaluations (rows) and calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = 0
        self.calls = 0

    def rhs_vector(self, v):
        v = np.asarray(v, dtype=float)
        self.rows += int(np.prod(v.shape[:-1]))
        self.calls += 1
        return super().rhs_vector(v)


def saad_solla(K):
    """Erf plateau (R, Q = C), its eps_g and escape eigenvalue per unit eta alpha (published closed forms)."""
    R = 1 / math.sqrt(K * (2 * K - 1))
    Q = 1 / (2 * K - 1)
    eg = (K / math.pi) * (math.pi / 6 - K * math.asin(1 / (2 * K)))
    lam = 2 * K / (math.pi * math.sqrt(2 * K - 1) * (2 * K + 1) ** 1.5)
    return R, Q, eg, lam


def erf_plateau(model):
    """The erf plateau from the closed form, linearised by the fixed-point module."""
    from phasekit.committee.linearisation import linearise

    K = model.K
    R, Q, _, _ = saad_solla(K)
    return linearise(model, pk.State(np.full((K, K), R), np.full((K, K), Q)), label="symmetric_plateau")


def linear_perceptron_eg(eg0, eta, alpha, noise=0.0, second_order=True):
    """Linear K = M = 1: d eg/d alpha = -(2 eta - s eta^2) eg + s eta^2 sigma^2 / 2 (s = 1 second order)."""
    s = 1.0 if second_order else 0.0
    rate = 2 * eta - s * eta**2
    star = s * eta**2 * noise**2 / (2 * rate)
    return star + (eg0 - star) * np.exp(-rate * alpha)


# --- the erf flow in mpmath (Saad & Solla's closed forms, g(x) = erf(x / sqrt 2)) --------------------


def mp_flow_parts(mp, v, K, M):
    """(first-order part, eta^2 part) of d state / d alpha at eta = 1, T = identity, state order of vector_labels."""
    pi = mp.pi
    L = K + M
    C = [[mp.mpf(0)] * L for _ in range(L)]
    for i in range(K):
        for n in range(M):
            C[i][K + n] = C[K + n][i] = v[i * M + n]
    j = K * M
    for i in range(K):
        for k in range(i, K):
            C[i][k] = C[k][i] = v[j]
            j += 1
    for n in range(M):
        C[K + n][K + n] = mp.mpf(1)

    def I3(a, b, c):  # < g'(x_a) x_b g(x_c) >
        return 2 / pi * (C[b][c] * (1 + C[a][a]) - C[a][b] * C[a][c]) / (
            (1 + C[a][a]) * mp.sqrt((1 + C[a][a]) * (1 + C[c][c]) - C[a][c] ** 2))

    def I4(a, b, c, d):  # < g'(x_a) g'(x_b) g(x_c) g(x_d) >
        l4 = (1 + C[a][a]) * (1 + C[b][b]) - C[a][b] ** 2
        l0 = (l4 * C[c][d] - C[b][c] * C[b][d] * (1 + C[a][a]) - C[a][c] * C[a][d] * (1 + C[b][b])
              + C[a][b] * C[a][c] * C[b][d] + C[a][b] * C[a][d] * C[b][c])
        l1 = l4 * (1 + C[c][c]) - C[b][c] ** 2 * (1 + C[a][a]) - C[a][c] ** 2 * (1 + C[b][b]) \
            + 2 * C[a][b] * C[a][c] * C[b][c]
        l2 = l4 * (1 + C[d][d]) - C[b][d] ** 2 * (1 + C[a][a]) - C[a][d] ** 2 * (1 + C[b][b]) \
            + 2 * C[a][b] * C[a][d] * C[b][d]
        return 4 / pi ** 2 / mp.sqrt(l4) * mp.asin(l0 / mp.sqrt(l1 * l2))

    s = [-1] * K + [1] * M
    first = [sum(s[u] * I3(i, K + n, u) for u in range(L)) for i in range(K) for n in range(M)]
    second = [mp.mpf(0)] * (K * M)
    for i in range(K):
        for k in range(i, K):
            first.append(sum(s[u] * (I3(i, k, u) + I3(k, i, u)) for u in range(L)))
            second.append(sum(s[u] * s[w] * I4(i, k, u, w) for u in range(L) for w in range(L)))
    return first, second


def mp_pencil(mp, v, K, M):
    """A and B of J(eta) = eta A + eta^2 B by central differences at mpmath precision (error ~ h^2)."""
    n = len(v)
    A, B = mp.matrix(n, n), mp.matrix(n, n)
    h = mp.mpf(10) ** (-(mp.mp.dps // 3))
    for j in range(n):
        vp, vm = list(v), list(v)
        vp[j] += h
        vm[j] -= h
        (ap, bp), (am, bm) = mp_flow_parts(mp, vp, K, M), mp_flow_parts(mp, vm, K, M)
        for r in range(n):
            A[r, j] = (ap[r] - am[r]) / (2 * h)
            B[r, j] = (bp[r] - bm[r]) / (2 * h)
    return A, B


def mp_secant(mp, f, x0, x1, tol):
    f0, f1 = f(x0), f(x1)
    for _ in range(12):
        x0, f0, x1 = x1, f1, x1 - f1 * (x1 - x0) / (f1 - f0)
        f1 = f(x1)
        if abs(x1 - x0) <= tol * abs(x1):
            break
    return x1


def perfect_vector(mp, K):
    v = [mp.mpf(1 if i == n else 0) for i in range(K) for n in range(K)]
    return v + [mp.mpf(1 if i == k else 0) for i in range(K) for k in range(i, K)]
