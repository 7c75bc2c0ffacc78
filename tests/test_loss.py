"""Population loss, gradient and tangent model of two-layer networks (phasekit.lazy_training.loss).

Every exact formula is checked against an independent route: Monte Carlo over
Gaussian inputs, finite differences or a numerical integration of the flow.
"""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from phasekit.lazy_training.loss import TwoLayer
from phasekit.lazy_training.networks import Student, init_student, make_teacher

N_MC = 2_000_000
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


def test_symmetrised_initialisation_has_zero_output():
    s0 = init_student(10, 7, 0.5, seed=25)
    x = np.random.default_rng(26).standard_normal((1000, 7))
    problem = TwoLayer(make_teacher(7, 3), "sigmoid")
    assert np.max(np.abs(problem.output(s0, x))) < 1e-14
    assert problem.loss(s0) == pytest.approx(0.5 * problem.teacher_norm2(), rel=1e-12)
    np.testing.assert_array_equal(s0.a[0::2], s0.a[1::2])
    np.testing.assert_array_equal(s0.c[0::2], -s0.c[1::2])


def test_every_route_is_checked_when_the_problem_is_built():
    no_d2g = __import__("phasekit").Activation("no-d2g", np.tanh, lambda x: 1 - np.tanh(x) ** 2)
    with pytest.raises(ValueError, match="activation: 'no-d2g' has no second derivative d2g"):
        TwoLayer(make_teacher(3, 1), no_d2g)
    with pytest.raises(ValueError, match="^scale:"):
        TwoLayer(make_teacher(3, 1), "relu", scale=0.0)
    with pytest.raises(ValueError, match="^activation:"):
        TwoLayer(make_teacher(3, 1), "nonexistent")
