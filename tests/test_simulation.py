"""Finite-N SGD: block algebra against the sequential loop, chain against vectors, ODE limit."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import phasekit as pk
from phasekit.committee import simulation as sim
from phasekit.committee.simulation import align_teachers, simulate

RELU22 = pk.Committee(2, 2, "relu", eta=0.1)
START22 = pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))  # the reference start


def _sequential(model, V, Xi, zeta, c):
    """Plain per-example SGD on N-vectors: the definition in docs/science.md."""
    K = model.K
    V = V.copy()
    g, dg, gt = model.activation.g, model.activation.dg, model.teacher_activation.g
    for t in range(Xi.shape[0]):
        xi = Xi[t]
        x, y = V[:K] @ xi, V[K:] @ xi
        tau = gt(y).sum() + (0.0 if zeta is None else zeta[t])
        delta = (tau - g(x).sum()) * dg(x)
        V[:K] += c * np.outer(delta, xi)
    return V


def _overlaps(model, V):
    return sim._state_vectors(model, V[None])[0]


def _ode_state(model, state0, alpha):
    """(R, Q) of the ODE at the requested alphas: shape (len(alpha), n_state)."""
    alpha = np.atleast_1d(np.asarray(alpha, float))
    ds = pk.integrate(model, state0, float(alpha.max()), n_points=int(alpha.max() * 10) + 1)
    return _vectors(ds.expand_dims("run").interp(alpha=alpha))[0]


def _vectors(ds):
    """State vectors (run, alpha, n_state) of a simulation dataset."""
    K = ds.sizes["i"]
    iu = np.triu_indices(K)
    R, Q = ds["R"].values, ds["Q"].values
    return np.concatenate([R.reshape(R.shape[:2] + (-1,)), Q[..., iu[0], iu[1]]], axis=-1)


# --- construction -----------------------------------------------------------------


@pytest.mark.parametrize("state", [
    START22,
    # Coinciding students (a singular covariance) and a student equal to a teacher.
    pk.State([[0.3, 0.1], [0.3, 0.1]], [[0.5, 0.5], [0.5, 0.5]]),
    pk.State([[1.0, 0.0], [0.2, 0.4]], [[1.0, 0.2], [0.2, 0.7]]),
])
def test_initial_weights_have_the_requested_overlaps(state):
    V = sim._initial_weights(RELU22, state.to_vector(), 200, [np.random.default_rng(s) for s in (1, 2, 3)])
    S = V @ np.swapaxes(V, -1, -2)
    np.testing.assert_allclose(S, np.broadcast_to(RELU22.covariance(state), S.shape), atol=1e-13)
    # Three runs get three different random frames.
    assert np.abs(V[0] - V[1]).max() > 0.1
    ds = simulate(RELU22, state, 200, 0.05, n_points=2)
    np.testing.assert_allclose(ds["R"].isel(run=0, alpha=0), state.R, atol=1e-13)
    np.testing.assert_allclose(ds["Q"].isel(run=0, alpha=0), state.Q, atol=1e-13)


# --- the block algebra against the per-example loop -----------------------------------


@pytest.mark.parametrize("act, eta, noise", [("relu", 0.5, 0.0), ("erf", 2.0, 0.3)])
def test_block_equals_sequential_sgd(act, eta, noise):
    # eta sqrt(b / N) close to 1: the fixed-point sweeps need many passes and
    # many ReLU thresholds get crossed within the block.
    model = pk.Committee(2, 3, act, eta=eta, noise=noise)
    N, b, runs = 40, 30, 3
    rng = np.random.default_rng(2)
    state = pk.State(rng.uniform(-0.3, 0.3, (2, 3)), [[0.8, 0.1], [0.1, 0.5]])
    V = sim._initial_weights(model, state.to_vector(), N, [rng] * runs)
    Xi = rng.standard_normal((runs, b, N))
    zeta = noise * rng.standard_normal((runs, b)) if noise else None
    c = eta / N
    expected = np.stack([_sequential(model, V[r], Xi[r], None if zeta is None else zeta[r], c)
                         for r in range(runs)])
    got = sim._micro_block(model, V.copy(), Xi, zeta, c)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.abs(expected - V).max() > 1e-2  # the block did move the weights


def test_overlap_increment_matches_the_vectors():
    """The reduced chain's block update of (R, Q) from fields and Gram matrix only."""
    model = pk.Committee(3, 2, "erf", eta=1.5)
    N, b, runs = 25, 20, 4
    rng = np.random.default_rng(3)
    state = pk.State(rng.uniform(-0.3, 0.3, (3, 2)), np.eye(3) * 0.6 + 0.1)
    V = sim._initial_weights(model, state.to_vector(), N, [rng] * runs)
    Xi = rng.standard_normal((runs, b, N))
    c = model.eta / N
    fields = Xi @ np.swapaxes(V, -1, -2)
    G = Xi @ np.swapaxes(Xi, -1, -2)
    delta = sim._block_deltas(model, fields[..., :3], fields[..., 3:], np.tril(G, -1) * c, None)
    step = sim._overlap_increment(model, fields[..., :3], fields[..., 3:], G, delta, c)
    V_new = sim._micro_block(model, V.copy(), Xi, None, c)
    before = np.stack([_overlaps(model, v) for v in V])
    after = np.stack([_overlaps(model, v) for v in V_new])
    np.testing.assert_allclose(before + step, after, rtol=0, atol=1e-12)
    assert np.abs(step).max() > 0.05


