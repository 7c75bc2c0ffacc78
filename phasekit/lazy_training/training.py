"""Lazy versus feature-learning training of a two-layer network on a teacher.

Model
-----
Inputs ``x ~ N(0, I_d)``.  The teacher has ``m0`` unit-norm ReLU units::

    f*(x) = sum_j s_j relu(b_j . x),      |b_j| = 1,  s_j = +-1 (alternating),

and the student, with both layers trained, is::

    f(x) = (scale / m) sum_i c_i g(a_i . x).

Initial scale ``tau``: first-layer rows ``a_i ~ N(0, tau^2 I_d / d)`` (so that
``|a_i| ~= tau`` and the pre-activation ``a_i . x`` has standard deviation
``~= tau``; the teacher's units correspond to ``tau = 1``) and output weights
``c_i ~ N(0, tau^2)``.  The symmetrised initialisation draws ``m / 2`` units and
duplicates each with the opposite output weight, so that ``f = 0`` exactly at
``t = 0``.  For a ReLU student only ``scale * tau^2`` matters up to a change
of time unit (the model is 2-homogeneous): small values give feature learning
(mean-field regime), large ones lazy (tangent-kernel) training.

Population loss and its gradient
--------------------------------
``L = (1/2) E[(f - f*)^2]`` only involves the pair kernels
``K(a, b) = E[g(a.x) h(b.x)]`` of the 2x2 covariance of ``(a.x, b.x)``, and
Price's theorem (``dK/dC_uu = E[g'' h] / 2``, ``dK/dC_uv = E[g' h']``) gives::

    grad_a K(a, b) = E[g''(u) h(v)] a + E[g'(u) h'(v)] b,    u = a.x, v = b.x.

Every kernel is a pair moment of the activation (:meth:`phasekit.Activation.pair_moments`).
ReLU: arc-cosine kernels; with ``theta`` the angle between ``a`` and ``b``,
``K = |a||b| (sin theta + (pi - theta) cos theta) / (2 pi)``,
``E[g' h'] = (pi - theta) / (2 pi)``, ``E[g'' h] = |b| sin theta / (2 pi |a|)``;
erf in closed form as well.  Sigmoid and tanh: probit mixtures
``g = mean + amp sum_q w_q (Phi(x/omega_q) - 1/2)`` (the logistic from its
Gaussian scale-mixture form), where every kernel is an orthant probability in
closed form, exact derivatives included.  Any other activation: Gauss-Hermite
quadrature on the Cholesky factor of each 2x2 covariance.  No sampling anywhere.

Time
----
Gradient flow runs in the *mean-field time rescaled by scale^2*,

    dw/dt = -(m / scale^2) grad_w L,

the normalisation of Chizat, Oyallon and Bach (a flow on ``L / scale^2`` with a
per-unit learning rate ``m``).  In it the lazy dynamics has the same speed for
every output ``scale``.  The tangent kernel of a ReLU network grows like
``tau^2`` (like ``tau`` for bounded activations), whereas small-``tau`` runs
first escape the saddle at ``w = 0`` in a time growing like ``log(1 / tau)``;
:func:`horizon` therefore runs each point of a sweep to ``T / max(1, tau^2)``
(``T / max(1, tau)``): ``T`` units of kernel time when the kernel grows
(``tau > 1``), ``T`` units of mean-field time otherwise.  Mini-batch SGD with
learning rate ``lr`` advances ``t`` by ``lr`` per step.

Tangent model
-------------
The linearisation ``f_lin(x; w) = f(x; w0) + grad_w f(x; w0) . (w - w0)`` has
a quadratic population loss ``(1/2) theta^T G theta - b^T theta + L(w0)``;
``G`` and ``b`` are Gaussian expectations too (the ``d x d`` blocks need
``E[g'(u) g'(v) x x^T] = E[g'g'] I + E[g'''g'] a a^T + E[g''g''] (a b^T + b a^T)
+ E[g'g'''] b b^T``, closed forms for ReLU and the probit mixtures).  Units
with identical first-layer weights (the symmetrised pairs) have identical or
proportional features and are merged, which halves the size of ``G``.  The
gradient flow of the tangent model, in the same time units, is solved exactly
through the eigen-decomposition of ``G``.

How close the trained network stays to the trained tangent model as the
output scale grows depends on the smoothness of ``g`` and on the
initialisation.  The lazy-training bound ``O(1/scale)`` is attained by a
smooth network whose second-order Taylor term survives, e.g. the centred
predictor ``f(w) - f(w0)`` (``TwoLayer(offset=w0)``) from an unsymmetrised
start.  With the symmetrised start the twins' displacements are opposite in
``a`` and equal in ``c`` to leading order, so the second-order term cancels
within each pair and the distance falls like ``1/scale^2``.  A ReLU network is
not smooth: moving ``a`` by ``eps`` flips ``relu'`` on a slab of probability
``~eps``, so its linearisation error is ``~eps^(3/2)`` in L2 per unit and the
distance falls only like ``(scale m)^(-1/2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.activations import activation as get_activation
from ..core.ode import crossing, solve_flow
from ..core.options import SolverOptions
from .loss import TwoLayer
from .networks import (
    Array,
    Student,
    _check_int,
    _check_positive,
    init_student,
    make_teacher,
)

__all__ = ['Trajectory', 'horizon', 'run_two_layer', 'train_gradient_flow', 'train_sgd']


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Result of a training run.

    Attributes
    ----------
    t : ndarray, shape (n,)
        Sample times (units of the module docstring).
    loss : ndarray, shape (n,)
        Exact population loss at ``t``.
    student : Student
        Weights at the last sample.
    time_to_threshold : float
        First time the loss fell below ``loss_threshold`` (NaN if never).
    n_evaluations : int
        Loss-gradient evaluations (flow) or steps (SGD).
    status : str
        ``"ok"`` or ``"failed"`` (solver failure, or a non-finite SGD loss;
        samples end where the solver stopped).
    message : str
        How the flow ended (:attr:`phasekit.core.ode.FlowRun.message`; empty for SGD).
    """

    t: Array
    loss: Array
    student: Student
    time_to_threshold: float
    n_evaluations: int
    status: str = "ok"
    message: str = ""


