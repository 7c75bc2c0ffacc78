"""The teacher-student soft committee machine: ``Committee``, ``State`` and the order-parameter flow.

Notation: K student units (fields ``x_i``), M teacher units (fields ``y_n``),
order parameters ``R_in = J_i . B_n``, ``Q_ik = J_i . J_k``, ``T_nm = B_n . B_m``,
time ``alpha = mu / N``.  All K + M fields are stacked as ``(x_1..x_K, y_1..y_M)``
with covariance ``Sigma = [[Q, R], [R^T, T]]`` and signs ``s_u = -1`` (student),
``+1`` (teacher).

The right-hand side uses Stein's lemma on the linear argument of I3,
``I3(x_i, v, u) = Sigma_iv H2(x_i, u) + Sigma_vu J2(x_i, u)``, so the whole
first-order flow is two K x (K+M) tables of 2-D expectations and two small
matrix products:

    A_iv = Sigma_iv h_i + sum_u J2_iu s_u Sigma_uv,   h_i = sum_u s_u H2_iu,
    dR/dalpha = eta A[:, teachers],   dQ/dalpha = eta (A[:, students] + A^T) + eta^2 (...).

The eta^2 term evaluates I4 once per distinct block, using its symmetries in
(i, k) and (u, w): ``K(K+1)/2 x L(L+1)/2`` blocks, contracted with the weights
``s_u s_w`` (doubled off the diagonal).
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..core.activations import (
    _LINEAR,
    Activation,
    expect_H2,
    expect_I2,
    expect_I4,
    expect_J2,
)
from ..core.activations import activation as _lookup_activation
from .eg import _EG_CANCEL, _eg_linear, _eg_matched, _eg_nodes, _matching

__all__ = ['Committee', 'State', 'committee_from_parameters', 'vector_labels']


# I4 blocks evaluated per chunk: keeps temporaries in cache and memory bounded.
_I4_CHUNK = 1 << 15


# Up to this many I4 blocks, gather all entries contiguously instead of broadcasting.
_I4_FULL_GATHER = 1 << 12


# Relative tolerance for "inside the positive-semidefinite cone".
PSD_TOL = 1e-9


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _real(x: Any, name: str, what: str) -> float:
    """``x`` as a float if it is a real number (not a bool or a string), else ``ValueError``."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x[()]
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (numbers.Real, np.integer, np.floating)):
        raise ValueError(f"{name}: {what} must be a real number, got {type(x).__name__} {x!r}")
    return float(x)


def _numeric_matrix(x: Any, name: str) -> np.ndarray:
    """``x`` as a float array, refusing strings, booleans, complex numbers and objects."""
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{name}: must hold real numbers, got an array of dtype {a.dtype}")
    return np.array(a, dtype=float)