def test_span_part_of_the_input_norm_is_the_pseudo_inverse_form():
    """|z|^2 = (x, y)^T Sigma^+ (x, y) for fields (x, y) = F z, also when Sigma is singular."""
    rng = np.random.default_rng(4)
    state = pk.State([[0.3, 0.1], [0.3, 0.1]], [[0.5, 0.5], [0.5, 0.5]])
    S = RELU22.covariance(state)
    F, keep = sim._factor(S)
    assert keep.sum() == 3
    z = rng.standard_normal((1000, 4)) * keep
    u = z @ F.T
    quad = np.einsum("ta,ab,tb->t", u, np.linalg.pinv(S, rcond=1e-10), u)
    np.testing.assert_allclose(quad, (z**2).sum(-1), rtol=1e-9)


# --- the reduced chain against the microscopic simulation -----------------------------


def _ks_compare(model, state0, N, alpha, runs, seed, **kw):
    micro = _vectors(simulate(model, state0, N, alpha, n_runs=runs, seed=seed, n_points=2))[:, -1]
    red = _vectors(simulate(model, state0, N, alpha, n_runs=runs, seed=seed + 1, n_points=2,
                               level="reduced", **kw))[:, -1]
    out = {}
    for name, j in (("R11", 0), ("Q11", model.K * model.M)):
        a, b = micro[:, j], red[:, j]
        p = stats.ks_2samp(a, b).pvalue
        z = (a.mean() - b.mean()) / np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        out[name] = (p, z)
    return out, micro, red


def test_reduced_matches_microscopic_in_distribution():
    """Acceptance: N = 100, alpha = 2, 2000 runs each, ReLU K = M = 2, the reference start."""
    out, micro, red = _ks_compare(RELU22, START22, 100, 2.0, 2000, seed=10)
    print("N=100 alpha=2 eta=0.1:", {k: (round(p, 4), round(z, 2)) for k, (p, z) in out.items()})
    for name, (p, z) in out.items():
        assert p > 0.01, (name, p)
        assert abs(z) < 3, (name, z)
    # The runs really have spread: the comparison is not of two constants.
    assert micro[:, 0].std() > 0.01