def _time_grid(t_final: float, n_points: int) -> Array:
    if n_points < 2:
        raise ValueError(f"n_points: need at least 2 samples, got {n_points!r}")
    t1 = min(1e-3, t_final / 10.0)
    return np.concatenate([[0.0], np.geomspace(t1, t_final, n_points - 1)])


def train_gradient_flow(
    problem: TwoLayer,
    student0: Student,
    t_final: float,
    *,
    n_points: int = 61,
    loss_threshold: float | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    method: str = "RK45",
) -> Trajectory:
    """Gradient flow ``dw/dt = -(m / scale^2) grad L`` on the exact population loss.

    Parameters
    ----------
    problem : TwoLayer
    student0 : Student
        Initial weights.
    t_final : float
        Final time ``> 0``.
    n_points : int
        Samples (0, then log-spaced up to ``t_final``).
    loss_threshold : float, optional
        Record the first time the loss falls below this value (``> 0``).
    rtol, atol : float
        Tolerances of the adaptive integrator (:func:`phasekit.core.ode.solve_flow`).
    method : str
        Solver method (one of :data:`phasekit.core.options.SOLVER_METHODS`).

    Returns
    -------
    Trajectory
    """
    problem._check(student0)
    t_final = _check_positive(t_final, "t_final")
    n_points = _check_int(n_points, "n_points", 2)
    if loss_threshold is not None:
        loss_threshold = _check_positive(loss_threshold, "loss_threshold")
    m, d = student0.m, student0.d
    factor = -m / problem.scale**2
    options = SolverOptions(method=method, rtol=rtol, atol=atol)

    def rhs(_t: float, w: Array) -> Array:
        _, g = problem.loss_and_gradient(Student.from_flat(w, m, d))
        return factor * g.flat()

    events = []
    if loss_threshold is not None:
        events.append(crossing(lambda w: problem.loss(Student.from_flat(w, m, d)), loss_threshold,
                               terminal=False, name="loss"))
    run = solve_flow(rhs, student0.flat(), (0.0, t_final), events=events, options=options,
                     t_eval=_time_grid(t_final, n_points))
    losses = np.array([problem.loss(Student.from_flat(w, m, d)) for w in run.y])
    tt = np.nan
    if loss_threshold is not None:
        if losses[0] <= loss_threshold:
            tt = 0.0
        elif run.t_events["loss"].size:
            tt = float(run.t_events["loss"][0])
    status = "ok" if run.status == "ok" else "failed"
    return Trajectory(run.t, losses, Student.from_flat(run.y[-1], m, d), tt, run.nfev, status, run.message)