@dataclass(frozen=True, eq=False)
class State:
    """Order parameters of a committee machine.

    Parameters
    ----------
    R : array_like, shape (K, M)
        Student-teacher overlaps ``R_in = J_i . B_n``.
    Q : array_like, shape (K, K)
        Student-student overlaps ``Q_ik = J_i . J_k`` (symmetric).
    """

    R: np.ndarray
    Q: np.ndarray

    def __post_init__(self) -> None:
        R = np.array(_numeric_matrix(self.R, "R"), ndmin=2)
        Q = np.array(_numeric_matrix(self.Q, "Q"), ndmin=2)
        if R.ndim != 2:
            raise ValueError(f"R: must be a (K, M) matrix, got shape {R.shape}")
        if Q.shape != (R.shape[0], R.shape[0]):
            raise ValueError(f"Q: must be a ({R.shape[0]}, {R.shape[0]}) matrix to match R, got {Q.shape}")
        for name, a in (("R", R), ("Q", Q)):
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name}: entries must be finite")
        if not np.allclose(Q, Q.T, rtol=0, atol=1e-12 * max(1.0, float(np.abs(Q).max(initial=0)))):
            raise ValueError("Q: must be symmetric")
        R.setflags(write=False)
        Q = 0.5 * (Q + Q.T)
        Q.setflags(write=False)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "Q", Q)

    @property
    def K(self) -> int:
        return self.R.shape[0]

    @property
    def M(self) -> int:
        return self.R.shape[1]

    def to_vector(self) -> np.ndarray:
        """State vector ``(R row-major, upper triangle of Q row-major)``, length ``KM + K(K+1)/2``."""
        iu = np.triu_indices(self.K)
        return np.concatenate([self.R.ravel(), self.Q[iu]])

    @classmethod
    def from_vector(cls, v: np.ndarray, K: int, M: int) -> "State":
        """Inverse of :meth:`to_vector`."""
        v = np.asarray(v, dtype=float)
        n = K * M + K * (K + 1) // 2
        if v.shape != (n,):
            raise ValueError(f"v: expected a vector of length {n} for K={K}, M={M}, got shape {v.shape}")
        R = v[: K * M].reshape(K, M)
        Q = np.zeros((K, K))
        iu = np.triu_indices(K)
        Q[iu] = v[K * M:]
        Q = Q + np.triu(Q, 1).T
        return cls(R, Q)

    def __repr__(self) -> str:
        return f"State(R={self.R.tolist()}, Q={self.Q.tolist()})"


def vector_labels(K: int, M: int) -> list[str]:
    """Names of the state-vector components, e.g. ``R12`` or ``Q11`` (1-based)."""
    labels = [f"R{i + 1},{n + 1}" if max(K, M) > 9 else f"R{i + 1}{n + 1}" for i in range(K) for n in range(M)]
    for i, k in zip(*np.triu_indices(K)):
        labels.append(f"Q{i + 1},{k + 1}" if K > 9 else f"Q{i + 1}{k + 1}")
    return labels


