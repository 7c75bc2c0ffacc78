"""Lazy versus feature-learning training of two-layer networks (phasekit.lazy_training).

Every exact formula is checked against an independent route: Monte Carlo over
Gaussian inputs, finite differences, the activation registry's quadrature, a
numerical integration, or a closed-form limit.
"""

import math

import numpy as np
import pytest
import xarray as xr
from scipy import special
from scipy.integrate import quad, solve_ivp

from phasekit.core.activations import activation
from phasekit.lazy_training.loss import TwoLayer
from phasekit.lazy_training.networks import Student, init_student, make_teacher
from phasekit.lazy_training.pair_kernels import (
    _MIXTURE_NODES,
    _logistic_scale_rule,
    _mixture_for,
    _ReluKernels,
)
from phasekit.lazy_training.training import (
    horizon,
    run_two_layer,
    train_gradient_flow,
    train_sgd,
)
from phasekit.study.recipes import run_recipe
from phasekit.study.scans import two_layer_sweep

N_MC = 10_000_000
CHUNK = 500_000


def random_student(m, d, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return Student(rng.standard_normal((m, d)) * scale / math.sqrt(d), rng.standard_normal(m) * scale)


def mc_loss_and_gradient(problem, student, n, seed):
    """Monte Carlo means and standard errors of the loss and of every gradient component."""
    rng = np.random.default_rng(seed)
    m, d = student.m, student.d
    k = problem.scale / m
    g, dg = problem.act.g, problem.act.dg
    s1 = np.zeros(1 + m + m * d)
    s2 = np.zeros_like(s1)
    for _ in range(n // CHUNK):
        x = rng.standard_normal((CHUNK, d))
        U = x @ student.a.T
        gU = g(U)
        e = k * (gU @ student.c) - problem.target_output(x)
        gc = k * gU * e[:, None]                         # d(e^2/2)/dc_i
        ga = (k * student.c) * dg(U) * e[:, None]        # d(e^2/2)/da_i = ga_i x
        s1[0] += np.sum(0.5 * e * e)
        s2[0] += np.sum(0.25 * e**4)
        s1[1:m + 1] += gc.sum(0)
        s2[1:m + 1] += (gc * gc).sum(0)
        s1[m + 1:] += (ga.T @ x).ravel()
        s2[m + 1:] += ((ga * ga).T @ (x * x)).ravel()
    mean = s1 / n
    se = np.sqrt((s2 / n - mean**2) / n)
    return mean, se


@pytest.mark.parametrize("act", ["relu", "sigmoid"])
def test_population_loss_and_gradient_match_monte_carlo(act):
    teacher = make_teacher(5, 3, seed=1)
    problem = TwoLayer(teacher, act, scale=1.5)
    student = random_student(8, 5, seed=2, scale=1.2)
    loss, grad = problem.loss_and_gradient(student)
    exact = np.concatenate([[loss], grad.c, grad.a.ravel()])
    mean, se = mc_loss_and_gradient(problem, student, N_MC, seed=3)
    z = np.abs(exact - mean) / se
    print(f"\n{act}: loss {loss:.6f}, MC {mean[0]:.6f} +- {se[0]:.1e}; max |z| over "
          f"{z.size} loss and gradient entries = {z.max():.2f}")
    assert z.max() < 5.0


def test_centred_predictor_matches_monte_carlo():
    teacher = make_teacher(6, 2, seed=4)
    offset = random_student(8, 6, seed=5)
    problem = TwoLayer(teacher, "tanh", scale=2.0, offset=offset)
    student = random_student(8, 6, seed=6)
    loss, grad = problem.loss_and_gradient(student)
    mean, se = mc_loss_and_gradient(problem, student, 1_000_000, seed=7)
    exact = np.concatenate([[loss], grad.c, grad.a.ravel()])
    assert np.max(np.abs(exact - mean) / se) < 5.0


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "erf", "softplus"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_gradient_matches_finite_differences(act, symmetric):
    teacher = make_teacher(4, 3, seed=8)
    problem = TwoLayer(teacher, act, scale=1.3, offset=None if symmetric else random_student(6, 4, 9))
    student = init_student(6, 4, 0.9, seed=10, symmetric=symmetric)
    if symmetric:  # move off the symmetric point so that twins differ
        student = Student(student.a + 0.05 * random_student(6, 4, 11).a, student.c)
    _, grad = problem.loss_and_gradient(student)
    w = student.flat()
    h = 1e-5
    fd = np.empty_like(w)
    for j in range(w.size):
        e = np.zeros_like(w)
        e[j] = h
        fd[j] = (problem.loss(Student.from_flat(w + e, 6, 4)) - problem.loss(Student.from_flat(w - e, 6, 4))) / (2 * h)
    an = grad.flat()
    rel = np.max(np.abs(fd - an)) / np.max(np.abs(an))
    print(f"\n{act}, {'symmetrised' if symmetric else 'centred'}: max |fd - exact| / max |exact| = {rel:.1e}")
    assert rel < 1e-7, rel


def test_relu_kernels_closed_form_limits():
    rng = np.random.default_rng(12)
    a = rng.standard_normal(5)
    b = rng.standard_normal(5)
    b -= (a @ b) / (a @ a) * a  # orthogonal to a
    A = np.stack([a, a, -a, b])
    p = _ReluKernels().pairs(A[:1], A)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    # identical, antiparallel, orthogonal arguments
    np.testing.assert_allclose(p.K[0], [na**2 / 2, na**2 / 2, 0.0, na * nb / (2 * np.pi)], atol=1e-14)
    np.testing.assert_allclose(p.J[0], [0.5, 0.5, 0.0, 0.25], atol=1e-14)
    np.testing.assert_allclose(p.H[0], [0.0, 0.0, 0.0, nb / (2 * np.pi * na)], atol=1e-9)


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "erf"])
def test_mixture_kernels_match_registry(act):
    """Probit-mixture closed forms against the registry's I2, H2, J2 (quadrature or closed forms)."""
    rng = np.random.default_rng(13)
    A = rng.standard_normal((4, 6)) * 0.25  # where the registry's 96-node quadrature is accurate
    B = rng.standard_normal((3, 6)) * 0.25
    kern = _mixture_for(act)
    reg = activation(act)
    for X, Y in ((A, A), (A, B)):
        p = kern.pairs(X, Y)
        C = np.empty(p.K.shape + (2, 2))
        C[..., 0, 0] = np.sum(X * X, 1)[:, None]
        C[..., 1, 1] = np.sum(Y * Y, 1)[None, :]
        C[..., 0, 1] = C[..., 1, 0] = X @ Y.T
        np.testing.assert_allclose(p.K, reg.I2(C), atol=1e-8)
        np.testing.assert_allclose(p.J, reg.J2(C), atol=1e-8)
        np.testing.assert_allclose(p.H, reg.H2(C), atol=1e-8)
        np.testing.assert_allclose(p.Hb, reg.H2(C[..., ::-1, ::-1]), atol=1e-8)
    # third-order kernels of the tangent model against Gauss-Hermite with analytic derivatives
    third = {"sigmoid": lambda x: (lambda s: s * (1 - s) * (1 - 6 * s * (1 - s)))(special.expit(x)),
             "tanh": lambda x: (lambda t: -2 * (1 - t * t) * (1 - 3 * t * t))(np.tanh(x)),
             "erf": lambda x: np.sqrt(2 / np.pi) * (x * x - 1) * np.exp(-x * x / 2)}[act]
    T, D = kern.third(A, B)
    from phasekit.core.quadrature import gaussian_expectation
    C = np.empty(T.shape + (2, 2))
    C[..., 0, 0] = np.sum(A * A, 1)[:, None]
    C[..., 1, 1] = np.sum(B * B, 1)[None, :]
    C[..., 0, 1] = C[..., 1, 0] = A @ B.T
    np.testing.assert_allclose(T, gaussian_expectation(C, [third, reg.dg], 80), atol=1e-8)
    np.testing.assert_allclose(D, gaussian_expectation(C, [reg.d2g, reg.d2g], 80), atol=1e-8)


