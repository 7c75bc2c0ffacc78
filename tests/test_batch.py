"""Committees of one shape as one batch (phasekit.committee.batch) against the per-point flow and integrate."""

import math

import numpy as np
import pytest
from helpers_committee import interior_vector

import phasekit as pk
from phasekit.committee.batch import CommitteeBatch, batch_key, integrate_batch
from phasekit.committee.plateaus import convergence_time


@pytest.mark.parametrize("kind", ["erf2", "relu32", "weights", "trained", "erf32_second", "erf32_soft_second",
                                  "erf12_soft_second"])
def test_batched_rhs_equals_each_models_rhs(kind):
    rng = np.random.default_rng(3)
    B = 5
    etas = rng.uniform(0.1, 2.0, B)
    if kind == "erf2":
        models = [pk.Committee(2, 2, "erf", eta=e, noise=n) for e, n in zip(etas, [0, 0.3, 0, 1.0, 0.1])]
    elif kind == "relu32":
        models = [pk.Committee(3, 2, "relu", eta=e, second_order=True, weight_decay=w, drift=d)
                  for e, w, d in zip(etas, [0, 0.1, 0, 0.02, 0.3], [0, 0, 0.05, 0.01, 0])]
    elif kind == "weights":
        models = [pk.Committee(2, 3, "erf", eta=e, student_weights=[0.5, 1.5], teacher_weights=[1, 0.7, 0.2],
                               noise=0.2 * j) for j, e in enumerate(etas)]
    elif kind in ("erf32_soft_second", "erf12_soft_second"):  # erf's own lean route (CommitteeBatch of soft erf)
        models = [pk.Committee(3 if kind[3] == "3" else 1, 2, "erf", eta=e, second_order=True, noise=0.3 * (j % 2),
                               weight_decay=0.1 * (j % 3 == 1), drift=0.05 * (j == 4)) for j, e in enumerate(etas)]
    elif kind == "erf32_second":
        models = [pk.Committee(3, 2, "erf", eta=e, second_order=True, student_weights=[0.5, 1.5, 1.0],
                               teacher_weights=[1, 0.7], noise=0.2 * (j % 2), weight_decay=0.1 * (j % 3 == 1),
                               drift=0.05 * (j == 4)) for j, e in enumerate(etas)]
    else:
        models = [pk.Committee(2, 2, "erf", eta=e, train_second_layer=True,
                               eta_second_layer=None if j % 2 else 0.3 + j) for j, e in enumerate(etas)]
    m0 = models[0]
    V = np.stack([interior_vector(rng, m0.K, m0.M) for _ in range(B)])
    if m0.train_second_layer:
        V = np.concatenate([V, rng.uniform(0.5, 1.5, (B, m0.K))], axis=1)
    batch = CommitteeBatch(models)
    got = batch.rhs(V)
    want = np.stack([m.rhs_vector(v) for m, v in zip(models, V)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14 * np.abs(want).max())
    rows = np.array([3, 1])  # a subset of the models, in any order
    np.testing.assert_allclose(batch.rhs(V[rows], rows), want[rows], rtol=0, atol=1e-14 * np.abs(want).max())
    # one row alone is rounded as in the batch
    np.testing.assert_array_equal(np.concatenate([batch.rhs(V[j:j + 1], np.array([j])) for j in range(B)]), got)
    # the per-row smallest eigenvalue is each model's own
    np.testing.assert_allclose(batch.min_eigenvalue(V), [m0.min_eigenvalue(v) for v in V], rtol=1e-12)


def test_only_models_of_one_shape_batch():
    a = pk.Committee(2, 2, "erf", eta=0.5)
    assert batch_key(a) == batch_key(a.replace(eta=2.0, noise=0.1, weight_decay=0.1))
    assert batch_key(a) != batch_key(a.replace(K=3))
    assert batch_key(a) != batch_key(a.replace(second_order=False))
    assert batch_key(a.replace(eta_schedule={"kind": "power_law", "alpha0": 1.0, "p": 0.5})) is None
    with pytest.raises(ValueError, match="model 1 differs from model 0"):
        CommitteeBatch([a, a.replace(activation="relu")])
    with pytest.raises(ValueError, match="learning-rate schedule"):
        CommitteeBatch([a.replace(eta_schedule={"kind": "power_law", "alpha0": 1.0, "p": 0.5})])


def _compare(per, bat, ref, tight_at):
    """The batched run is as close to a tight reference as the per-point one, up to the solver's noise.

    Rounding differences between the batched and the single-state flow change
    the step sequence; the plateau amplifies such differences by ~1e3 (the
    per-point run's own error at rtol = 1e-9 is of that size), hence the floor
    ``1e3 rtol``.  Each run is sampled from 0 to its own end, so its samples
    are compared with the tight run at the same alphas (``tight_at(alphas)``).
    """
    floor = 1e3 * 1e-9
    assert bat.attrs["status"] == per.attrs["status"]
    assert bat.sizes["alpha"] == per.sizes["alpha"] == ref.sizes["alpha"]
    a_ref = ref.attrs["alpha_end"]
    assert abs(bat.attrs["alpha_end"] - a_ref) <= max(10 * abs(per.attrs["alpha_end"] - a_ref), floor * a_ref)
    n = per.sizes["alpha"] - 1  # the last sample sits at each run's own end
    np.testing.assert_allclose(bat["alpha"].values[:n], per["alpha"].values[:n], rtol=floor)
    at_per, at_bat = tight_at(per["alpha"].values[:n]), tight_at(bat["alpha"].values[:n])
    for var in ("R", "Q", "eg"):
        e_per = float(np.abs(per[var].values[:n] - at_per[var].values).max())
        e_bat = float(np.abs(bat[var].values[:n] - at_bat[var].values).max())
        assert e_bat <= max(10 * e_per, floor), (var, e_bat, e_per)


@pytest.mark.parametrize("activation, etas, amax", [("erf", [0.8, 1.6, 4.0], [300.0, 200.0, 40.0]),
                                                     ("linear", [0.5, 0.9, 3.0], [50.0, 50.0, 50.0])])
def test_integrate_batch_equals_integrate_point_by_point(activation, etas, amax):
    """K = M = 2, second order: escape from the plateau, stop at eps_g, blow-up, as integrate gives them."""
    s0 = pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))
    models = [pk.Committee(2, 2, activation, eta=e) for e in etas]
    tight = {"rtol": 1e-12, "atol": 1e-15}
    res = integrate_batch(models, [s0] * len(etas), amax, n_points=61, stop_eg=1e-3, thresholds=[1e-2, 3e-3])
    statuses = []
    for j, (m, a, bat) in enumerate(zip(models, amax, res.datasets)):
        per = pk.integrate(m, s0, a, n_points=61, stop_eg=1e-3)
        ref = pk.integrate(m, s0, a, n_points=61, stop_eg=1e-3, solver=tight)
        _compare(per, bat, ref, lambda a, m=m: pk.integrate(m, s0, float(a[-1]), alpha_eval=a, solver=tight))
        statuses.append(per.attrs["status"])
        assert bat.attrs["message"].split(" at ")[0] == per.attrs["message"].split(" at ")[0]
        for key in ("rtol", "atol", "method", "stop_eg", "max_norm", "alpha_max", "model"):
            assert bat.attrs[key] == per.attrs[key]
        for thr in (1e-2, 3e-3):
            want = convergence_time(per, thr)
            got = res.crossings[thr][j]
            assert got.status == want.status
            if math.isfinite(want.alpha):
                assert got.alpha == pytest.approx(want.alpha, rel=1e-6)
    want = {"erf": {"converged", "ok"}, "linear": {"converged", "diverged"}}[activation]
    assert set(statuses) == want  # the cases the test is about