@pytest.mark.parametrize("block", [1, None])
def test_reduced_matches_microscopic_at_large_eta(block):
    """eta = 1.5 at N = 30: the (eta/N)^2 |xi|^2 term and its chi-square part matter."""
    model = pk.Committee(2, 2, "erf", eta=1.5, noise=0.2)
    out, micro, red = _ks_compare(model, START22, 30, 1.0, 2000, seed=20, block=block)
    for name, (p, z) in out.items():
        assert p > 0.01, (name, p, block)
        assert abs(z) < 3, (name, z, block)


def test_reduced_detects_a_wrong_input_norm(monkeypatch):
    """The comparison above can fail: dropping the part of |xi|^2 outside span(J, B) is caught."""
    model = pk.Committee(2, 2, "erf", eta=1.5, noise=0.2)
    micro = _vectors(simulate(model, START22, 30, 1.0, n_runs=2000, seed=20, n_points=2))[:, -1]

    def no_remainder(rng, dof, b):
        return np.zeros((len(dof), b, b))

    monkeypatch.setattr(sim, "_bartlett", no_remainder)
    red = _vectors(simulate(model, START22, 30, 1.0, n_runs=2000, seed=21, n_points=2,
                            level="reduced", block=1))[:, -1]
    j = model.K * model.M  # Q11
    assert stats.ks_2samp(micro[:, j], red[:, j]).pvalue < 0.01


def test_bartlett_gives_the_gram_matrix_of_gaussian_vectors():
    rng = np.random.default_rng(6)
    dof, b, n = 7, 4, 40000
    A = sim._bartlett(rng, np.full(n, dof), b)
    W = A @ np.swapaxes(A, -1, -2)
    X = rng.standard_normal((n, b, dof))
    W_direct = X @ np.swapaxes(X, -1, -2)
    # Wishart_b(dof, I): E W = dof I, Var W_st = dof (1 + delta_st).
    for a, c in ((0, 0), (3, 3), (1, 2), (0, 3)):
        p = stats.ks_2samp(W[:, a, c], W_direct[:, a, c]).pvalue
        assert p > 1e-3, (a, c, p)
        assert abs(W[:, a, c].mean() - dof * (a == c)) < 4 * np.sqrt(dof * (1 + (a == c)) / n)


# --- reproducibility and the dataset ---------------------------------------------------


def test_microscopic_runs_do_not_depend_on_grouping():
    """A run's numbers are its own: the same with 1 or 2 runs per chunk, and in a larger batch."""
    kw = dict(n_points=3, seed=8)
    one = simulate(RELU22, START22, 60, 0.5, n_runs=2, n_workers=1, **kw)
    split = sim._run_chunk(("microscopic", RELU22, START22.to_vector(), 60, np.array([0, 15, 30]),
                            sim.block_size(RELU22, 60), 0, np.random.SeedSequence(8).spawn(3)[1:2]))[0]
    three = simulate(RELU22, START22, 60, 0.5, n_runs=3, **kw)
    np.testing.assert_array_equal(_vectors(one)[1], split[0])
    np.testing.assert_array_equal(_vectors(three)[:2], _vectors(one))


@pytest.mark.parametrize("level", ["microscopic", "reduced"])
def test_same_seed_same_numbers(level):
    kw = dict(n_runs=3, n_points=5, level=level)
    a = simulate(RELU22, START22, 60, 1.0, seed=5, **kw)
    b = simulate(RELU22, START22, 60, 1.0, seed=5, **kw)
    c = simulate(RELU22, START22, 60, 1.0, seed=6, **kw)
    np.testing.assert_array_equal(a["R"].values, b["R"].values)
    np.testing.assert_array_equal(a["Q"].values, b["Q"].values)
    assert not np.array_equal(a["R"].values, c["R"].values)
    assert a.sizes == {"run": 3, "alpha": 5, "i": 2, "n": 2, "k": 2}
    assert a.attrs["level"] == level and a.attrs["N"] == 60 and a.attrs["status"] == "ok"
    np.testing.assert_allclose(a["alpha"].values * 60, np.rint(a["alpha"].values * 60))
    for name in list(a.data_vars) + list(a.coords):
        assert {"long_name", "units"} <= set(a[name].attrs), name


