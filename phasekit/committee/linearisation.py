"""Fixed points of the committee flow as results: ``CommitteeFixedPoint`` and ``linearise``.

A fixed point carries its state, the spectrum of the Jacobian (sorted by
decreasing real part, unit eigenvectors in the state order), its residual,
its status (``converged`` or ``failed``, ``ok`` for an exact root), its
stability class (stable, saddle, unstable, marginal) and, for a symmetric
plateau, the escape eigenvalue and eigenvector.  It extends the generic
:class:`phasekit.core.results.FixedPoint` with the model, the order
parameters and eps_g.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from ..core.datasets import coordinate, model_attrs, provenance_attrs, variable
from ..core.results import FixedPoint, classify
from ..core.spectrum import eigen_decomposition
from .cone import _pull_inside
from .jacobians import _as_vector, _jacobian_of
from .model import Committee, State, is_reduced, vector_labels
from .newton import _NewtonResult
from .symmetry import _symmetric_basis

__all__ = ['CommitteeFixedPoint', 'linearise']


LABELS = ("", "perfect", "symmetric_plateau")


@dataclass(frozen=True, kw_only=True, eq=False)
class CommitteeFixedPoint(FixedPoint):
    """A fixed point of the committee flow and its linearisation.

    The result of every committee fixed-point search.  Besides the fields of
    :class:`phasekit.core.results.FixedPoint` (``vector`` in the order of
    :func:`phasekit.committee.model.vector_labels`, eigenvalues in units of
    1/alpha at the model's eta, ``status``, ``kind``, ...):

    Attributes
    ----------
    model : Committee
    eg : float
        Generalisation error at the fixed point.
    label : str
        ``"perfect"``, ``"symmetric_plateau"`` or ``""``.
    escape_eigenvalue : float, complex or None
        For a symmetric plateau: the leading eigenvalue whose eigenvector
        breaks the permutation symmetry (``None`` otherwise).
    escape_vector : ndarray or None
        A unit vector of its eigenspace (the projection of the direction
        "student 1 moves towards teacher 1", R11 component positive).
    escape_multiplicity : int
        Dimension of the escape eigenspace (0 when not a plateau).

    The order parameters are the property :attr:`state` (from ``vector``).
    """

    model: Committee
    eg: float
    label: str = ""
    escape_eigenvalue: float | complex | None = None
    escape_vector: np.ndarray | None = None
    escape_multiplicity: int = 0

    rate_units: ClassVar[str] = "1/alpha"

    def __post_init__(self) -> None:
        if not isinstance(self.model, Committee):
            raise ValueError(f"model: expected a phasekit.Committee, got {type(self.model).__name__}")
        if self.label not in LABELS:
            raise ValueError(f"label: must be one of {LABELS}, got {self.label!r}")
        if not self.labels:
            object.__setattr__(self, "labels", tuple(vector_labels(self.model.K, self.model.M,
                                                                   self.model.train_second_layer)))
        super().__post_init__()

    @property
    def state(self) -> State:
        """The order parameters ``(R, Q)`` (and ``v`` when the second layer is trained)."""
        return State.from_vector(self.vector, self.model.K, self.model.M)

    def __repr__(self) -> str:
        lead = self.eigenvalues[0] if len(self.eigenvalues) else float("nan")
        return (f"CommitteeFixedPoint({self.status}, {self.kind}, label={self.label!r}, eg={self.eg:.6g}, "
                f"n_unstable={self.n_unstable}, leading eigenvalue={lead:.6g}, residual={self.residual:.2g}, "
                f"state={self.state!r})")

    def to_dataset(self) -> xr.Dataset:
        """The fixed point as an ``xarray.Dataset``.

        The generic layout (:meth:`phasekit.core.results.FixedPoint.to_dataset`:
        ``state``, ``eigenvalue_real``, ``eigenvalue_imag``,
        ``eigenvector_real``, ``eigenvector_imag``, ``jacobian``, ``residual``,
        ``n_unstable``, ``stable``, ``status``; coordinates ``component``,
        ``component_in``, ``mode``) plus coordinates ``i``, ``k`` (students),
        ``n`` (teachers), variables ``R``, ``Q``, ``v`` (trained second layer), ``eg``,
        ``escape_eigenvalue`` (nan if none), ``escape_vector`` ``(component)``
        and the model's attributes (``model`` as JSON, ``K``, ``M``,
        ``activation``, ``eta``, ...), ``label`` and ``escape_multiplicity``.
        """
        model = self.model
        K, M, n = model.K, model.M, model.n_state
        one = {"units": "1"}
        rate = {"units": self.rate_units}
        esc_vec = np.full(n, np.nan) if self.escape_vector is None else np.real(self.escape_vector)
        esc = np.nan if self.escape_eigenvalue is None else float(np.real(self.escape_eigenvalue))
        state = self.state
        ds = super().to_dataset()
        ds = ds.assign_coords(
            i=coordinate("i", np.arange(1, K + 1)),
            k=coordinate("k", np.arange(1, K + 1)),
            n=coordinate("n", np.arange(1, M + 1)),
        )
        ds["R"] = variable("R", ("i", "n"), state.R)
        ds["Q"] = variable("Q", ("i", "k"), state.Q)
        if state.v is not None:
            ds["v"] = variable("v", ("i",), state.v)
        ds["eg"] = variable("eg", (), self.eg)
        ds["escape_eigenvalue"] = ((), esc, {"long_name": "escape eigenvalue of the symmetric plateau", **rate})
        ds["escape_vector"] = ("component", esc_vec, {"long_name": "escape eigenvector", **one})
        ds["jacobian"].attrs["long_name"] = "Jacobian d(d state/d alpha)/d state"
        ds["residual"].attrs["long_name"] = "max |d state / d alpha| at the fixed point"
        params = model.parameters()
        ds.attrs.update(provenance_attrs({"model": params, "label": self.label, "status": self.status}))
        ds.attrs.update(model_attrs(params), label=self.label,
                        escape_multiplicity=int(self.escape_multiplicity))
        return ds


def _eig_tol(J: np.ndarray, err: float, n: int) -> float:
    """Eigenvalues within a few Jacobian errors of zero cannot be signed."""
    finite_J = np.abs(J[np.isfinite(J)])
    jnorm = max(float(finite_J.max()) if finite_J.size else 1.0, 1e-300)
    nominal = 1e-8 * jnorm if not np.isfinite(err) else 0.0
    return max(1e-9 * jnorm, 10.0 * (err if np.isfinite(err) else 0.0) * n, nominal)


def linearise(model: Committee, state: State | np.ndarray, *, status: str = "ok", label: str = "",
              scheme: str = "auto", iterations: int = 0, message: str = "") -> CommitteeFixedPoint:
    """Linearise the flow at ``state`` and classify it.

    Parameters
    ----------
    model : Committee
    state : State or ndarray
        A fixed point (or any state: ``residual`` reports how far from one).
    status : str
        Status of the result (root finders pass ``"converged"`` or ``"failed"``);
        it becomes ``"failed"`` when the linearisation fails.
    label : str
        ``"symmetric_plateau"`` also computes the escape eigenvalue and vector.
    scheme : {"auto", "central", "cone"}
        Jacobian scheme, see :func:`phasekit.committee.jacobians.jacobian`.
    iterations, message
        Passed through to the result.

    Returns
    -------
    CommitteeFixedPoint
        For a reduced model (:meth:`Committee.restrict`): a
        :class:`~phasekit.core.results.FixedPoint` in its coordinates,
        linearised inside the subspace (``scheme`` unused).
    """
    if is_reduced(model):
        return model.linearise(state, label=label, status=status, message=message, iterations=iterations)
    v = _as_vector(model, state, "state")
    jac = _jacobian_of(model, model.rhs_vector, v, scheme=scheme)
    J, f0 = jac.matrix, np.asarray(jac.rhs)
    residual = float(np.abs(f0).max()) if np.all(np.isfinite(f0)) else float("inf")
    spec = eigen_decomposition(J)
    w, V = spec.eigenvalues, spec.eigenvectors
    if not spec.converged:
        # a Jacobian that could not be formed or decomposed: report, do not classify
        status = "failed"
        message = "; ".join(x for x in (message, f"linearisation failed: {spec.message}") if x)
    elif spec.message:  # e.g. the QZ driver stood in for the QR one
        message = "; ".join(x for x in (message, spec.message) if x)
    err = jac.error
    tol = _eig_tol(J, err, v.size)
    n_unst, kind = classify(w, tol)
    extra = {"jacobian": jac, "spectrum": {"method": spec.method, "defective": spec.defective,
                                           "message": spec.message}}
    escape: dict[str, Any] = {}
    if label == "symmetric_plateau" and spec.converged:
        escape = _escape_mode(model, w, V, tol)
    return CommitteeFixedPoint(
        vector=v, eigenvalues=w, eigenvectors=V, jacobian=J, jacobian_error=err, jacobian_scheme=jac.scheme,
        residual=residual, kind=kind, n_unstable=n_unst, eig_tol=tol, iterations=iterations, status=status,
        message=message, extra=extra, model=model, eg=float(model.eg_vector(v)), label=label, **escape)


def _escape_mode(model: Committee, w: np.ndarray, V: np.ndarray, eig_tol: float) -> dict[str, Any]:
    """Escape eigenvalue, unit vector and multiplicity of a symmetric plateau (empty if none)."""
    P = _symmetric_basis(model.K, model.M, model.train_second_layer)
    Qb, _ = np.linalg.qr(P)
    V = np.asarray(V, dtype=complex)
    w = np.asarray(w, dtype=complex)
    off = np.linalg.norm(V - Qb @ (Qb.T @ V), axis=0)
    cand = np.nonzero(off > 0.5)[0]
    if len(cand) == 0:
        return {}
    j = cand[0]
    lam = w[j]
    tol = max(eig_tol, 1e-8 * max(1.0, abs(lam)))
    same = np.nonzero(np.abs(w - lam) <= tol)[0]
    E = V[:, same]
    # canonical member: "student 1 moves towards teacher 1" with its symmetric part removed
    target = np.zeros(V.shape[0])
    target[0] = 1.0
    target = target - Qb @ (Qb.T @ target)
    coef = np.linalg.lstsq(E, target.astype(complex), rcond=None)[0]
    u = E @ coef
    if np.linalg.norm(u) < 1e-8:
        u = E[:, 0]
    u = u / np.linalg.norm(u)
    # phase: R11 component real and positive (it is nonzero by construction unless degenerate)
    k = 0 if abs(u[0]) > 1e-8 else int(np.argmax(np.abs(u)))
    u = u * (np.abs(u[k]) / u[k])
    return {"escape_eigenvalue": float(lam.real) if abs(lam.imag) <= 1e-12 * max(1.0, abs(lam)) else complex(lam),
            "escape_vector": u.real.copy() if np.all(np.abs(u.imag) <= 1e-10) else u,
            "escape_multiplicity": int(len(same))}


def _failed_point(model: Committee, v: np.ndarray, label: str, message: str,
                  iterations: int = 0) -> CommitteeFixedPoint:
    """A failed result without a linearisation (NaN spectrum) at the finite state ``v``."""
    v = _pull_inside(model, v)
    f = model.rhs_vector(v)
    residual = float(np.abs(f).max()) if np.all(np.isfinite(f)) else float("inf")
    return CommitteeFixedPoint.unlinearised(v, residual, status="failed", message=message, iterations=iterations,
                                            model=model, eg=float(model.eg_vector(v)), label=label)


def _linearise_result(model: Committee, res: _NewtonResult, v_start: np.ndarray, label: str,
                      scheme: str) -> CommitteeFixedPoint:
    """Linearise a Newton result; a non-finite end point becomes a failed result at the start."""
    if not np.all(np.isfinite(res.v)):
        return _failed_point(model, v_start, label, f"{res.message} (the iteration left the finite states)",
                             res.iterations)
    try:
        return linearise(model, res.v, status="converged" if res.converged else "failed", label=label,
                         scheme=scheme, iterations=res.iterations, message=res.message)
    except np.linalg.LinAlgError as exc:
        return _failed_point(model, res.v, label, f"{res.message}; the linearisation failed: {exc}", res.iterations)
