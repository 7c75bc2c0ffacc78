"""The learning-rate structure of a fixed point: ``J(eta) = eta A + eta^2 B`` and its split.

The flow is ``eta a(x) + eta^2 b(x)``.  At a fixed point that does not move
with eta (the perfect solution without noise, any zero-error state) the
Jacobian is ``eta A + eta^2 B`` with A, B independent of eta
(:func:`eta_structure`).  The pencil ``A + eta B`` is split
(:func:`phasekit.core.spectrum.split_pencil`): common null vectors of A and B
are modes marginal at every eta (:class:`MarginalMode`, e.g. the tangents of
a continuum of fixed points), common eigenvectors give branches linear in
eta, and only the rest needs eigenvalues at each eta.  Tolerances follow the
error estimate of the Jacobian.  :mod:`phasekit.committee.stability` finds the
critical and optimal learning rates from it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Sequence

import numpy as np
from scipy import linalg

from ..core.spectrum import PencilSplit, eigenvalues_only, split_pencil
from .jacobians import _as_vector, _jacobian_of
from .landmarks import _perfect_vector
from .model import Committee, State, is_reduced

__all__ = ['EtaStructure', 'MarginalMode', 'eta_structure']


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
        Estimated max entrywise error of A and B (``nan`` if not estimated); of A
        alone when ``error_B`` is given.
    state : State
    scheme : str
        Jacobian scheme (``"central"``, ``"cone"``; anything for a synthetic structure).
    residual : float
        ``max(|a(x)|, |b(x)|)`` of the two parts of the flow ``eta a + eta^2 b`` at
        ``state``: zero (to rounding) where the state is fixed for every eta.
    error_B : float
        Estimated max entrywise error of B when it differs from A's (``nan``: ``error``
        covers both).  Where B is much larger than A (a wide committee, eta ~ 1/K) one
        error for both would let B's rounding swamp the tolerances on A.
    """

    A: np.ndarray
    B: np.ndarray
    error: float
    state: State
    scheme: str
    residual: float = float("nan")
    error_B: float = float("nan")

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

    @property
    def entry_error_B(self) -> float:
        """Entrywise error of B: ``error_B`` if given (and ``error`` is), else :attr:`entry_error`."""
        if np.isfinite(self.error_B) and np.isfinite(self.error):
            return float(self.error_B)
        return self.entry_error

    def eigenvalue_error(self, eta: float) -> float:
        """Error of a well-conditioned eigenvalue of ``A + eta B``: ``||dA + eta dB|| <= n (err_A + eta err_B)``."""
        return len(self.A) * (self.entry_error + abs(eta) * self.entry_error_B)

    @cached_property
    def split(self) -> PencilSplit:
        """The eta-independent parts of the spectrum (:func:`phasekit.core.spectrum.split_pencil`).

        Singular values below ``20 n`` times :attr:`entry_error` count as zero; with
        its own error of B, the split is that of ``(A, r B)``, ``r = err_A / err_B``
        (entries of one error), mapped back to B.
        """
        ea, eb = self.entry_error, self.entry_error_B
        tol = 20.0 * len(self.A) * ea
        if eb == ea or not (eb > 0):
            return split_pencil(self.A, self.B, tol)
        r = ea / eb
        s = split_pencil(self.A, r * self.B, tol)
        return replace(s, B=s.B / r, branches=tuple(replace(br, b=br.b / r) for br in s.branches))


def eta_structure(model: Committee, state: State | np.ndarray | None = None, *, scheme: str = "auto") -> EtaStructure:
    """The matrices A and B of ``J(eta) = eta A + eta^2 B`` at ``state`` (default: the perfect solution).

    Valid as the Jacobian at every eta only where the state is a fixed point
    for every eta (the perfect solution without output noise, or any
    zero-error state); ``residual`` of the result says whether it is.  B is
    zero for a first-order model.

    Parameters
    ----------
    model : Committee
        Its eta is irrelevant.
    state : State, CommitteeFixedPoint or ndarray, optional
        Default: the perfect solution ``R = Q = T`` (K = M; ``v = w`` when the second layer is trained).
    scheme : {"auto", "central", "cone"}
        Jacobian scheme, see :func:`phasekit.committee.jacobians.jacobian`.

    Notes
    -----
    A reduced model (:meth:`Committee.restrict`) gives the structure of its
    reduced flow (default state: its perfect solution; ``scheme`` unused).
    """
    if is_reduced(model):
        return model.eta_structure(state)
    if not isinstance(model, Committee):
        raise ValueError(f"model: expected a phasekit.Committee, got {type(model).__name__}")
    if state is None:
        if model.K != model.M:
            raise ValueError(f"model: the perfect solution needs K == M, got K={model.K}, M={model.M}; "
                             "pass the fixed point of interest as state")
        state = _perfect_vector(model)
    v = _as_vector(model, state, "state")
    if model.train_second_layer and model.eta_second_layer is not None:
        raise ValueError("model: with its own second-layer learning rate (eta_second_layer) the Jacobian is not "
                         "eta A + eta^2 B; leave eta_second_layer=None (tied to eta) or follow the branch "
                         "with continuation()")
    first = model.replace(eta=1.0, second_order=False)
    if model.second_order:
        full = model.replace(eta=1.0, second_order=True)

        def fun(V: np.ndarray) -> np.ndarray:
            a = first.rhs_vector(V)
            return np.concatenate([a, full.rhs_vector(V) - a], axis=-1)
    else:
        fun = first.rhs_vector
    jac = _jacobian_of(model, fun, v, scheme=scheme)
    J = jac.matrix
    n = v.size
    A = J[:n]
    B = J[n:] if model.second_order else np.zeros_like(A)
    f0 = np.asarray(jac.rhs)
    residual = float(np.abs(f0).max()) if np.all(np.isfinite(f0)) else float("inf")
    return EtaStructure(A, B, jac.error, State.from_vector(v, model.K, model.M), jac.scheme, residual)


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


@dataclass(frozen=True, eq=False)
class MarginalMode:
    """A mode marginal at every eta, excluded from the stability analysis.

    Attributes
    ----------
    side : str
        ``"right"``: a direction in state space with ``A v = B v = 0`` (e.g.
        the tangent of a continuum of fixed points); ``"left"``: a combination
        ``u`` of components with ``u^T A = u^T B = 0``, which the linearised
        flow leaves unchanged.
    vector : ndarray, shape (n_state,)
        Unit vector in the state order, largest entry positive.
    components : tuple of str
        The state components it involves (e.g. ``"R22"``).
    description : str
        One line.
    """

    side: str
    vector: np.ndarray
    components: tuple[str, ...]
    description: str


def _null_modes(basis: np.ndarray, labels: Sequence[str], side: str) -> list[MarginalMode]:
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
        comps = tuple(labels[i] for i in np.nonzero(np.abs(e) > 1e-6 * np.abs(e[big]))[0])
        what = "moves" if side == "right" else "the flow leaves unchanged the combination of"
        out.append(MarginalMode(side, e, comps, f"{'direction' if side == 'right' else 'left null vector'}: "
                                                f"{what} " + ", ".join(comps)))
    return out


def _marginal_summary(split: PencilSplit, modes: Sequence[MarginalMode]) -> str:
    if split.n_null == 0:
        return ""
    right = [m for m in modes if m.side == "right"]
    left = [m for m in modes if m.side == "left"]
    parts = []
    if right:
        parts.append("directions with A v = B v = 0 moving " + "; ".join(", ".join(m.components) for m in right))
    if left:
        parts.append("combinations with u^T A = u^T B = 0 of " + "; ".join(", ".join(m.components) for m in left))
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