def test_dataset_writes_to_netcdf(tmp_path):
    ds = simulate(RELU22, START22, 50, 0.5, n_runs=2, n_points=3, n_test=10)
    ds.to_netcdf(tmp_path / "sim.nc", engine="scipy")
    back = xr.open_dataset(tmp_path / "sim.nc", engine="scipy").load()
    assert back["R"].dims == ("run", "alpha", "i", "n")
    assert np.array_equal(back["Q"].values, ds["Q"].values)
    assert back.attrs["phasekit_version"] == ds.attrs["phasekit_version"]


def test_test_set_error_estimates_the_closed_form():
    """eg from the order parameters vs the error on 4000 real test inputs."""
    model = pk.Committee(2, 2, "relu", eta=0.5)
    ds = simulate(model, START22, 300, 3.0, n_runs=2, n_points=4, n_test=4000, seed=3)
    eg, est = ds["eg"].values, ds["eg_test"].values
    # Standard error of the test-set mean: (sigma - tau)^2 / 2 has relative
    # standard deviation about sqrt(2) for Gaussian errors.
    se = np.sqrt(2.0) * eg / np.sqrt(4000)
    assert np.all(np.abs(est - eg) < 4 * se + 1e-12), (est, eg)


@pytest.mark.parametrize("kwargs, match", [
    (dict(N=4), "N"),
    (dict(level="exact"), "level"),
    (dict(n_runs=0), "n_runs"),
    (dict(level="reduced", n_test=5), "n_test"),
    (dict(block=0), "block"),
    (dict(alpha_max=-1.0), "alpha_max"),
    (dict(n_points=1), "n_points"),
])
def test_bad_arguments(kwargs, match):
    args = dict(N=50, alpha_max=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate(RELU22, START22, args.pop("N"), args.pop("alpha_max"), **args)


def test_align_teachers_undoes_a_relabelling():
    ds = simulate(RELU22, pk.State([[0.9, 0.1], [0.0, 0.8]], np.eye(2)), 100, 0.5, n_runs=2, n_points=3)
    swapped = ds.copy()
    swapped["R"] = ds["R"].copy()
    swapped["R"][1] = ds["R"].values[1][..., ::-1]
    back = align_teachers(swapped)
    np.testing.assert_array_equal(back["R"].values, ds["R"].values)
    assert back.attrs["n_relabelled"] == 1 and back["teacher_perm"].values.tolist() == [[1, 2], [2, 1]]
    with pytest.raises(ValueError, match="K == M"):
        align_teachers(simulate(pk.Committee(1, 2), pk.State([[0.1, 0.1]], [[1.0]]), 20, 0.1, n_points=2))


def test_diverging_runs_are_reported():
    model = pk.Committee(1, 1, "linear", eta=6.0)  # linear perceptron diverges for eta > 2 at large N
    ds = simulate(model, pk.State([[0.0]], [[0.5]]), 200, 20.0, n_runs=2, n_points=3, level="reduced")
    assert ds.attrs["status"] == "diverged" and ds.attrs["n_diverged"] == 2


# --- the thermodynamic limit ------------------------------------------------------------


def _mean_vs_ode(level, N, eta_alphas, runs, seed, align=False, n_workers=1):
    """Simulated states (run, point, n_state) and the ODE's (point, n_state) at eta*alpha."""
    alphas = np.asarray(eta_alphas) / RELU22.eta
    ds = simulate(RELU22, START22, N, float(alphas.max()), n_runs=runs, seed=seed, level=level,
                  n_points=int(round(alphas.max() * RELU22.eta)) + 1, n_workers=n_workers)
    if align:
        ds = align_teachers(ds)
        print("runs specialised to the relabelled teachers:", ds.attrs["n_relabelled"], "of", runs)
    sims = _vectors(ds.sel(alpha=alphas, method="nearest"))
    return sims, _ode_state(RELU22, START22, alphas)


@pytest.mark.slow  # cheap variants: test_microscopic_mean_matches_ode_small and the exact-chain tests
def test_plateau_matches_ode_reduced_n1e4():
    """Acceptance (plateau): N = 1e4, 8 runs, eta*alpha = 5, exact chain."""
    sims, ode = _mean_vs_ode("reduced", 10_000, [5.0], 8, seed=30)
    dev = np.abs(sims.mean(0) - ode).max()
    print("reduced N=1e4 eta*alpha=5: max |mean - ODE| =", dev)
    assert dev < 0.03
    assert np.abs(ode[0, :4] - 0.5246).max() < 0.05  # the ODE is on the plateau there


def test_microscopic_mean_matches_ode_small():
    """Cheap microscopic variant: N = 1000, 8 runs, eta*alpha = 3."""
    sims, ode = _mean_vs_ode("microscopic", 1000, [1.0, 3.0], 8, seed=31)
    assert np.abs(sims.mean(0) - ode).max() < 0.03


@pytest.mark.slow
def test_microscopic_plateau_matches_ode_n1e4():
    """Acceptance (plateau), microscopic: N = 1e4, 8 runs, eta*alpha = 5."""
    sims, ode = _mean_vs_ode("microscopic", 10_000, [5.0], 8, seed=32, n_workers=2)
    dev = np.abs(sims.mean(0) - ode).max()
    print("microscopic N=1e4 eta*alpha=5: max |mean - ODE| =", dev)
    assert dev < 0.03


@pytest.mark.slow
def test_specialised_matches_ode_n1e4():
    """Acceptance (specialised): N = 1e4, 8 runs, eta*alpha = 5 and 60, exact chain."""
    sims, ode = _mean_vs_ode("reduced", 10_000, [5.0, 60.0], 8, seed=33, align=True)
    dev = np.abs(sims.mean(0) - ode).max(axis=-1)
    print("reduced N=1e4: max |mean - ODE| at eta*alpha = 5, 60:", dev)
    assert dev.max() < 0.03


# --- fluctuations ------------------------------------------------------------------------


def spread_exponent(Ns, alpha, runs, seed):
    """Fitted exponent of the run-to-run standard deviation of R11 and Q11 against N."""
    sd = []
    for j, N in enumerate(Ns):
        ds = simulate(RELU22, START22, int(N), alpha, n_runs=runs, seed=seed + j, n_points=2,
                         level="reduced")
        v = _vectors(ds)[:, -1]
        sd.append([v[:, 0].std(ddof=1), v[:, 4].std(ddof=1)])
    sd = np.array(sd)
    return [np.polyfit(np.log(Ns), np.log(sd[:, q]), 1)[0] for q in range(2)]


def test_spread_shrinks_like_inverse_sqrt_n_small():
    slopes = spread_exponent(np.array([100, 300, 1000, 3000]), 2.0, 100, seed=40)
    print("spread exponents (R11, Q11), N = 1e2..3e3:", slopes)
    assert all(-0.6 <= s <= -0.4 for s in slopes), slopes


@pytest.mark.slow
def test_spread_shrinks_like_inverse_sqrt_n():
    """Acceptance: 100 runs, N = 1e2 ... 1e5, alpha = 5."""
    slopes = spread_exponent(np.logspace(2, 5, 7).round().astype(int), 5.0, 100, seed=50)
    print("spread exponents (R11, Q11), N = 1e2..1e5:", slopes)
    assert all(-0.6 <= s <= -0.4 for s in slopes), slopes


# --- the general committee machine -------------------------------------------------------


def _sequential_general(model, V, vw, Xi, zeta, nu, N, done):
    """Per-example SGD of the general model on N-vectors (the rule of the Committee docstring).

    ``J_i <- (1 - c lambda) J_i + c v_i (tau - sigma) g'(x_i) xi`` with ``c = eta(alpha)/N``,
    ``v_i <- v_i + c_v g(x_i) (tau - sigma)``, ``B_n <- (1 - delta/N) B_n + sqrt(2 delta/N) nu_n``.
    """
    K = model.K
    V = V.copy()
    vw = None if vw is None else vw.copy()
    g, dg, gt = model.activation.g, model.activation.dg, model.teacher_activation.g
    for t in range(Xi.shape[0]):
        xi = Xi[t]
        eta = float(model.eta_at((done + t) / N))
        c, cv = eta / N, model.eta_v * eta / model.eta / N
        x, y = V[:K] @ xi, V[K:] @ xi
        v = model.student_weights if vw is None else vw
        err = gt(y) @ model.teacher_weights + (0.0 if zeta is None else zeta[t]) - v @ g(x)
        J = (1 - c * model.weight_decay) * V[:K] + c * np.outer(v * err * dg(x), xi)
        if vw is not None:
            vw = vw + cv * g(x) * err
        if nu is not None:
            V[K:] = (1 - model.drift / N) * V[K:] + np.sqrt(2 * model.drift / N) * nu[t]
        V[:K] = J
    return V, vw


GENERAL = pk.Committee(2, 3, "erf", eta=0.7, teacher_weights=[1.0, 0.5, -0.8], train_second_layer=True,
                       eta_second_layer=0.4, weight_decay=0.3, drift=0.2, noise=0.1,
                       eta_schedule={"kind": "power_law", "alpha0": 0.05, "p": 1.0})


@pytest.mark.parametrize("b", [1, 5, 12])
def test_general_block_equals_the_sequential_rule(b):
    """Blocks of the general model (decay, schedule, trained v, drift, weights, noise) against the plain loop."""
    rng = np.random.default_rng(b)
    N, done = 60, 7
    V = rng.standard_normal((2, 5, N)) / np.sqrt(N)
    vw = np.array([[0.6, 1.2], [1.0, -0.3]])
    Xi = rng.standard_normal((2, b, N))
    zeta = 0.1 * rng.standard_normal((2, b))
    nu = rng.standard_normal((2, b, 3, N)) / np.sqrt(N)
    Vb = V.copy()
    vb = sim._micro_block_general(GENERAL, Vb, vw.copy(), Xi, zeta, sim._block_rates(GENERAL, done, b, N), nu, N)
    for r in range(2):
        Vs, vs = _sequential_general(GENERAL, V[r], vw[r], Xi[r], zeta[r], nu[r], N, done)
        assert np.abs(Vb[r] - Vs).max() < 1e-14 and np.abs(vb[r] - vs).max() < 1e-14
    # the reduced chain's overlap update from the same fields and Gram matrix (no drift)
    model = GENERAL.replace(drift=0.0)
    s0 = sim._state_vectors(model, V, vw)
    fields = Xi @ np.swapaxes(V, -1, -2)
    rates = sim._block_rates(model, done, b, N)
    red = sim._reduced_block_general(model, s0, fields[..., :2], fields[..., 2:], Xi @ np.swapaxes(Xi, -1, -2),
                                     zeta, rates)
    Vm = V.copy()
    vm = sim._micro_block_general(model, Vm, vw.copy(), Xi, zeta, rates, None, N)
    assert np.abs(red - sim._state_vectors(model, Vm, vm)).max() < 1e-14


_S0 = pk.State([[0.3, 0.1], [0.05, 0.4]], [[0.5, 0.1], [0.1, 0.6]])
_SV = pk.State(_S0.R, _S0.Q, [0.7, 1.1])
_SIM_CASES = [
    ("trained second layer", dict(train_second_layer=True), _SV, dict(train_second_layer=False), "microscopic"),
    ("trained second layer, chain", dict(train_second_layer=True), _SV, dict(train_second_layer=False), "reduced"),
    ("teacher and student weights", dict(teacher_weights=[1.5, 0.6], student_weights=[1.0, 0.8]), _S0,
     dict(teacher_weights=None, student_weights=None), "microscopic"),
    ("weight decay", dict(weight_decay=0.2), _S0, dict(weight_decay=0.0), "microscopic"),
    ("weight decay, chain", dict(weight_decay=0.2), _S0, dict(weight_decay=0.0), "reduced"),
    ("drift", dict(drift=0.1), _S0, dict(drift=0.0), "microscopic"),
    ("drift, chain", dict(drift=0.1), _S0, dict(drift=0.0), "reduced"),
    ("schedule", dict(eta=0.8, eta_schedule={"kind": "power_law", "alpha0": 1.0}), _S0, dict(eta_schedule=None),
     "microscopic"),
    ("noise with trained v", dict(noise=0.5, train_second_layer=True), _SV, dict(noise=0.0), "microscopic"),
]


def _flat(ds):
    """State vectors (run?, alpha, n_state) of a dataset, v last if present."""
    iu = np.triu_indices(ds.sizes["i"])
    R, Q = ds["R"].values, ds["Q"].values
    parts = [R.reshape(R.shape[:-2] + (-1,)), Q[..., iu[0], iu[1]]]
    if "v" in ds:
        parts.append(ds["v"].values)
    return np.concatenate(parts, axis=-1)


@pytest.mark.parametrize("name,kwargs,state0,off,level", _SIM_CASES, ids=[c[0] for c in _SIM_CASES])
def test_general_simulation_matches_the_ode(name, kwargs, state0, off, level):
    """erf K = M = 2, N = 500, alpha = 4: the mean over runs is the ODE's to 5 standard errors plus the
    O(1/N) finite-size bias, and the term under test moves the ODE by many standard errors."""
    N, runs, alpha = 500, 64 if level == "microscopic" else 256, 4.0
    model = pk.Committee(2, 2, "erf", **{"eta": 0.5, **kwargs})
    ds = simulate(model, state0, N, alpha, n_runs=runs, n_points=3, level=level, seed=7)
    sims = _flat(ds)[:, -1]
    ode = _flat(pk.integrate(model, state0, alpha, n_points=3))[-1]
    se = sims.std(0, ddof=1) / np.sqrt(runs)
    assert np.all(np.abs(sims.mean(0) - ode) <= 5 * se + 1.0 / N), (sims.mean(0) - ode, se)
    other = model.replace(**off)
    other_state = state0 if other.train_second_layer else pk.State(state0.R, state0.Q)
    ref = _flat(pk.integrate(other, other_state, alpha, n_points=3))[-1]
    n = min(len(ref), len(ode))  # (R, Q) when the other model fixes the second layer
    assert np.max(np.abs(ref[:n] - ode[:n]) / se[:n]) > 15


def test_general_chain_matches_microscopic_in_distribution():
    """N = 30: the chain with a trained second layer, weight decay, weights and a schedule, KS against vectors."""
    model = pk.Committee(2, 2, "erf", eta=1.2, noise=0.2, teacher_weights=[1.2, 0.7], train_second_layer=True,
                         weight_decay=0.3, eta_schedule={"kind": "piecewise_constant", "boundaries": [0.5],
                                                         "factors": [0.5]})
    micro = _flat(simulate(model, _SV, 30, 1.0, n_runs=2000, seed=20, n_points=2))[:, -1]
    red = _flat(simulate(model, _SV, 30, 1.0, n_runs=2000, seed=21, n_points=2, level="reduced"))[:, -1]
    for j in (0, model.K * model.M, model.n_order):  # R11, Q11, v1
        a, b = micro[:, j], red[:, j]
        assert stats.ks_2samp(a, b).pvalue > 0.01, j
        assert abs(a.mean() - b.mean()) < 3 * np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)), j
    assert micro[:, model.n_order].std() > 0.01


