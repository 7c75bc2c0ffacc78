"""The teacher-student committee machine: ``Committee`` (parameters, construction, validation).

The state (:mod:`~phasekit.committee.state`) and the flow
(:mod:`~phasekit.committee.flow`) live in their own modules; ``State``,
``vector_labels``, ``PSD_TOL`` and ``FlowParts`` are re-exported here.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np

from ..core.activations import Activation
from ..core.activations import activation as _lookup_activation
from .eg import eg_of_vectors
from .flow import CommitteeFlow, FlowParts
from .schedules import schedule_from_spec
from .state import PSD_TOL, State, _is_int, _numeric_matrix, _real, vector_labels

__all__ = ['Committee', 'FlowParts', 'NORMALISATIONS', 'PSD_TOL', 'State', 'committee_from_parameters',
           'vector_labels']


#: The second-layer normalisations of :class:`Committee` (``normalisation``).
NORMALISATIONS = ("none", "1/K", "1/sqrt(K)")


# Reduced models of invariant subspaces by name, filled by phasekit.committee.subspaces
# (which builds on this module).
SUBSPACE_MODELS: dict[str, Any] = {}


def is_reduced(model: Any) -> bool:
    """Whether ``model`` is a reduced model (:meth:`Committee.restrict`): it has a ``subspace`` and a ``parent``."""
    return not isinstance(model, Committee) and getattr(model, "subspace", None) is not None \
        and hasattr(model, "parent")


def full_model_only(model: Any, what: str) -> "Committee":
    """``model`` if it is a full :class:`Committee`, else a ValueError that says what to pass instead.

    A reduced model (:meth:`Committee.restrict`) is refused by the functions
    that need the whole state (``what`` names them) with the way back to the
    full model: ``model.parent``, and ``model.embed(z)`` for its states.
    """
    if isinstance(model, Committee):
        return model
    if is_reduced(model):
        raise ValueError(f"model: {what} needs the full model, but this one is restricted to the {model.subspace!r} subspace; "
                         "pass model.parent (the full Committee it was restricted from; model.embed(z) is a "
                         "reduced state z as a full State)")
    raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")


def _weights(value: Any, n: int, name: str, default: float) -> np.ndarray:
    """Second-layer weights as a read-only float vector of length ``n`` (``default`` everywhere for None)."""
    if value is None:
        w = np.full(n, default)
    else:
        a = np.asarray(value)
        if a.dtype.kind not in "iuf":
            raise ValueError(f"{name}: must hold real numbers, got an array of dtype {a.dtype}")
        w = np.array(a, dtype=float, ndmin=1)
        if w.shape != (n,):
            raise ValueError(f"{name}: must be a vector of length {n}, got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{name}: entries must be finite, got {w.tolist()}")
    w.setflags(write=False)
    return w


def _nonnegative(x: Any, name: str, what: str) -> float:
    x = _real(x, name, what)
    if not np.isfinite(x) or x < 0:
        raise ValueError(f"{name}: {what} must be finite and >= 0, got {x!r}")
    return x


class Committee(CommitteeFlow):
    """Teacher-student committee machine trained by on-line SGD.

    Student output ``sigma = sum_i v_i g(x_i)``, teacher output
    ``tau = sum_n w_n g(y_n) + zeta``; SGD on ``(sigma - tau)^2 / 2`` with
    ``J_i += (eta/N) v_i (tau - sigma) g'(x_i) xi - (eta lambda/N) J_i`` and,
    when trained, ``v_i += (eta_v/N) g(x_i) (tau - sigma)``.  With every
    optional parameter at its default this is the soft committee machine
    (``v = w = 1``, constant eta, fixed teacher).

    Parameters
    ----------
    K, M : int
        Student and teacher hidden units, ``>= 1``.
    activation : str or Activation
        Registered activation of the student (and teacher unless
        ``teacher_activation`` is given).
    eta : float
        Learning rate, ``> 0`` (with a schedule: the rate at ``alpha = 0``).
    second_order : bool
        Keep the ``eta^2`` term (exact for on-line SGD).  ``False`` gives the
        small-eta limit in which time is naturally measured in ``eta * alpha``.
    noise : float
        Standard deviation ``sigma >= 0`` of Gaussian output noise on the teacher.
    T : array_like, shape (M, M), optional
        Teacher overlaps, symmetric positive definite; default identity.
    teacher_activation : str or Activation, optional
        Teacher's activation when it differs from the student's.
    teacher_weights : array_like, shape (M,), optional
        The teacher's second-layer weights ``w``; default from ``normalisation``.
    student_weights : array_like, shape (K,), optional
        The student's second-layer weights ``v``: fixed, or (when trained) the
        default initial weights; default from ``normalisation``.
    normalisation : {"none", "1/K", "1/sqrt(K)"}
        Default weights ``v_i = K^-p``, ``w_n = M^-p`` with ``p = 0, 1, 1/2``.
    train_second_layer : bool
        Train the student's second layer: ``v`` becomes part of the state.
    eta_second_layer : float, optional
        Its learning rate ``eta_v > 0``; default: the same as the first layer
        (then it follows ``eta`` in :meth:`replace`, continuations and scans).
        Only with ``train_second_layer``.
    weight_decay : float
        ``lambda >= 0`` of the first layer's weight decay.
    drift : float
        Strength ``delta >= 0`` of the teacher's random drift: each teacher
        vector takes a random step per example that keeps ``|B_n|^2 = 1`` on
        average (``B_n <- (1 - delta/N) B_n + sqrt(2 delta/N) nu_n``,
        ``nu_n ~ N(0, I/N)``), so ``T`` relaxes to the identity; ``drift > 0``
        needs ``T`` to be the identity (its stationary value).
    eta_schedule : None, str, mapping, Schedule or callable
        Learning-rate schedule ``eta(alpha) = eta f(alpha)`` (both layers),
        see :mod:`phasekit.committee.schedules`: ``"constant"``,
        ``{"kind": "power_law", "alpha0": ..., "p": ...}``,
        ``{"kind": "piecewise_constant", "boundaries": [...], "factors": [...]}``
        or a callable ``f`` with ``f(0) = 1``.  The flow is then not
        autonomous: fixed-point analysis refuses such a model.
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
        *,
        teacher_weights: Any = None,
        student_weights: Any = None,
        normalisation: str = "none",
        train_second_layer: bool = False,
        eta_second_layer: float | None = None,
        weight_decay: float = 0.0,
        drift: float = 0.0,
        eta_schedule: Any = None,
    ) -> None:
        if not _is_int(K) or K < 1:
            raise ValueError(f"K: number of student units must be an integer >= 1, got {K!r}")
        if not _is_int(M) or M < 1:
            raise ValueError(f"M: number of teacher units must be an integer >= 1, got {M!r}")
        eta = _real(eta, "eta", "learning rate")
        if not np.isfinite(eta) or eta <= 0:
            raise ValueError(f"eta: learning rate must be finite and > 0, got {eta!r}")
        noise = _nonnegative(noise, "noise", "output-noise standard deviation")
        if not isinstance(second_order, (bool, np.bool_)):
            raise ValueError(f"second_order: must be True or False, got {type(second_order).__name__} "
                             f"{second_order!r}")
        if T is not None:
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
            T.setflags(write=False)
        if not isinstance(normalisation, str) or normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation: must be one of {', '.join(repr(n) for n in NORMALISATIONS)}, "
                             f"got {normalisation!r}")
        power = {"none": 0.0, "1/K": 1.0, "1/sqrt(K)": 0.5}[normalisation]
        w = _weights(teacher_weights, int(M), "teacher_weights", float(M) ** -power)
        v = _weights(student_weights, int(K), "student_weights", float(K) ** -power)
        if not isinstance(train_second_layer, (bool, np.bool_)):
            raise ValueError(f"train_second_layer: must be True or False, got {type(train_second_layer).__name__} "
                             f"{train_second_layer!r}")
        if eta_second_layer is not None:
            if not train_second_layer:
                raise ValueError("eta_second_layer: only used when the second layer is trained "
                                 "(train_second_layer=True)")
            eta_second_layer = _real(eta_second_layer, "eta_second_layer", "second-layer learning rate")
            if not np.isfinite(eta_second_layer) or eta_second_layer <= 0:
                raise ValueError(f"eta_second_layer: second-layer learning rate must be finite and > 0, "
                                 f"got {eta_second_layer!r}")
        weight_decay = _nonnegative(weight_decay, "weight_decay", "weight decay lambda")
        drift = _nonnegative(drift, "drift", "drift strength delta")
        if drift > 0 and T is not None and not np.array_equal(T, np.eye(M)):
            raise ValueError("drift: a drifting teacher keeps |B_n|^2 = 1 on average and relaxes T to the "
                             "identity; use T = identity (its stationary value) with drift > 0")
        schedule = schedule_from_spec(eta_schedule)
        self.K = int(K)
        self.M = int(M)
        self.eta = eta
        self.second_order = bool(second_order)
        self.noise = noise
        # T (M x M) and the index tables (sizes up to K^2 L^2) are built on first use,
        # so that a wide model (K = 1e5) costs nothing until a full-space evaluation.
        self._T = T
        self.activation = _lookup_activation(activation)
        self.teacher_activation = (
            self.activation if teacher_activation is None else _lookup_activation(teacher_activation)
        )
        self.teacher_weights = w
        self.student_weights = v
        self.normalisation = normalisation
        self.train_second_layer = bool(train_second_layer)
        self.eta_second_layer = eta_second_layer
        self.weight_decay = weight_decay
        self.drift = drift
        self.eta_schedule = schedule

    @property
    def T(self) -> np.ndarray:
        """Teacher overlaps ``T_nm = B_n . B_m``, shape ``(M, M)``, read-only (the identity unless given)."""
        if self._T is None:
            T = np.eye(self.M)
            T.setflags(write=False)
            self._T = T
        return self._T

    # --- construction helpers ------------------------------------------------

    @property
    def L(self) -> int:
        """Number of fields, K + M."""
        return self.K + self.M

    @property
    def n_order(self) -> int:
        """Number of order parameters ``(R, Q)``: ``KM + K(K+1)/2``."""
        return self.K * self.M + self.K * (self.K + 1) // 2

    @property
    def n_state(self) -> int:
        """Length of the state vector: ``KM + K(K+1)/2``, plus ``K`` when the second layer is trained."""
        return self.n_order + (self.K if self.train_second_layer else 0)

    @property
    def eta_v(self) -> float:
        """The second layer's learning rate (``eta`` unless ``eta_second_layer`` is set); 0 when not trained."""
        if not self.train_second_layer:
            return 0.0
        return self.eta if self.eta_second_layer is None else self.eta_second_layer

    @property
    def labels(self) -> list[str]:
        """Names of the state-vector components (:func:`vector_labels`)."""
        return vector_labels(self.K, self.M, self.train_second_layer)

    @property
    def mixed(self) -> bool:
        """Whether teacher and student activations differ."""
        return self.teacher_activation is not self.activation

    @property
    def autonomous(self) -> bool:
        """Whether the flow does not depend on alpha explicitly (no learning-rate schedule)."""
        return self.eta_schedule is None

    def eta_at(self, alpha: Any) -> Any:
        """Learning rate ``eta(alpha)`` (``eta`` without a schedule), same shape as ``alpha``."""
        if self.eta_schedule is None:
            return self.eta if np.ndim(alpha) == 0 else np.full(np.shape(alpha), self.eta)
        return self.eta * self.eta_schedule.factor(alpha)

    def scaled_time(self, alpha: Any) -> Any:
        """``int_0^alpha eta(a) da``: ``eta alpha`` without a schedule, the natural time of the first-order flow."""
        a = np.asarray(alpha, dtype=float)
        if self.eta_schedule is None:
            return self.eta * a
        return self.eta * self.eta_schedule.integral(a)

    def require_autonomous(self, what: str) -> None:
        """``ValueError`` for a model with a learning-rate schedule (``what`` needs an autonomous flow)."""
        if self.eta_schedule is not None:
            raise ValueError(f"model: {what} needs an autonomous flow, but the learning rate follows a schedule "
                             f"({self.eta_schedule.to_dict()['kind']}); use eta_schedule=None (eta frozen)")

    def _general_keys(self) -> dict[str, Any]:
        return dict(teacher_weights=self.teacher_weights, student_weights=self.student_weights,
                    normalisation=self.normalisation, train_second_layer=self.train_second_layer,
                    eta_second_layer=self.eta_second_layer, weight_decay=self.weight_decay, drift=self.drift,
                    eta_schedule=self.eta_schedule)

    def replace(self, **changes: Any) -> "Committee":
        """A copy with some parameters changed, e.g. ``model.replace(eta=0.5)``.

        Weights given explicitly (or by the normalisation) are kept; pass
        ``teacher_weights=None`` with a new ``normalisation`` to re-derive them.
        """
        params = dict(K=self.K, M=self.M, activation=self.activation, eta=self.eta,
                      second_order=self.second_order, noise=self.noise, T=self._T,
                      teacher_activation=None if not self.mixed else self.teacher_activation,
                      **self._general_keys())
        unknown = set(changes) - set(params)
        if unknown:
            raise ValueError(f"replace: unknown parameter(s) {sorted(unknown)}")
        if "K" in changes and "student_weights" not in changes:
            params["student_weights"] = None
        if "M" in changes and "teacher_weights" not in changes:
            params["teacher_weights"] = None
        if changes.get("train_second_layer") is False and "eta_second_layer" not in changes:
            params["eta_second_layer"] = None
        params.update(changes)
        return Committee(**params)

    def restrict(self, subspace: str) -> Any:
        """The flow restricted to an invariant subspace, as a reduced model.

        ``"site_symmetric"`` (K = M, ``T = Td I + To (11^T - I)``, equal
        weights): ``R_ii = R``, ``R_in = S``, ``Q_ii = Q``, ``Q_ik = C`` (and a
        common ``v``), see :class:`phasekit.committee.subspaces.SiteSymmetricCommittee`;
        ``"grouped"`` (K = g M students, ``g`` per teacher unit: ``R_in = R`` or
        ``S`` as ``i`` is in unit ``n``'s group or not, ``Q_ii = Q``, ``Q_ik = C1``
        in one group, ``C2`` across groups), see
        :class:`phasekit.committee.subspaces.GroupedCommittee`; ``"pair"`` (K = M,
        the states invariant under permuting units 3 ... K: 17 coordinates),
        see :class:`phasekit.committee.subspaces.PairCommittee`.  Their cost
        does not grow with K or M.
        """
        if subspace not in SUBSPACE_MODELS:
            raise ValueError(f"subspace: must be one of {', '.join(repr(s) for s in SUBSPACE_MODELS)}, "
                             f"got {subspace!r}")
        return SUBSPACE_MODELS[subspace](self)

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
            "teacher_weights": self.teacher_weights.tolist(),
            "student_weights": self.student_weights.tolist(),
            "normalisation": self.normalisation,
            "train_second_layer": self.train_second_layer,
            "eta_second_layer": self.eta_second_layer,
            "weight_decay": self.weight_decay,
            "drift": self.drift,
            "eta_schedule": None if self.eta_schedule is None else self.eta_schedule.to_dict(),
        }

    def __repr__(self) -> str:
        extra = f", teacher_activation={self.teacher_activation.name!r}" if self.mixed else ""
        if not self._soft:
            extra += f", teacher_weights={self.teacher_weights.tolist()}, student_weights={self.student_weights.tolist()}"
        if self.train_second_layer:
            extra += ", train_second_layer=True"
            if self.eta_second_layer is not None:
                extra += f", eta_second_layer={self.eta_second_layer}"
        if self.weight_decay:
            extra += f", weight_decay={self.weight_decay}"
        if self.drift:
            extra += f", drift={self.drift}"
        if self.eta_schedule is not None:
            extra += f", eta_schedule={self.eta_schedule.to_dict()}"
        return (f"Committee(K={self.K}, M={self.M}, activation={self.activation.name!r}, "
                f"eta={self.eta}, second_order={self.second_order}, noise={self.noise}{extra})")

    # --- state handling --------------------------------------------------------

    def covariance(self, state: State | np.ndarray) -> np.ndarray:
        """Covariance ``[[Q, R], [R^T, T]]`` of the K + M fields, shape ``(..., L, L)``.

        Accepts a :class:`State` or state vectors of shape ``(..., n_state)``.
        """
        if isinstance(state, State):
            v = self.state_vector(state)
        else:
            v = np.asarray(state, dtype=float)
        return self._sigma(v)

    def state_vector(self, state: State, name: str = "state") -> np.ndarray:
        """The model's state vector of ``state`` (length :attr:`n_state`).

        With a trained second layer ``state.v`` is required and appended;
        otherwise the model's fixed weights are used and ``state.v``, if set,
        must equal them.
        """
        self._check_dims(state, name)
        v = state.to_vector()
        if self.train_second_layer:
            if state.v is None:
                raise ValueError(f"{name}: the second layer is trained, so the state needs its weights v "
                                 f"(State(R, Q, v), v of length {self.K})")
            return v
        if state.v is not None:
            if not np.array_equal(state.v, self.student_weights):
                raise ValueError(f"{name}: v = {state.v.tolist()} differs from the model's fixed student_weights "
                                 f"{self.student_weights.tolist()} (the second layer is not trained)")
            return v[:self.n_order]
        return v

    def state_from_vector(self, v: np.ndarray) -> State:
        """The :class:`State` of a state vector (``v`` set when the second layer is trained)."""
        v = np.asarray(v, dtype=float)
        if v.shape != (self.n_state,):
            raise ValueError(f"v: expected a state vector of length n_state = {self.n_state}, got shape {v.shape}")
        return State.from_vector(v, self.K, self.M)

    def second_layer(self, v: np.ndarray) -> np.ndarray:
        """The student's second-layer weights of state vectors ``(..., n_state)``, shape ``(..., K)``."""
        v = np.asarray(v, dtype=float)
        if self.train_second_layer:
            return v[..., self.n_order:]
        return np.broadcast_to(self.student_weights, v.shape[:-1] + (self.K,))

    def _check_dims(self, state: State, name: str = "state") -> None:
        if state.R.shape != (self.K, self.M):
            raise ValueError(f"{name}: R has shape {state.R.shape}, model needs ({self.K}, {self.M})")

    def min_eigenvalue(self, state: State | np.ndarray) -> float:
        """Smallest eigenvalue of the field covariance divided by its largest absolute entry."""
        S = self.covariance(state)
        scale = max(1.0, float(np.abs(S).max()))
        return float(np.linalg.eigvalsh(S)[..., 0].min()) / scale

    def validate_state(self, state: State, name: str = "state") -> State:
        """Raise ``ValueError`` unless ``state`` is a valid point of this model's state space.

        Requires matching shapes, the second-layer weights ``v`` when they are
        trained (and, when not, none or the model's), ``Q_ii > 0``, ``Q`` positive semidefinite and
        ``[[Q, R], [R^T, T]]`` positive semidefinite (to a relative tolerance
        of ``1e-9``); the message names the offending component.
        """
        if not isinstance(state, State):
            raise ValueError(f"{name}: expected a phasekit.State, got {type(state).__name__}")
        self.state_vector(state, name)
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

    def rhs(self, state: State, alpha: float | None = None) -> State:
        """``d state / d alpha`` as a :class:`State` (R-, Q- and, when trained, v-derivatives).

        Raises ``ValueError`` for a state outside the model's state space
        (:meth:`validate_state`); :meth:`rhs_vector` is the unvalidated hot path.
        ``alpha`` is needed only with a learning-rate schedule.
        """
        self.validate_state(state)
        return State.from_vector(self.rhs_vector(self.state_vector(state), alpha), self.K, self.M)

    def eg_vector(self, v: np.ndarray) -> np.ndarray:
        """Noise-free generalisation error for state vectors of shape ``(..., n_state)``.

        ``eps_g = (1/2) sum_{u,w} c_u c_w I2(u, w)`` with ``c_u = -v_j`` for a
        student field and ``w_n`` for a teacher field.  Returns an array of
        shape ``(...)``, never negative.  The hot path: no validation.

        Near the perfect solution the plain sum over field pairs of ``I2``
        cancels (terms of order ``T``, result of order the distance to it).
        There, for one activation with the closed form ``"J2grad"`` (relu, erf;
        relu adds ``"D2"`` for its kink), each student ``i`` is paired with the
        teacher ``pi(i)`` of largest correlation and ``eps_g`` is evaluated in a
        difference form (see :func:`phasekit.committee.eg._eg_matched`: the
        error signal ``sum_i v_i D_i - sum_n e_n g(y_n)`` with ``D_i = g(x_i) -
        g(y_pi(i))`` and ``e_n = w_n - sum_{pi(i) = n} v_i``) accurate to a few
        ulps of its own size, down to ``eps_g ~ 1e-15``.  The switch is where
        the plain sum falls below ``2e-2`` of the sum of its terms' magnitudes.
        The plain sum, whose absolute error is ``~1e-16`` times the size of its
        terms, is kept where ``pi`` is not injective for unit weights or for
        an activation with a kink (two students near one teacher, e.g.
        ``K > M``; with weights that share the teacher's weight between them,
        ``e_n ~ 0``, a smooth activation keeps the difference form) and, for
        relu, where two teachers are so nearly collinear that the difference
        form would need more than 64 Gauss-Legendre nodes per path parameter.
        The linear activation is a quadratic form of the order parameters,
        always summed in that form without cancellation of large terms.
        """
        return eg_of_vectors(self, v)

    def eg(self, state: State) -> float:
        """Noise-free generalisation error ``eps_g = <(sigma - tau)^2> / 2`` (see :meth:`eg_vector`).

        Raises ``ValueError`` for a state outside the model's state space
        (:meth:`validate_state`); :meth:`eg_vector` is the unvalidated hot path.
        """
        self.validate_state(state)
        return float(self.eg_vector(self.state_vector(state)))



def committee_from_parameters(params: Mapping[str, Any] | str) -> Committee:
    """Rebuild a :class:`Committee` from :meth:`Committee.parameters` (dict or JSON string)."""
    if isinstance(params, str):
        params = json.loads(params)
    p = dict(params)
    keys = {"K", "M", "activation", "teacher_activation", "eta", "second_order", "noise", "T", "teacher_weights",
            "student_weights", "normalisation", "train_second_layer", "eta_second_layer", "weight_decay", "drift",
            "eta_schedule"}
    p = {k: v for k, v in p.items() if k in keys}
    if p.get("teacher_activation") == p.get("activation"):
        p["teacher_activation"] = None
    # 0 and 1 (as in netCDF attributes) mean False and True; anything else is left to
    # Committee, which accepts only booleans.
    for key in ("second_order", "train_second_layer"):
        so = p.get(key)
        if _is_int(so) and so in (0, 1):
            p[key] = bool(so)
    return Committee(**p)