@pytest.mark.parametrize("act,var", [("sigmoid", 30.0), ("tanh", 9.0)])
def test_mixture_kernels_wide_preactivations(act, var):
    """Large variances, where fixed-node quadrature degrades: adaptive 1-D integration of E[g(u)^2]."""
    g = activation(act).g
    exact = quad(lambda z: g(math.sqrt(var) * z) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                 -40, 40, epsabs=1e-13, limit=400)[0]
    a = np.array([[math.sqrt(var), 0.0]])
    assert _mixture_for(act).pairs(a, a).K[0, 0] == pytest.approx(exact, abs=3e-9)


def test_logistic_scale_mixture_reproduces_sigmoid():
    omega, w = _logistic_scale_rule(_MIXTURE_NODES)
    x = np.linspace(-40, 40, 4001)
    err = np.max(np.abs(special.ndtr(x[:, None] / omega) @ w - special.expit(x)))
    assert err < 2e-9
    # the logistic distribution has variance pi^2 / 3 = E[omega^2]
    assert abs(w @ omega**2 - np.pi**2 / 3) < 1e-10


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_loss_floor_matches_monte_carlo(act):
    teacher = make_teacher(6, 3, seed=14)
    problem = TwoLayer(teacher, act)
    rng = np.random.default_rng(15)
    x = rng.standard_normal((1_000_000, 6))
    even = 0.5 * (teacher.output(x) + teacher.output(-x))
    if act == "sigmoid":  # constants are reachable: only the fluctuation of the even part counts
        even = even - even.mean()
    samples = 0.5 * even**2
    se = samples.std() / math.sqrt(samples.size)
    assert abs(problem.loss_floor() - samples.mean()) < 5 * se
    assert TwoLayer(teacher, "relu").loss_floor() == 0.0