@pytest.mark.parametrize("N,eta,drift,block", [(30, 1.2, 0.5, 1), (30, 1.2, 0.5, 8), (20, 1.2, 2.0, None)])
def test_drift_chain_matches_microscopic_in_distribution(N, eta, drift, block):
    """A drifting teacher at small N, where its overlaps T fluctuate: the chain carries (R, Q, T); every
    component of (R, Q) at alpha = 1 has the microscopic distribution (KS, 2000 runs each), blocks of one
    example and of eight (b (M + 1) = 24 vectors outside the span); the same chain without drift is told apart."""
    model = pk.Committee(2, 2, "erf", eta=eta, noise=0.2, drift=drift, weight_decay=0.1)
    micro = _flat(simulate(model, _S0, N, 1.0, n_runs=2000, seed=20, n_points=2))[:, -1]
    red = _flat(simulate(model, _S0, N, 1.0, n_runs=2000, seed=21, n_points=2, level="reduced", block=block))[:, -1]
    for j in range(model.n_order):
        a, b = micro[:, j], red[:, j]
        assert stats.ks_2samp(a, b).pvalue > 1e-3, j
        assert abs(a.mean() - b.mean()) < 4 * np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)), j
    still = _flat(simulate(model.replace(drift=0.0), _S0, N, 1.0, n_runs=2000, seed=21, n_points=2,
                           level="reduced"))[:, -1]
    assert stats.ks_2samp(micro[:, 0], still[:, 0]).pvalue < 1e-6