def train_sgd(
    problem: TwoLayer,
    student0: Student,
    t_final: float,
    *,
    learning_rate: float = 0.01,
    batch_size: int = 64,
    seed: int = 0,
    n_points: int = 41,
    loss_threshold: float | None = None,
) -> Trajectory:
    """Mini-batch SGD on fresh Gaussian samples, in the time units of the flow.

    Each step draws ``batch_size`` new inputs and moves
    ``w <- w - learning_rate (m / scale^2) grad_w Lhat`` with ``Lhat`` the
    batch mean of ``(f - f*)^2 / 2``; time advances by ``learning_rate`` per step,
    so that small learning rates follow :func:`train_gradient_flow`.

    Parameters
    ----------
    problem : TwoLayer
    student0 : Student
    t_final : float
        Final time ``> 0`` (``ceil(t_final / learning_rate)`` steps).
    learning_rate : float
        Step in time units, ``> 0``.
    batch_size : int
        Fresh samples per step, ``>= 1``.
    seed : int
        Seed of the samples.
    n_points : int
        Roughly log-spaced checkpoints at which the exact population loss is recorded.
    loss_threshold : float, optional
        Record the first checkpoint time with loss below this value.
    """
    problem._check(student0)
    t_final = _check_positive(t_final, "t_final")
    lr = _check_positive(learning_rate, "learning_rate")
    batch = _check_int(batch_size, "batch_size", 1)
    n_points = _check_int(n_points, "n_points", 2)
    n_steps = int(math.ceil(t_final / lr))
    checkpoints = np.unique(np.round(np.geomspace(1, n_steps, n_points - 1)).astype(int))
    rng = np.random.default_rng([int(seed), 0x5CD])
    A, c = student0.a.copy(), student0.c.copy()
    m = student0.m
    k = problem.scale / m
    step_factor = lr * m / problem.scale**2
    g, dg = problem.act.g, problem.act.dg
    t_list, l_list = [0.0], [problem.loss(student0)]
    next_cp = 0
    for step in range(1, n_steps + 1):
        x = rng.standard_normal((batch, student0.d))
        U = x @ A.T
        gU = g(U)
        err = k * (gU @ c) - problem.target_output(x)  # (batch,)
        grad_c = k * (gU.T @ err) / batch
        grad_a = k * c[:, None] * ((dg(U) * err[:, None]).T @ x) / batch
        A -= step_factor * grad_a
        c -= step_factor * grad_c
        if next_cp < len(checkpoints) and step == checkpoints[next_cp]:
            t_list.append(step * lr)
            l_list.append(problem.loss(Student(A, c)))
            next_cp += 1
    losses = np.array(l_list)
    t = np.array(t_list)
    tt = np.nan
    if loss_threshold is not None:
        below = np.nonzero(losses <= _check_positive(loss_threshold, "loss_threshold"))[0]
        tt = float(t[below[0]]) if below.size else np.nan
    status = "ok" if np.all(np.isfinite(losses)) else "failed"
    return Trajectory(t, losses, Student(A, c), tt, n_steps, status, "")


def horizon(tau: float, T: float, activation: str = "relu") -> float:
    """Final time of a sweep point: ``T / max(1, kappa(tau))``.

    ``kappa`` is how the tangent kernel grows with the initial scale: ``tau^2``
    for positively homogeneous activations (relu, linear: the network is then
    homogeneous of degree 2 in the weights), ``tau`` for the others (bounded
    ones such as sigmoid, tanh, erf: ``E[g'(u)^2] ~ 1 / tau`` for wide
    pre-activations).  Every run thus covers ``T`` units of its kernel time
    ``kappa t`` when ``kappa > 1``, and ``T`` units of mean-field time otherwise
    (see the module docstring).
    """
    tau = _check_positive(tau, "tau")
    kappa = tau**2 if get_activation(activation).positively_homogeneous else tau
    return _check_positive(T, "T") / max(1.0, kappa)


# What run_two_layer returns (their long names and units are in the study layer's measure registry).
RUN_OUTPUTS: tuple[str, ...] = (
    "loss", "loss_initial", "relative_loss", "loss_floor", "excess_loss", "weight_displacement", "tangent_loss",
    "tangent_loss_limit", "tangent_displacement", "tangent_distance", "relative_tangent_distance",
    "time_to_threshold", "t_final", "n_evaluations", "failed",
)