@pytest.mark.parametrize("act,symmetric", [("relu", True), ("relu", False), ("sigmoid", True)])
def test_tangent_model_matches_monte_carlo_and_integration(act, symmetric):
    teacher = make_teacher(4, 2, seed=16)
    m = 6 if symmetric else 4
    student0 = init_student(m, 4, 0.8, seed=17, symmetric=symmetric)
    problem = TwoLayer(teacher, act, scale=1.7, offset=None if symmetric else student0)
    tm = problem.tangent(student0)
    P, d = tm.A_groups.shape
    assert P == (3 if symmetric else 4)
    # G = E[psi psi^T] and b = E[(target - f(w0)) psi] by Monte Carlo over the features psi
    rng = np.random.default_rng(18)
    k = problem.scale / student0.m
    n, nf = 400_000, P * (d + 1)
    s1, s2 = np.zeros((nf, nf + 1)), np.zeros((nf, nf + 1))
    for _ in range(8):
        x = rng.standard_normal((n // 8, d))
        U = x @ tm.A_groups.T
        psi = np.concatenate([k * problem.act.g(U), (k * problem.act.dg(U)[:, :, None] * x[:, None, :]).reshape(-1, P * d)], 1)
        r = problem.target_output(x) - problem.network_output(student0, x)
        prod = np.concatenate([psi[:, :, None] * psi[:, None, :], (psi * r[:, None])[:, :, None]], 2)
        s1 += prod.sum(0)
        s2 += (prod**2).sum(0)
    mean = s1 / n
    se = np.sqrt((s2 / n - mean**2) / n) + 1e-15
    exact = np.concatenate([tm.G, tm.b[:, None]], 1)
    assert np.max(np.abs(exact - mean) / se) < 5.0
    # the exact eigen-solution of the flow against a numerical integration of it
    W = tm._w
    sol = solve_ivp(lambda t, th: -tm.rate * W * (tm.G @ th - tm.b), (0, 3.0), np.zeros(nf),
                    rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(tm.theta(3.0), sol.y[:, -1], rtol=1e-6, atol=1e-9)
    assert tm.loss(1e9) == pytest.approx(tm.loss_limit(), rel=1e-8)
    # the loss and the distance to a network, by Monte Carlo on the predictors themselves
    net = random_student(m, 4, seed=19, scale=0.8)
    x = rng.standard_normal((1_000_000, d))
    lin = tm.output(x, 3.0)
    loss_s = 0.5 * (lin - problem.teacher.output(x)) ** 2
    dist_s = (problem.output(net, x) - lin) ** 2
    for exact_v, s in ((tm.loss(3.0), loss_s), (tm.distance(net, 3.0) ** 2, dist_s)):
        assert abs(exact_v - s.mean()) < 5 * s.std() / math.sqrt(s.size)


def _distance_vs_scale(act, symmetric, scales, *, m=20, d=10, T=10.0):
    teacher = make_teacher(d, 3, seed=0)
    s0 = init_student(m, d, 1.0, seed=0, symmetric=symmetric)
    dist = []
    for scale in scales:
        problem = TwoLayer(teacher, act, scale, offset=None if symmetric else s0)
        traj = train_gradient_flow(problem, s0, T, n_points=3, rtol=1e-9, atol=1e-13)
        dist.append(problem.tangent(s0).distance(traj.student, T))
    slope = np.polyfit(np.log(scales), np.log(dist), 1)[0]
    print(f"\n{act}, {'symmetrised' if symmetric else 'centred, unsymmetrised'} init:")
    for s, dd in zip(scales, dist):
        print(f"  scale {s:6g}  distance {dd:.4e}")
    print(f"  fitted exponent {slope:.3f}")
    return slope


def test_lazy_training_distance_falls_like_one_over_scale():
    """The lazy-training theorem's rate O(1/scale): smooth student, f(w0) = 0 by centring."""
    slope = _distance_vs_scale("erf", False, [16.0, 32.0, 64.0, 128.0])
    assert -1.2 <= slope <= -0.8


def test_symmetrised_start_cancels_second_order_term():
    """Twins with opposite output weights cancel the quadratic Taylor term: distance ~ 1/scale^2."""
    slope = _distance_vs_scale("erf", True, [16.0, 32.0, 64.0, 128.0])
    assert -2.2 <= slope <= -1.8


def test_relu_distance_falls_like_inverse_square_root():
    """ReLU is not smooth: linearisation error eps^(3/2) per unit, distance ~ scale^(-1/2)."""
    slope = _distance_vs_scale("relu", True, [32.0, 64.0, 128.0, 256.0])
    assert -0.65 <= slope <= -0.35


def test_phase_picture_small_tau_learns_large_tau_is_lazy():
    taus = [0.01, 0.1, 1.0, 10.0]
    ds = two_layer_sweep(taus, [50], [0], d=20, m0=3, T=200.0, n_workers=2)
    r = ds.isel(activation=0, scale=0, m=0, seed=0)
    print("\n  tau     loss       tangent(t)  tangent(inf)  |w-w0|/|w0|  dist/|f*|  t_threshold")
    for i, tau in enumerate(taus):
        q = r.isel(tau=i)
        print(f"  {tau:<6g}  {float(q.loss):.3e}  {float(q.tangent_loss):.3e}   {float(q.tangent_loss_limit):.3e}"
              f"     {float(q.weight_displacement):.3e}    {float(q.relative_tangent_distance):.3e}"
              f"  {float(q.time_to_threshold):.3g}")
    small, large = r.sel(tau=0.01), r.sel(tau=10.0)
    assert float(small.loss) <= 0.1 * float(large.loss)
    # ... and below a tenth of the best the lazy (tangent) model reaches at infinite time
    assert float(small.loss) <= 0.1 * float(large.tangent_loss_limit)
    assert float(large.weight_displacement) < 0.1 < 1.0 < float(small.weight_displacement)
    assert float(large.relative_tangent_distance) < 0.1 < float(small.relative_tangent_distance)
    assert np.all(r.failed.values == 0)


def test_sgd_follows_the_gradient_flow():
    teacher = make_teacher(6, 2, seed=20)
    problem = TwoLayer(teacher, "relu", scale=2.0)
    s0 = init_student(8, 6, 1.0, seed=21)
    flow = train_gradient_flow(problem, s0, 4.0, rtol=1e-8, atol=1e-11)
    sgd = train_sgd(problem, s0, 4.0, learning_rate=0.004, batch_size=1000, seed=22)
    drop = flow.loss[0] - flow.loss[-1]
    print(f"\nflow {flow.loss[-1]:.5f}, sgd {sgd.loss[-1]:.5f}, initial {flow.loss[0]:.5f}")
    assert sgd.t[-1] == pytest.approx(4.0)
    assert abs(sgd.loss[-1] - flow.loss[-1]) < 0.05 * drop
    # time is learning rate x steps: half the step, twice the steps, same point of the flow
    fine = train_sgd(problem, s0, 4.0, learning_rate=0.002, batch_size=1000, seed=23)
    assert fine.n_evaluations == 2 * sgd.n_evaluations
    assert abs(fine.loss[-1] - flow.loss[-1]) < 0.05 * drop


def test_time_to_threshold_is_where_the_loss_crosses():
    problem = TwoLayer(make_teacher(5, 2, seed=23), "relu")
    s0 = init_student(6, 5, 0.1, seed=24)
    thr = 0.3 * problem.loss(s0)
    traj = train_gradient_flow(problem, s0, 50.0, loss_threshold=thr, rtol=1e-9, atol=1e-12)
    assert 0 < traj.time_to_threshold < 50
    again = train_gradient_flow(problem, s0, traj.time_to_threshold, rtol=1e-9, atol=1e-12)
    assert again.loss[-1] == pytest.approx(thr, rel=1e-5)


def test_symmetrised_initialisation_has_zero_output():
    s0 = init_student(10, 7, 0.5, seed=25)
    x = np.random.default_rng(26).standard_normal((1000, 7))
    problem = TwoLayer(make_teacher(7, 3), "sigmoid")
    assert np.max(np.abs(problem.output(s0, x))) < 1e-14
    assert problem.loss(s0) == pytest.approx(0.5 * problem.teacher_norm2(), rel=1e-12)
    np.testing.assert_array_equal(s0.a[0::2], s0.a[1::2])
    np.testing.assert_array_equal(s0.c[0::2], -s0.c[1::2])


@pytest.mark.parametrize("call,name", [
    (lambda: init_student(0, 5, 1.0), "m"),
    (lambda: init_student(4, 5, 0.0), "tau"),
    (lambda: init_student(4, 5, -1.0), "tau"),
    (lambda: init_student(4, 0, 1.0), "d"),
    (lambda: init_student(5, 3, 1.0, symmetric=True), "m"),
    (lambda: make_teacher(0, 3), "d"),
    (lambda: make_teacher(5, 0), "m0"),
    (lambda: TwoLayer(make_teacher(3, 1), "relu", scale=0.0), "scale"),
    (lambda: TwoLayer(make_teacher(3, 1), "nonexistent"), "activation"),
    (lambda: run_two_layer(d=3, m0=1, m=0, tau=1.0), "m"),
    (lambda: run_two_layer(d=0, m0=1, m=2, tau=1.0), "d"),
    (lambda: run_two_layer(d=3, m0=1, m=2, tau=0.0), "tau"),
    (lambda: run_two_layer(d=3, m0=1, m=3, tau=1.0), "m"),
    (lambda: two_layer_sweep([1.0], [3], [0], d=3, m0=1), "widths"),
    (lambda: two_layer_sweep([0.0], [2], [0], d=3, m0=1), "taus"),
    (lambda: horizon(-1.0, 10.0), "tau"),
])
def test_bad_input_raises_value_error_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()


def test_odd_width_is_fine_without_symmetrisation():
    s0 = init_student(5, 3, 1.0, seed=27, symmetric=False)
    assert s0.m == 5


def test_horizon_rescales_with_the_kernel_growth():
    assert horizon(10.0, 200.0, "relu") == pytest.approx(2.0)
    assert horizon(10.0, 200.0, "sigmoid") == pytest.approx(20.0)
    assert horizon(0.01, 200.0, "relu") == pytest.approx(200.0)


def test_sweep_dataset_attributes_and_netcdf(tmp_path):
    ds = two_layer_sweep([0.5, 2.0], [2], [0, 1], activations=("relu", "tanh"), d=3, m0=1, T=5.0, n_workers=1)
    assert dict(ds.sizes) == {"activation": 2, "scale": 1, "m": 1, "tau": 2, "seed": 2}
    for name in list(ds.data_vars) + list(ds.coords):
        assert "long_name" in ds[name].attrs and "units" in ds[name].attrs, name
    assert {"phasekit_version", "parameters", "created"} <= set(ds.attrs)
    path = tmp_path / "sweep.nc"
    ds.to_netcdf(path, engine="scipy")
    back = xr.open_dataset(path, engine="scipy")
    np.testing.assert_allclose(back["loss"].values, ds["loss"].values)
    assert list(back["activation"].values) == ["relu", "tanh"]


def test_recipes_quick(tmp_path):
    files = run_recipe("lazy_vs_active", tmp_path / "tau", quick=True)
    report = files["report"].read_text()
    assert "feature learning" in report and "lazy" in report
    ds = xr.open_dataset(files["dataset"], engine="scipy")
    assert float(ds["loss"].isel(tau=0).max()) < 0.1 * float(ds["loss"].isel(tau=-1).min())
    width = run_recipe("lazy_width", tmp_path / "width", quick=True)
    dw = xr.open_dataset(width["dataset"], engine="scipy")
    sig = dw.sel(activation="sigmoid")
    assert np.all(sig["loss"].values >= sig["loss_floor"].values - 1e-9)
    scale = run_recipe("lazy_scale", tmp_path / "scale", quick=True)
    dsc = xr.open_dataset(scale["dataset"], engine="scipy")
    assert set(dsc["variant"].values) == {"relu, symmetrised", "erf, centred"}
    for f in (*files.values(), *width.values(), *scale.values()):
        assert f.exists() and f.stat().st_size > 0
    for data in (ds, dw, dsc):
        assert {"phasekit_version", "parameters", "created"} <= set(data.attrs)
        for name in list(data.data_vars) + list(data.coords):
            assert "long_name" in data[name].attrs and "units" in data[name].attrs, name