def test_general_simulation_dataset_and_errors():
    model = pk.Committee(2, 2, "erf", train_second_layer=True, teacher_weights=[1.0, 0.5])
    ds = simulate(model, _SV, 50, 0.5, n_runs=2, n_points=3, n_test=2000, seed=1)
    assert ds.v.dims == ("run", "alpha", "i") and ds.v.values[:, 0].tolist() == [[0.7, 1.1]] * 2
    # the test-set error uses the trained weights: close to the closed form from the overlaps
    assert np.allclose(ds.eg_test.values, ds.eg.values, rtol=0.15)
    with pytest.raises(ValueError, match=r"state0: the second layer is trained, so the state needs its weights v"):
        simulate(model, _S0, 50, 0.5)
    # under drift a block of the chain holds b (M + 1) vectors outside span(J, B)
    with pytest.raises(ValueError, match=r"block: must be an integer in \[1, \(N - K - M\) // \(M \+ 1\) under "
                                         r"drift\] = \[1, 15\], got 16"):
        simulate(pk.Committee(2, 2, "erf", drift=0.1), _S0, 50, 0.5, level="reduced", block=16)
    assert simulate(pk.Committee(2, 2, "erf", drift=0.1), _S0, 50, 0.5, level="microscopic", block=16,
                    n_points=2).attrs["block"] == 16


@pytest.mark.parametrize("level", ["microscopic", "reduced"])
def test_progress_reports_the_runs_done_and_can_be_turned_off(level, capsys, monkeypatch):
    from phasekit.core import parallel

    model = pk.Committee(2, 2, "erf", eta=0.5)
    s0 = pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))
    monkeypatch.setattr(parallel, "PROGRESS_DELAY", 0.0)  # a tiny threshold: shown at once
    quiet = simulate(model, s0, 50, 2.0, n_runs=3, level=level, n_points=3, progress=False)
    assert capsys.readouterr().err == ""
    shown = simulate(model, s0, 50, 2.0, n_runs=3, level=level, n_points=3)
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith(f"simulate ({level}, N = 50) [##############################] 3/3 runs")
    assert lines[-1].endswith("00:00 left")
    np.testing.assert_array_equal(shown["R"].values, quiet["R"].values)  # the report changes no number
    monkeypatch.setattr(parallel, "PROGRESS_DELAY", 3.0)  # the default: a quick simulation says nothing
    simulate(model, s0, 50, 2.0, n_runs=3, level=level, n_points=3)
    assert capsys.readouterr().err == ""
