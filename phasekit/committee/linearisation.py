"""Fixed points of the committee flow as results: ``FixedPoint`` and ``linearise``.

A fixed point carries its state, the spectrum of the Jacobian (sorted by
decreasing real part, unit eigenvectors in the state order), its residual,
its classification (stable, saddle, unstable, marginal) and, for a symmetric
plateau, the escape eigenvalue and eigenvector.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from ..core.datasets import provenance_attrs
from ..core.spectrum import (
    eigen_decomposition,
)
from .cone import _pull_inside
from .jacobians import _as_vector, _jacobian_of
from .model import Committee, State, vector_labels
from .newton import _NewtonResult
from .symmetry import _symmetric_basis

__all__ = ['FixedPoint', 'linearise']


@dataclass(eq=False)
class FixedPoint:
    """A fixed point of a flow and its linearisation.

    The result type of every fixed-point search in phasekit: the committee
    machine here, and deep linear networks (:mod:`phasekit.deep_linear`,
    where ``state`` is a plain vector, ``model`` is ``None`` and ``eg`` is nan).

    Attributes
    ----------
    state : State or ndarray
        The order parameters (a :class:`State` for the committee machine).
    eigenvalues : ndarray, shape (n_state,)
        Spectrum of the Jacobian of ``d state / d alpha`` at the model's eta
        (units 1/alpha), sorted by decreasing real part (ties: decreasing
        imaginary part).  Real dtype when the spectrum is real, complex otherwise.
    eigenvectors : ndarray, shape (n_state, n_state)
        Matching unit eigenvectors as columns, in the state order (R row-major,
        then the upper triangle of Q); each is scaled so that its
        largest-magnitude component (the first of ties) is real and positive,
        and the columns of a repeated real eigenvalue are a real orthonormal
        basis of its eigenspace (:func:`phasekit.core.spectrum.eigen_decomposition`).
    eg : float
        Generalisation error at the fixed point.
    n_unstable : int
        Eigenvalues with real part above the tolerance ``eig_tol``.
    stable : bool
        Converged and every eigenvalue has real part below ``-eig_tol``.
    residual : float
        ``max |d state / d alpha|`` at ``state``.
    converged : bool
        Whether the root finder met its tolerance.
    kind : str
        ``"stable"``, ``"saddle"``, ``"unstable"`` (every direction unstable),
        ``"marginal"`` (an eigenvalue within ``eig_tol`` of zero, none above)
        or ``"not_converged"``.
    label : str
        ``"perfect"``, ``"symmetric_plateau"`` or ``""``.
    escape_eigenvalue, escape_vector
        For a symmetric plateau: the leading eigenvalue whose eigenvector
        breaks the permutation symmetry, and a unit vector of its eigenspace
        (the projection of the direction "student 1 moves towards teacher 1",
        R11 component positive); ``None`` otherwise.
    escape_multiplicity : int
        Dimension of the escape eigenspace (0 when not a plateau).
    jacobian : ndarray, shape (n_state, n_state)
    jacobian_error : float
        Estimated max error of a Jacobian entry (``nan`` if not estimated).
    jacobian_method : str
    eig_tol : float
        Threshold separating stable, marginal and unstable eigenvalues.
    model : Committee
    iterations : int
    message : str
    """

    state: State
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    eg: float
    n_unstable: int
    stable: bool
    residual: float
    converged: bool
    kind: str
    model: Committee | None
    jacobian: np.ndarray
    jacobian_error: float = float("nan")
    jacobian_method: str = ""
    eig_tol: float = 0.0
    label: str = ""
    escape_eigenvalue: float | None = None
    escape_vector: np.ndarray | None = None
    escape_multiplicity: int = 0
    iterations: int = 0
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        lead = self.eigenvalues[0] if len(self.eigenvalues) else float("nan")
        return (f"FixedPoint({self.kind}, label={self.label!r}, eg={self.eg:.6g}, n_unstable={self.n_unstable}, "
                f"leading eigenvalue={lead:.6g}, residual={self.residual:.2g}, state={self.state!r})")

    @property
    def vector(self) -> np.ndarray:
        """The state as a vector (R row-major, then the upper triangle of Q)."""
        return self.state.to_vector() if isinstance(self.state, State) else np.asarray(self.state)

    def to_dataset(self) -> xr.Dataset:
        """The fixed point as an ``xarray.Dataset``.

        Coordinates ``i``, ``k`` (students), ``n`` (teachers), ``component``
        (state components, e.g. ``"R12"``) and ``mode`` (eigenvalue index,
        0 = largest real part).  Variables ``R``, ``Q``, ``eigenvalue_real``,
        ``eigenvalue_imag``, ``eigenvector_real``, ``eigenvector_imag``
        ``(component, mode)``, ``jacobian`` ``(component, component_in)``,
        scalars ``eg``, ``residual``, ``n_unstable``, ``stable``,
        ``escape_eigenvalue`` (nan if none).
        """
        return _fixed_point_dataset(self)


def _fixed_point_dataset(fp: FixedPoint) -> xr.Dataset:
    model = fp.model
    if model is None:
        raise ValueError("to_dataset: only committee-machine fixed points have a dataset layout")
    K, M, n = model.K, model.M, model.n_state
    labels = vector_labels(K, M)
    ev = np.asarray(fp.eigenvalues, dtype=complex)
    vec = np.asarray(fp.eigenvectors, dtype=complex)
    one = {"units": "1"}
    rate = {"units": "1/alpha"}
    esc_vec = np.full(n, np.nan) if fp.escape_vector is None else np.real(fp.escape_vector)
    ds = xr.Dataset(
        {
            "R": (("i", "n"), fp.state.R, {"long_name": "student-teacher overlap R_in", **one}),
            "Q": (("i", "k"), fp.state.Q, {"long_name": "student-student overlap Q_ik", **one}),
            "eigenvalue_real": ("mode", ev.real, {"long_name": "real part of Jacobian eigenvalue", **rate}),
            "eigenvalue_imag": ("mode", ev.imag, {"long_name": "imaginary part of Jacobian eigenvalue", **rate}),
            "eigenvector_real": (("component", "mode"), vec.real,
                                 {"long_name": "real part of Jacobian eigenvector", **one}),
            "eigenvector_imag": (("component", "mode"), vec.imag,
                                 {"long_name": "imaginary part of Jacobian eigenvector", **one}),
            "jacobian": (("component", "component_in"), fp.jacobian,
                         {"long_name": "Jacobian d(d state/d alpha)/d state", **rate}),
            "eg": ((), fp.eg, {"long_name": "generalisation error eps_g", **one}),
            "residual": ((), fp.residual, {"long_name": "max |d state / d alpha| at the fixed point", **rate}),
            "n_unstable": ((), fp.n_unstable, {"long_name": "number of unstable directions", **one}),
            "stable": ((), int(fp.stable), {"long_name": "linearly stable (1) or not (0)", **one}),
            "escape_eigenvalue": ((), np.nan if fp.escape_eigenvalue is None else fp.escape_eigenvalue,
                                  {"long_name": "escape eigenvalue of the symmetric plateau", **rate}),
            "escape_vector": ("component", esc_vec, {"long_name": "escape eigenvector", **one}),
        },
        coords={
            "i": ("i", np.arange(1, K + 1), {"long_name": "student unit", **one}),
            "k": ("k", np.arange(1, K + 1), {"long_name": "student unit", **one}),
            "n": ("n", np.arange(1, M + 1), {"long_name": "teacher unit", **one}),
            "component": ("component", labels, {"long_name": "state component", **one}),
            "component_in": ("component_in", labels, {"long_name": "state component (derivative)", **one}),
            "mode": ("mode", np.arange(n), {"long_name": "eigenmode (0 = largest real part)", **one}),
        },
    )
    params = model.parameters()
    attrs = provenance_attrs({"model": params, "label": fp.label})
    attrs.update(model=json.dumps(params), K=K, M=M, activation=params["activation"], eta=model.eta,
                 second_order=int(model.second_order), noise=model.noise, kind=fp.kind, label=fp.label,
                 converged=int(fp.converged), jacobian_method=fp.jacobian_method,
                 jacobian_error=float(fp.jacobian_error), eig_tol=float(fp.eig_tol),
                 escape_multiplicity=int(fp.escape_multiplicity), message=fp.message)
    ds.attrs.update(attrs)
    return ds


def _classify(w: np.ndarray, tol: float, converged: bool) -> tuple[int, bool, str]:
    re = np.real(w)
    n_unst = int(np.sum(re > tol))
    if not converged:
        return n_unst, False, "not_converged"
    if n_unst == 0:
        if np.all(re < -tol):
            return 0, True, "stable"
        return 0, False, "marginal"
    if n_unst == len(w):
        return n_unst, False, "unstable"
    return n_unst, False, "saddle"


def linearise(model: Committee, state: State | np.ndarray, *, converged: bool = True, label: str = "",
              method: str = "auto", iterations: int = 0, message: str = "") -> FixedPoint:
    """Linearise the flow at ``state`` and classify it.

    Parameters
    ----------
    model : Committee
    state : State or ndarray
        A fixed point (or any state: ``residual`` reports how far from one).
    converged : bool
        Passed through to the result (root finders set it).
    label : str
        ``"symmetric_plateau"`` also computes the escape eigenvalue and vector.
    method : str
        Jacobian method, see :func:`jacobian`.

    Returns
    -------
    FixedPoint
    """
    v = _as_vector(model, state, "state")
    J, info = _jacobian_of(model, model.rhs_vector, v, method=method, full_output=True)
    f0 = np.asarray(info["rhs"])
    residual = float(np.abs(f0).max()) if np.all(np.isfinite(f0)) else float("inf")
    spec = eigen_decomposition(J)
    w, V = spec.eigenvalues, spec.eigenvectors
    if not spec.converged:
        # a Jacobian that could not be formed or decomposed: report, do not classify
        converged = False
        message = "; ".join(x for x in (message, f"linearisation failed: {spec.message}") if x)
    elif spec.message:  # e.g. the QZ driver stood in for the QR one
        message = "; ".join(x for x in (message, spec.message) if x)
    err = info["error"]
    finite_J = np.abs(J[np.isfinite(J)])
    jnorm = max(float(finite_J.max()) if finite_J.size else 1.0, 1e-300)
    # eigenvalues within a few Jacobian errors of zero cannot be signed
    nominal = 1e-8 * jnorm if not np.isfinite(err) else 0.0
    tol = max(1e-9 * jnorm, 10.0 * (err if np.isfinite(err) else 0.0) * v.size, nominal)
    n_unst, stable, kind = _classify(w, tol, converged)
    info["spectrum"] = {"method": spec.method, "defective": spec.defective, "message": spec.message}
    fp = FixedPoint(
        state=State.from_vector(v, model.K, model.M), eigenvalues=w, eigenvectors=V,
        eg=float(model.eg_vector(v)), n_unstable=n_unst, stable=stable, residual=residual,
        converged=converged, kind=kind, model=model, jacobian=J, jacobian_error=err,
        jacobian_method=info["method"], eig_tol=tol, label=label, iterations=iterations, message=message,
        extra={"jacobian_info": {k: val for k, val in info.items() if k != "rhs"}},
    )
    if label == "symmetric_plateau" and spec.converged:
        _attach_escape(fp)
    return fp


def _attach_escape(fp: FixedPoint) -> None:
    K, M = fp.model.K, fp.model.M
    P = _symmetric_basis(K, M)
    Qb, _ = np.linalg.qr(P)
    V = np.asarray(fp.eigenvectors, dtype=complex)
    w = np.asarray(fp.eigenvalues, dtype=complex)
    off = np.linalg.norm(V - Qb @ (Qb.T @ V), axis=0)
    cand = np.nonzero(off > 0.5)[0]
    if len(cand) == 0:
        return
    j = cand[0]
    lam = w[j]
    tol = max(fp.eig_tol, 1e-8 * max(1.0, abs(lam)))
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
    fp.escape_eigenvalue = float(lam.real) if abs(lam.imag) <= 1e-12 * max(1.0, abs(lam)) else complex(lam)
    fp.escape_vector = u.real.copy() if np.all(np.abs(u.imag) <= 1e-10) else u
    fp.escape_multiplicity = int(len(same))


def _failed_point(model: Committee, v: np.ndarray, label: str, message: str, iterations: int = 0) -> FixedPoint:
    """A not-converged result without a linearisation (NaN spectrum) at the finite state ``v``."""
    n = model.n_state
    v = _pull_inside(model, v)
    f = model.rhs_vector(v)
    residual = float(np.abs(f).max()) if np.all(np.isfinite(f)) else float("inf")
    nan = np.full(n, np.nan)
    return FixedPoint(state=State.from_vector(v, model.K, model.M), eigenvalues=nan, eigenvectors=np.full((n, n), np.nan),
                      eg=float(model.eg_vector(v)), n_unstable=0, stable=False, residual=residual, converged=False,
                      kind="not_converged", model=model, jacobian=np.full((n, n), np.nan), label=label,
                      iterations=iterations, message=message)


def _linearise_result(model: Committee, res: _NewtonResult, v_start: np.ndarray, label: str,
                      method: str) -> FixedPoint:
    """Linearise a Newton result; a non-finite end point becomes a not-converged result at the start."""
    if not np.all(np.isfinite(res.v)):
        return _failed_point(model, v_start, label, f"{res.message} (the iteration left the finite states)",
                             res.iterations)
    try:
        return linearise(model, res.v, converged=res.converged, label=label, method=method,
                         iterations=res.iterations, message=res.message)
    except np.linalg.LinAlgError as exc:
        return _failed_point(model, res.v, label, f"{res.message}; the linearisation failed: {exc}", res.iterations)
