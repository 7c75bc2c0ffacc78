"""Shared cases and independent references for the committee-machine tests (not collected)."""

import math

import numpy as np

import phasekit as pk
from phasekit.committee.model import Committee
from phasekit.core.quadrature import psd_factor

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


# The last commit whose committee machine had fixed unit second layers, a constant eta and a
# fixed teacher: with every new option at its default, the flow and eps_g must equal its own.
SOFT_COMMITTEE_COMMIT = "0c6e36086ab6c88a0ffead13fa3bc38cd52ca3af"


def soft_committee_reference():
    """The model module of :data:`SOFT_COMMITTEE_COMMIT` (with its own eg module), or skip the test.

    Needs the git history of the repository (a source tree without it skips).
    """
    import subprocess
    import sys
    import types
    from pathlib import Path

    import pytest

    name = "phasekit.committee._soft_reference_model"
    if name in sys.modules:
        return sys.modules[name]
    root = Path(__file__).resolve().parents[1]
    sources = {}
    for part in ("model", "eg"):
        try:
            sources[part] = subprocess.run(
                ["git", "-C", str(root), "show", f"{SOFT_COMMITTEE_COMMIT}:phasekit/committee/{part}.py"],
                check=True, capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError):
            pytest.skip("the reference commit of the soft committee machine is not available (no git history)")
    eg = types.ModuleType("phasekit.committee._soft_reference_eg")
    eg.__package__ = "phasekit.committee"
    exec(compile(sources["eg"], "reference eg.py", "exec"), eg.__dict__)
    sys.modules[eg.__name__] = eg
    mod = types.ModuleType(name)
    mod.__package__ = "phasekit.committee"
    code = sources["model"].replace("from .eg import", "from ._soft_reference_eg import")
    exec(compile(code, "reference model.py", "exec"), mod.__dict__)
    sys.modules[name] = mod
    return mod


def mc_increment(model, state, n_samples, seed, alpha=0.0, N=100_000, chunks=10):
    """``N`` times the expected SGD increment of ``(R, Q[, v])`` per example, by sampling, and its standard error.

    An independent route to ``model.rhs``: draws the fields ``(x, y)`` with the
    covariance of ``state``, ``|xi|^2`` (its part in the span of the fields plus
    an independent chi-square) and the overlaps of the drift steps ``nu_n`` with
    ``J_i`` and ``xi``, and applies the microscopic rule at finite ``N``:

        J_i' = (1 - eta lambda/N) J_i + (eta/N) v_i (tau - sigma) g'(x_i) xi
        B_n' = (1 - delta/N) B_n + sqrt(2 delta/N) nu_n,   nu_n ~ N(0, I/N)
        v_i' = v_i + (eta_v/N) g(x_i) (tau - sigma)          (trained second layer)

    with ``eta = eta(alpha)``.  A first-order model drops the ``|xi|^2 / N^2`` term
    of ``Q'``.  The bias is ``O(1/N)``.  Returns ``(mean, se)`` in the layout of the
    model's state vector.
    """
    K, M = model.K, model.M
    S = model.covariance(state)
    P = psd_factor(S)
    Sinv = np.linalg.pinv(S)
    Q, R = S[:K, :K], S[:K, K:]
    LQ = np.linalg.cholesky(Q)
    Qinv = np.linalg.inv(Q)
    rank = np.linalg.matrix_rank(S)
    v = state.v if model.train_second_layer else model.student_weights
    w = model.teacher_weights
    eta = float(model.eta_at(alpha))
    eta_v = model.eta_v * eta / model.eta
    lam, delta = model.weight_decay, model.drift
    ga, gt = model.activation, model.teacher_activation
    rng = np.random.default_rng(seed)
    iu = np.triu_indices(K)
    acc = None
    n = n_samples // chunks
    e = 1.0 / N
    for _ in range(chunks):
        f = rng.standard_normal((n, K + M)) @ P.T
        x, y = f[:, :K], f[:, K:]
        xi2 = np.einsum("bu,uw,bw->b", f, Sinv, f) + rng.chisquare(N - rank, n)
        tau = gt.g(y) @ w + (model.noise * rng.standard_normal(n) if model.noise else 0.0)
        err = tau - ga.g(x) @ v
        d = v * err[:, None] * ga.dg(x)  # (n, K)
        # drift: J_i . nu_n (K x M, covariance Q/N per n) and xi . nu_n
        Jnu = np.einsum("ik,bkm->bim", LQ, rng.standard_normal((n, K, M))) / np.sqrt(N)
        a = x @ Qinv  # xi = sum_i a_i J_i + (part orthogonal to the J's)
        perp = np.maximum(xi2 - np.einsum("bi,bi->b", a, x), 0.0)
        xinu = np.einsum("bi,bim->bm", a, Jnu) + np.sqrt(perp / N)[:, None] * rng.standard_normal((n, M))
        c = 1 - eta * lam * e
        s2 = np.sqrt(2 * delta * e)
        Rn = (c * (1 - delta * e) * R[None] + c * s2 * Jnu
              + eta * e * d[:, :, None] * ((1 - delta * e) * y[:, None, :] + s2 * xinu[:, None, :]))
        dx = d[:, :, None] * x[:, None, :]
        Qn = c * c * Q[None] + c * eta * e * (dx + np.swapaxes(dx, 1, 2))
        if model.second_order:
            Qn = Qn + (eta * e) ** 2 * d[:, :, None] * d[:, None, :] * xi2[:, None, None]
        parts = [N * (Rn - R[None]).reshape(n, -1), N * (Qn - Q[None])[:, iu[0], iu[1]]]
        if model.train_second_layer:
            parts.append(eta_v * ga.g(x) * err[:, None])
        samples = np.concatenate(parts, axis=1)
        part = np.stack([samples.sum(0), (samples**2).sum(0)])
        acc = part if acc is None else acc + part
    total = n * chunks
    mean = acc[0] / total
    se = np.sqrt(np.maximum(acc[1] / total - mean**2, 0.0) / total)
    return mean, se