class Committee:
    """Teacher-student soft committee machine trained by on-line SGD.

    Parameters
    ----------
    K, M : int
        Student and teacher hidden units, ``>= 1``.
    activation : str or Activation
        Registered activation of the student (and teacher unless
        ``teacher_activation`` is given).
    eta : float
        Learning rate, ``> 0``.
    second_order : bool
        Keep the ``eta^2`` term (exact for on-line SGD).  ``False`` gives the
        small-eta limit in which time is naturally measured in ``eta * alpha``.
    noise : float
        Standard deviation ``sigma >= 0`` of Gaussian output noise on the teacher.
    T : array_like, shape (M, M), optional
        Teacher overlaps, symmetric positive definite; default identity.
    teacher_activation : str or Activation, optional
        Teacher's activation when it differs from the student's.
    """

    def __init__(
        self,
        K: int,
        M: int,
        activation: str | Activation = "relu",
        eta: float = 0.1,
        second_order: bool = True,
        noise: float = 0.0,
        T: np.ndarray | None = None,
        teacher_activation: str | Activation | None = None,
    ) -> None:
        if not _is_int(K) or K < 1:
            raise ValueError(f"K: number of student units must be an integer >= 1, got {K!r}")
        if not _is_int(M) or M < 1:
            raise ValueError(f"M: number of teacher units must be an integer >= 1, got {M!r}")
        eta = _real(eta, "eta", "learning rate")
        if not np.isfinite(eta) or eta <= 0:
            raise ValueError(f"eta: learning rate must be finite and > 0, got {eta!r}")
        noise = _real(noise, "noise", "output-noise standard deviation")
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise: output-noise standard deviation must be >= 0, got {noise!r}")
        if not isinstance(second_order, (bool, np.bool_)):
            raise ValueError(f"second_order: must be True or False, got {type(second_order).__name__} "
                             f"{second_order!r}")
        if T is None:
            T = np.eye(M)
        T = _numeric_matrix(T, "T")
        if T.shape != (M, M):
            raise ValueError(f"T: must be an ({M}, {M}) matrix, got shape {T.shape}")
        if not np.all(np.isfinite(T)) or not np.allclose(T, T.T, rtol=0, atol=1e-12):
            raise ValueError("T: must be a finite symmetric matrix")
        # Exactly symmetric: the field covariance is assembled from T as given.
        T = 0.5 * (T + T.T)
        lam_min = float(np.linalg.eigvalsh(T)[0])
        if lam_min <= 0:
            raise ValueError(f"T: must be positive definite (smallest eigenvalue {lam_min:.3g} <= 0)")
        self.K = int(K)
        self.M = int(M)
        self.eta = eta
        self.second_order = bool(second_order)
        self.noise = noise
        self.T = T
        self.T.setflags(write=False)
        self.activation = _lookup_activation(activation)
        self.teacher_activation = (
            self.activation if teacher_activation is None else _lookup_activation(teacher_activation)
        )
        self._build_indices()

    # --- construction helpers ------------------------------------------------

    @property
    def L(self) -> int:
        """Number of fields, K + M."""
        return self.K + self.M

    @property
    def n_state(self) -> int:
        """Length of the state vector, ``KM + K(K+1)/2``."""
        return self.K * self.M + self.K * (self.K + 1) // 2

    @property
    def mixed(self) -> bool:
        """Whether teacher and student activations differ."""
        return self.teacher_activation is not self.activation

    def replace(self, **changes: Any) -> "Committee":
        """A copy with some parameters changed, e.g. ``model.replace(eta=0.5)``."""
        params = dict(K=self.K, M=self.M, activation=self.activation, eta=self.eta,
                      second_order=self.second_order, noise=self.noise, T=self.T,
                      teacher_activation=None if not self.mixed else self.teacher_activation)
        unknown = set(changes) - set(params)
        if unknown:
            raise ValueError(f"replace: unknown parameter(s) {sorted(unknown)}")
        params.update(changes)
        return Committee(**params)

    def parameters(self) -> dict[str, Any]:
        """JSON-ready description of the model (inverse: :func:`committee_from_parameters`)."""
        return {
            "K": self.K,
            "M": self.M,
            "activation": self.activation.name,
            "teacher_activation": self.teacher_activation.name,
            "eta": self.eta,
            "second_order": self.second_order,
            "noise": self.noise,
            "T": self.T.tolist(),
        }

    def __repr__(self) -> str:
        extra = f", teacher_activation={self.teacher_activation.name!r}" if self.mixed else ""
        return (f"Committee(K={self.K}, M={self.M}, activation={self.activation.name!r}, "
                f"eta={self.eta}, second_order={self.second_order}, noise={self.noise}{extra})")

    def _build_indices(self) -> None:
        K, M, L = self.K, self.M, self.L
        self._signs = np.r_[-np.ones(K), np.ones(M)]
        self._iu_K = np.triu_indices(K)
        # 2-D blocks (x_i, u) for every student i and field u, i-major.
        ii, uu = np.meshgrid(np.arange(K), np.arange(L), indexing="ij")
        self._idx2 = np.stack([ii.ravel(), uu.ravel()], axis=-1)
        # Field pairs u <= w with weights s_u s_w (doubled off the diagonal).
        pu, pw = np.triu_indices(L)
        self._pairs_all = np.stack([pu, pw], axis=-1)
        self._w_pairs = self._signs[pu] * self._signs[pw] * np.where(pu == pw, 1.0, 2.0)
        # Student pairs i <= k.
        si, sk = self._iu_K
        self._pairs_s = np.stack([si, sk], axis=-1)
        P_a = len(pu)
        # Sigma as one gather from the concatenation [state vector, T.ravel()].
        src = np.empty((L, L), dtype=np.intp)
        src[:K, K:] = np.arange(K * M).reshape(K, M)
        src[K:, :K] = src[:K, K:].T
        q = np.empty((K, K), dtype=np.intp)
        q[self._iu_K] = K * M + np.arange(K * (K + 1) // 2)
        q[self._iu_K[1], self._iu_K[0]] = q[self._iu_K]
        src[:K, :K] = q
        src[K:, K:] = self.n_state + np.arange(M * M).reshape(M, M)
        self._sigma_src = src.ravel()
        # State-derivative entries as gathers from the (K, L) table A (see rhs_vector).
        ri, rn = np.divmod(np.arange(K * M), M)
        self._out_a = np.r_[ri * L + K + rn, si * L + sk]
        self._out_b = np.r_[ri * L + K + rn, sk * L + si]
        self._out_qmask = np.r_[np.zeros(K * M), np.ones(len(si))]
        # I4 blocks (i, k, u, w) in chunks of whole ik rows; flat indices into Sigma of
        # the entries that depend on (i, k) only, (u, w) only, or both.
        self._uw_flat = np.stack([pu * L + pu, pw * L + pw, pu * L + pw])
        self._i4_chunks = []
        if self.second_order:
            rows = max(1, _I4_CHUNK // P_a)
            for start in range(0, len(si), rows):
                a, b = si[start:start + rows, None], sk[start:start + rows, None]
                ik = np.stack([a[:, 0] * L + a[:, 0], b[:, 0] * L + b[:, 0], a[:, 0] * L + b[:, 0]])
                cross = np.stack([a * L + pu, a * L + pw, b * L + pu, b * L + pw])
                self._i4_chunks.append((start, start + len(a), ik, cross))
        # Few blocks: one contiguous gather of all ten entries beats broadcasting
        # (numpy's small 2-D broadcasts are slow); many blocks: broadcast in chunks.
        self._i4_full = None
        if self.second_order and len(si) * P_a <= _I4_FULL_GATHER:
            ik, cross = self._i4_chunks[0][2:]
            shape = cross[0].shape
            rows = [np.broadcast_to(x[:, None], shape) for x in ik]
            cols = [np.broadcast_to(x, shape) for x in self._uw_flat]
            self._i4_full = np.stack([rows[0], rows[1], cols[0], cols[1], rows[2], *cross, cols[2]]).reshape(10, -1)
        # Type of each field pair for mixed activations: 0 ss, 1 st, 2 tt.
        self._pair_type = (pu >= K).astype(int) + (pw >= K).astype(int)
        # Closed forms in covariance entries let whole tables broadcast (see _tables2, _i4_sum).
        forms = self.activation.closed_forms
        self._closed2 = not self.mixed and "H2" in forms and "J2" in forms
        self._closed4 = not self.mixed and "I4" in forms
        self._closed_I2 = not self.mixed and "I2" in forms
        # eps_g route (see eg_vector): exact quadratic form, difference form near the
        # perfect solution, or the plain sum over field pairs.
        if not self.mixed and self.activation is _LINEAR:
            self._eg_route = "linear"
        elif not self.mixed and all(k in forms for k in ("I2", "J2", "H2", "J2grad")):
            self._eg_route = "matched"
        else:
            self._eg_route = "plain"
        # Smallest sine of the angle between two teachers (sets the nodes of that route).
        d = np.sqrt(np.diag(self.T))
        cos = np.abs(self.T / np.outer(d, d))[~np.eye(self.M, dtype=bool)]
        self._teacher_sine = float(np.sqrt(max(0.0, 1.0 - cos.max(initial=0.0) ** 2)))

    # --- state handling --------------------------------------------------------

    def covariance(self, state: State | np.ndarray) -> np.ndarray:
        """Covariance ``[[Q, R], [R^T, T]]`` of the K + M fields, shape ``(..., L, L)``.

        Accepts a :class:`State` or state vectors of shape ``(..., n_state)``.
        """
        if isinstance(state, State):
            self._check_dims(state)
            v = state.to_vector()
        else:
            v = np.asarray(state, dtype=float)
        return self._sigma(v)

    def _sigma(self, v: np.ndarray) -> np.ndarray:
        if v.ndim == 0 or v.shape[-1] != self.n_state:
            raise ValueError(f"v: state vectors must have length n_state = {self.n_state} "
                             f"(K = {self.K}, M = {self.M}), got shape {v.shape}")
        batch = v.shape[:-1]
        ext = np.concatenate([v, np.broadcast_to(self.T.ravel(), batch + (self.M * self.M,))], axis=-1)
        return ext[..., self._sigma_src].reshape(batch + (self.L, self.L))

    def _check_dims(self, state: State) -> None:
        if state.R.shape != (self.K, self.M):
            raise ValueError(f"state: R has shape {state.R.shape}, model needs ({self.K}, {self.M})")

    def min_eigenvalue(self, state: State | np.ndarray) -> float:
        """Smallest eigenvalue of the field covariance divided by its largest |entry|."""
        S = self.covariance(state)
        scale = max(1.0, float(np.abs(S).max()))
        return float(np.linalg.eigvalsh(S)[..., 0].min()) / scale

    def validate_state(self, state: State, name: str = "state") -> State:
        """Raise ``ValueError`` unless ``state`` is a valid point of this model's state space.

        Requires matching shapes, ``Q_ii > 0``, ``Q`` positive semidefinite and
        ``[[Q, R], [R^T, T]]`` positive semidefinite (to a relative tolerance
        of ``1e-9``); the message names the offending component.
        """
        if not isinstance(state, State):
            raise ValueError(f"{name}: expected a phasekit.State, got {type(state).__name__}")
        self._check_dims(state)
        if np.any(np.diag(state.Q) <= 0):
            raise ValueError(f"{name}: student norms Q_ii must be > 0, got diag(Q) = {np.diag(state.Q).tolist()}")
        lam_q = float(np.linalg.eigvalsh(state.Q)[0]) / max(1.0, float(np.abs(state.Q).max()))
        if lam_q < -PSD_TOL:
            raise ValueError(f"{name}: Q must be positive semidefinite (smallest eigenvalue / scale = "
                             f"{lam_q:.3g} < 0)")
        lam = self.min_eigenvalue(state)
        if lam < -PSD_TOL:
            raise ValueError(
                f"{name}: the covariance [[Q, R], [R^T, T]] must be positive semidefinite "
                f"(smallest eigenvalue / scale = {lam:.3g} < 0); R is inconsistent with Q and T"
            )
        return state

    # --- the flow --------------------------------------------------------------

    def _tables2(self, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """H2 and J2 tables over (student i, field u), shape ``(..., K, L)``."""
        K, L = self.K, self.L
        batch = S.shape[:-2]
        if self._closed2:
            diag = np.diagonal(S, axis1=-2, axis2=-1)
            ent = (diag[..., :K, None], diag[..., None, :], S[..., :K, :])
            forms = self.activation.closed_forms
            if "H2J2" in forms:
                return forms["H2J2"](*ent)
            return forms["H2"](*ent), forms["J2"](*ent)
        i2 = self._idx2
        C = S[..., i2[:, :, None], i2[:, None, :]].reshape(batch + (K, L, 2, 2))
        sa, ta = self.activation, self.teacher_activation
        H = np.concatenate([expect_H2(C[..., :, :K, :, :], sa, sa),
                            expect_H2(C[..., :, K:, :, :], sa, ta)], axis=-1)
        J = np.concatenate([expect_J2(C[..., :, :K, :, :], sa, sa),
                            expect_J2(C[..., :, K:, :, :], sa, ta)], axis=-1)
        return H, J

    def _i4_sum(self, S: np.ndarray) -> np.ndarray:
        """``sum_{u,w} s_u s_w I4(x_i, x_k, u, w)`` for i <= k, shape ``(..., K(K+1)/2)``."""
        batch = S.shape[:-2]
        L = self.L
        P_s = len(self._pairs_s)
        Sflat = S.reshape(batch + (L * L,))
        if self._closed4 and self._i4_full is not None:
            e = Sflat[..., self._i4_full]  # (..., 10, blocks)
            vals = self.activation.closed_forms["I4"](*(e if e.ndim == 2 else np.moveaxis(e, -2, 0)))
            return vals.reshape(batch + (P_s, -1)) @ self._w_pairs
        out = np.empty(batch + (P_s,))
        if self._closed4:
            # Entries depending on (i, k) only or (u, w) only broadcast against each
            # other; only the four cross covariances are gathered per block.
            i4 = self.activation.closed_forms["I4"]
            uw = Sflat[..., self._uw_flat][..., None, :]  # (..., 3, 1, P_a)
        sa, ta = self.activation, self.teacher_activation
        for start, stop, ik, cross in self._i4_chunks:
            if self._closed4:
                e = Sflat[..., ik][..., None]  # (..., 3, rows, 1)
                c = Sflat[..., cross]  # (..., 4, rows, P_a)
                vals = i4(e[..., 0, :, :], e[..., 1, :, :], uw[..., 0, :, :], uw[..., 1, :, :],
                          e[..., 2, :, :], c[..., 0, :, :], c[..., 1, :, :], c[..., 2, :, :],
                          c[..., 3, :, :], uw[..., 2, :, :])
            else:
                si, sk = self._pairs_s[start:stop].T
                pu, pw = self._pairs_all.T
                idx = np.stack(np.broadcast_arrays(si[:, None], sk[:, None], pu, pw), axis=-1)
                C = S[..., idx[..., :, None], idx[..., None, :]]  # (..., rows, P_a, 4, 4)
                vals = np.empty(C.shape[:-2])
                for t, (ac, ad) in enumerate([(sa, sa), (sa, ta), (ta, ta)]):
                    m = self._pair_type == t
                    if m.any():
                        vals[..., m] = expect_I4(C[..., m, :, :], sa, ac, ad)
            out[..., start:stop] = vals @ self._w_pairs
        return out

    def rhs_vector(self, v: np.ndarray) -> np.ndarray:
        """``d state / d alpha`` for state vectors ``v`` of shape ``(..., n_state)``.

        The hot path: no validation.  Batched over leading axes (used by
        finite-difference Jacobians and ensembles).
        """
        v = np.asarray(v, dtype=float)
        K, L, eta = self.K, self.L, self.eta
        S = self._sigma(v)
        H, J = self._tables2(S)
        s = self._signs
        A = S[..., :K, :] * (H @ s)[..., :, None] + (J * s) @ S  # (..., K, L)
        # dR_in = eta A_i,K+n;  dQ_ik = eta (A_ik + A_ki): two gathers from A.
        Af = A.reshape(v.shape[:-1] + (K * L,))
        out = Af[..., self._out_a] + Af[..., self._out_b] * self._out_qmask
        if self.second_order:
            second = self._i4_sum(S)
            if self.noise > 0:
                second = second + self.noise**2 * J[..., self._iu_K[0], self._iu_K[1]]
            out[..., K * self.M:] += eta * second
        out *= eta
        return out

    def rhs(self, state: State) -> State:
        """``d state / d alpha`` as a :class:`State` (R- and Q-derivatives).

        Raises ``ValueError`` for a state outside the model's state space
        (:meth:`validate_state`); :meth:`rhs_vector` is the unvalidated hot path.
        """
        self.validate_state(state)
        return State.from_vector(self.rhs_vector(state.to_vector()), self.K, self.M)

    def eg_vector(self, v: np.ndarray) -> np.ndarray:
        """Noise-free generalisation error for state vectors of shape ``(..., n_state)``.

        Returns an array of shape ``(...)``, never negative.  The hot path: no
        validation.

        Near the perfect solution the plain sum over field pairs of ``I2``
        cancels (terms of order ``T``, result of order the distance to it).
        There, for one activation with the closed form ``"J2grad"`` (relu, erf;
        relu adds ``"D2"`` for its kink), each student ``i`` is paired with the
        teacher ``pi(i)`` of largest correlation and ``eps_g`` is evaluated in a
        difference form (see the comments at ``_eg_matched``) accurate to a few
        ulps of its own size, down to ``eps_g ~ 1e-15``.  The switch is where
        the plain sum falls below ``2e-2`` of the sum of its terms' magnitudes.
        The plain sum, whose absolute error is ``~1e-16`` times the size of its
        terms, is kept where ``pi`` is not injective (two students near one
        teacher, e.g. ``K > M``) and, for relu, where two teachers are so nearly
        collinear that the difference form would need more than 64
        Gauss-Legendre nodes per path parameter.  The linear activation is a
        quadratic form of the order parameters, always summed in that form
        without cancellation of large terms.
        """
        v = np.asarray(v, dtype=float)
        batch = v.shape[:-1]
        S = self._sigma(v.reshape((-1, v.shape[-1])))
        if self._eg_route == "linear":
            eg = _eg_linear(S, self.T, self.K)
        else:
            I2 = self._i2_pairs(S)
            eg = 0.5 * (I2 @ self._w_pairs)
            if self._eg_route == "matched":
                # The plain sum's absolute error is ~eps times the sum of magnitudes.
                scale = 0.5 * (np.abs(I2) @ np.abs(self._w_pairs))
                need = np.flatnonzero(~(eg >= _EG_CANCEL * scale))
                if need.size:
                    pi, injective = _matching(S[need], self.T, self.K)
                    idx, pi = need[injective], pi[injective]
                    forms = self.activation.closed_forms
                    sine = self._teacher_sine if "D2" in forms else 1.0
                    nodes = _eg_nodes(S[idx], pi, self.T, self.K, sine)
                    for n in np.unique(nodes[nodes > 0]):
                        m = nodes == n
                        eg[idx[m]] = 0.5 * _eg_matched(S[idx[m]], pi[m], self.T, self.K, forms, int(n))
        return np.maximum(eg, 0.0).reshape(batch)

    def _i2_pairs(self, S: np.ndarray) -> np.ndarray:
        """``I2(u, w)`` for the field pairs ``u <= w`` of ``_pairs_all``, shape ``(B, pairs)``."""
        pu, pw = self._pairs_all.T
        if self._closed_I2:
            diag = np.diagonal(S, axis1=-2, axis2=-1)
            return self.activation.closed_forms["I2"](diag[..., pu], diag[..., pw], S[..., pu, pw])
        p = self._pairs_all
        C = S[..., p[:, :, None], p[:, None, :]]
        I2 = np.empty(C.shape[:-2])
        sa, ta = self.activation, self.teacher_activation
        for t, (a, b) in enumerate([(sa, sa), (sa, ta), (ta, ta)]):
            m = self._pair_type == t
            I2[..., m] = expect_I2(C[..., m, :, :], a, b)
        return I2

    def eg(self, state: State) -> float:
        """Noise-free generalisation error ``eps_g = <(sigma - tau)^2> / 2`` (see :meth:`eg_vector`).

        Raises ``ValueError`` for a state outside the model's state space
        (:meth:`validate_state`); :meth:`eg_vector` is the unvalidated hot path.
        """
        self.validate_state(state)
        return float(self.eg_vector(state.to_vector()))


def committee_from_parameters(params: Mapping[str, Any] | str) -> Committee:
    """Rebuild a :class:`Committee` from :meth:`Committee.parameters` (dict or JSON string)."""
    if isinstance(params, str):
        params = json.loads(params)
    p = dict(params)
    keys = {"K", "M", "activation", "teacher_activation", "eta", "second_order", "noise", "T"}
    p = {k: v for k, v in p.items() if k in keys}
    if p.get("teacher_activation") == p.get("activation"):
        p["teacher_activation"] = None
    # 0 and 1 (as in netCDF attributes) mean False and True; anything else is left to
    # Committee, which accepts only booleans.
    so = p.get("second_order")
    if _is_int(so) and so in (0, 1):
        p["second_order"] = bool(so)
    return Committee(**p)