def run_two_layer(
    *,
    d: int,
    m0: int,
    m: int,
    tau: float,
    seed: int = 0,
    teacher_seed: int = 0,
    activation: str = "relu",
    scale: float = 1.0,
    symmetric: bool = True,
    centered: bool = False,
    t_final: float | None = None,
    T: float = 200.0,
    threshold: float = 0.25,
    tangent: bool = True,
    trainer: str = "flow",
    learning_rate: float = 0.01,
    batch_size: int = 64,
    quadrature_nodes: int = 32,
    rtol: float = 1e-6,
) -> dict[str, float]:
    """Train one student on a teacher and return the quantities of :data:`RUN_OUTPUTS`.

    Parameters
    ----------
    d, m0, m : int
        Input dimension, teacher units, student units.
    tau : float
        Initial scale (:func:`init_student`).
    seed, teacher_seed : int
        Seeds of the student initialisation and of the teacher.
    activation : str
        Student activation.
    scale : float
        Output scale.
    symmetric : bool
        Symmetrised initialisation (output exactly 0 at start; ``m`` even).
    centered : bool
        Train the centred predictor ``f(w) - f(w0)`` (:class:`TwoLayer` ``offset``).
    t_final : float, optional
        Final time; default :func:`horizon` ``(tau, T, activation)``.
    T : float
        Horizon parameter of :func:`horizon`.
    threshold : float
        Loss threshold, as a fraction of the initial loss, for ``time_to_threshold``.
    tangent : bool
        Also train the tangent model and measure the distance to it.
    trainer : {"flow", "sgd"}
        Gradient flow on the exact loss, or mini-batch SGD on fresh samples.
    learning_rate, batch_size : float, int
        SGD settings.
    quadrature_nodes : int
        Gauss-Hermite nodes for activations without closed forms.
    rtol : float
        Relative tolerance of the flow (absolute tolerance ``1e-3 rtol tau``).

    Returns
    -------
    dict
        Scalars named as in :data:`RUN_OUTPUTS` (NaN where not computed): final, initial and
        relative loss, the symmetry floor and the excess over it, the relative weight
        displacement, the tangent model's loss (at the same time and at infinite time),
        displacement and distance to the network, the time to the loss threshold
        (mean-field time t, NaN if never), the final time, the gradient evaluations
        (or SGD steps) and ``failed`` (1 for a solver failure or a non-finite loss).
    """
    if trainer not in ("flow", "sgd"):
        raise ValueError(f"trainer: must be 'flow' or 'sgd', got {trainer!r}")
    threshold = _check_positive(threshold, "threshold")
    teacher = make_teacher(d, m0, teacher_seed)
    student0 = init_student(m, d, tau, seed, symmetric=bool(symmetric))
    problem = TwoLayer(teacher, activation, scale, quadrature_nodes,
                       offset=student0 if centered else None)
    tf = horizon(tau, T, activation) if t_final is None else _check_positive(t_final, "t_final")
    loss0 = problem.loss(student0)
    if trainer == "flow":
        traj = train_gradient_flow(problem, student0, tf, loss_threshold=threshold * loss0, rtol=rtol,
                                   atol=rtol * 1e-3 * tau)
    else:
        traj = train_sgd(problem, student0, tf, learning_rate=learning_rate, batch_size=batch_size,
                         seed=seed, loss_threshold=threshold * loss0)
    w0 = student0.flat()
    out = {key: np.nan for key in RUN_OUTPUTS}
    t_end = float(traj.t[-1])
    floor = problem.loss_floor()
    out.update(
        loss=float(traj.loss[-1]),
        loss_initial=loss0,
        relative_loss=float(traj.loss[-1]) / loss0,
        loss_floor=floor,
        excess_loss=float(traj.loss[-1]) - floor,
        weight_displacement=float(np.linalg.norm(traj.student.flat() - w0) / np.linalg.norm(w0)),
        time_to_threshold=traj.time_to_threshold,
        t_final=t_end,
        n_evaluations=float(traj.n_evaluations),
        failed=float(traj.status != "ok"),
    )
    if tangent:
        tm = problem.tangent(student0)
        dist = tm.distance(traj.student, t_end)
        out.update(
            tangent_loss=tm.loss(t_end),
            tangent_loss_limit=tm.loss_limit(),
            tangent_displacement=tm.displacement(t_end) / float(np.linalg.norm(w0)),
            tangent_distance=dist,
            relative_tangent_distance=dist / math.sqrt(problem.teacher_norm2()),
        )
    return out