def test_integrate_batch_first_order_relu_and_own_sample_times():
    """ReLU K = 2, M = 1 at first order (no plateau: a well-conditioned flow), one sample grid per model."""
    models = [pk.Committee(2, 1, "relu", eta=e, second_order=False) for e in (0.2, 0.7, 1.4)]
    s0 = pk.State(np.array([[0.1], [0.05]]), np.diag([0.5, 0.4]))
    times = [np.linspace(0.0, 20.0, 11), np.geomspace(1e-2, 30.0, 9), np.array([0.0, 1.0, 5.0])]
    res = integrate_batch(models, [s0] * 3, [20.0, 30.0, 5.0], alpha_eval=times)
    for m, t, bat in zip(models, times, res.datasets):
        per = pk.integrate(m, s0, t[-1], alpha_eval=t)
        assert bat.attrs["status"] == per.attrs["status"] == "ok"
        np.testing.assert_array_equal(bat["alpha"].values, per["alpha"].values)
        np.testing.assert_allclose(bat["R"].values, per["R"].values, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(bat["eg"].values, per["eg"].values, rtol=1e-7, atol=1e-12)


def test_integrate_batch_bad_input():
    m = pk.Committee(2, 2, "erf", eta=0.5)
    s0 = pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))
    with pytest.raises(ValueError, match="DOP853 only"):
        integrate_batch([m], [s0], 10.0, solver={"method": "LSODA"})
    with pytest.raises(ValueError, match="one start per model"):
        integrate_batch([m, m], [s0], 10.0)
    with pytest.raises(ValueError, match="alpha_max"):
        integrate_batch([m], [s0], -1.0)
    with pytest.raises(ValueError, match="starts"):
        integrate_batch([m], [pk.State(np.ones((2, 2)) * 2, np.eye(2))], 10.0)


@pytest.mark.parametrize("activation, second_order", [("erf", True), ("linear", True), ("relu", False),
                                                       ("relu", True)])
def test_a_run_does_not_depend_on_its_batch_mates(activation, second_order):
    """Ordered sums instead of BLAS products: a model's trajectory is bitwise the same alone or in any batch.

    It fails with the BLAS products (``rowwise=False``) of the per-point flow: their rounding
    changes with the batch's size and, amplified by the plateau, the trajectories by ~1e-7.
    """
    s0 = pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))
    models = [pk.Committee(2, 2, activation, eta=e, second_order=second_order) for e in np.linspace(0.2, 2.0, 7)]
    assert CommitteeBatch(models).exact_rows
    many = integrate_batch(models, [s0] * 7, 60.0, n_points=41, stop_eg=1e-3, thresholds=[1e-2])
    for j in (0, 3, 6):
        alone = integrate_batch([models[j]], [s0], 60.0, n_points=41, stop_eg=1e-3, thresholds=[1e-2])
        two = integrate_batch([models[(j + 2) % 7], models[j]], [s0] * 2, 60.0, n_points=41, stop_eg=1e-3)
        for other in (alone.datasets[0], two.datasets[1]):
            for var in ("R", "Q", "alpha"):
                np.testing.assert_array_equal(other[var].values, many.datasets[j][var].values)
            # eps_g of the samples, computed for all runs at once, may differ in its last bits
            np.testing.assert_allclose(other["eg"].values, many.datasets[j]["eg"].values, rtol=1e-13, atol=1e-17)
            assert other.attrs["alpha_end"] == many.datasets[j].attrs["alpha_end"]
        assert alone.crossings[1e-2][0].alpha == many.crossings[1e-2][j].alpha
    # a quadrature activation's expectations are rounded with the batch: never claimed exact
    assert not CommitteeBatch([pk.Committee(2, 2, "tanh", eta=0.5, second_order=True)]).exact_rows
