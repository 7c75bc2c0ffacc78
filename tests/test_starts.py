"""phasekit.committee.starts: initial states.

Independent routes: explicit student vectors whose Gram matrix is the state,
and the flow (an exactly symmetric start stays symmetric).
"""

import numpy as np
import pytest

import phasekit as pk
from helpers_committee import erf_plateau, saad_solla
from phasekit.committee.starts import initial_state


def test_initial_state_diagonal_defaults():
    model = pk.Committee(3, 2, "erf", eta=0.5, second_order=False)
    s = initial_state(model, 1e-3)
    assert np.array_equal(s.R, 1e-3 * np.eye(3, 2))
    assert np.allclose(s.Q, np.diag([0.2, 0.25, 0.3]), rtol=0, atol=0)
    s1 = initial_state(pk.Committee(1, 1, "relu", eta=0.1), 0.0)
    assert s1.R[0, 0] == 0.0 and s1.Q[0, 0] == 0.25
    s2 = initial_state(model, 0.0, Q0=0.4)
    assert np.all(s2.R == 0) and np.array_equal(s2.Q, 0.4 * np.eye(3))


def test_initial_state_uniform_draws_scale_with_X():
    model = pk.Committee(3, 3, "erf", eta=1.0, second_order=False)
    a = initial_state(model, 1e-3, kind="uniform", seed=7)
    b = initial_state(model, 1e-9, kind="uniform", seed=7)
    assert np.all((a.R >= 0) & (a.R <= 1e-3))
    off = a.Q[~np.eye(3, dtype=bool)]
    assert np.all((off >= 0) & (off <= 1e-3)) and np.all(off > 0)
    # same seed, same direction: the draw is scaled by X
    assert np.allclose(a.R / 1e-3, b.R / 1e-9, rtol=1e-12, atol=0)
    assert not np.allclose(initial_state(model, 1e-3, kind="uniform", seed=8).R, a.R)


def test_symmetric_start_stays_symmetric():
    """X = 0: R_i1 = R_i2 for all time (teacher-permutation symmetry), checked by integration."""
    model = pk.Committee(2, 2, "erf", eta=1.0, second_order=False)
    traj = pk.integrate(model, initial_state(model, 0.0), 50.0, n_points=6)
    R = traj.R.values
    assert np.max(np.abs(R[:, :, 0] - R[:, :, 1])) < 1e-13
    assert R[-1].min() > 0.1  # it did learn something


def test_initial_state_plateau_kind_matches_explicit_vectors():
    """Erf plateau + X along the escape vector = Gram matrix of explicit student vectors.

    At the erf plateau the students coincide, J_i = r (B_1 + B_2); displacing R
    by X (1, -1, -1, 1)/2 corresponds to J_1 = (r + X/2) B_1 + (r - X/2) B_2 and
    J_2 = (r - X/2) B_1 + (r + X/2) B_2, whose Q needs an X^2 correction.
    """
    model = pk.Committee(2, 2, "erf", eta=1.0, second_order=False)
    r = saad_solla(2)[0]
    for X in (1e-2, 1e-5):
        s = initial_state(model, X, kind="plateau", plateau=erf_plateau(model))
        J = np.array([[r + X / 2, r - X / 2], [r - X / 2, r + X / 2]])  # rows: students in the teacher basis
        assert np.allclose(s.R, J, rtol=0, atol=1e-15)
        assert np.allclose(s.Q, J @ J.T, rtol=0, atol=1e-15)
        assert model.min_eigenvalue(s) > -1e-12


@pytest.mark.parametrize("kwargs, name", [
    ({"X": -1e-3}, "X"),
    ({"X": float("nan")}, "X"),
    ({"X": 1e-3, "Q0": 0.0}, "Q0"),
    ({"X": 1e-3, "Q0": [0.2, -0.1]}, "Q0"),
    ({"X": 1e-3, "Q0": [0.2, 0.3, 0.4]}, "Q0"),
    ({"X": 0.6, "Q0": 0.2}, "X"),            # R_11^2 > Q_11: not PSD
    ({"X": 1e-3, "kind": "gaussian"}, "kind"),
    ({"X": 1e-3, "kind": "plateau", "Q0": 0.2}, "Q0"),
])
def test_initial_state_validation(kwargs, name):
    model = pk.Committee(2, 2, "erf", eta=1.0, second_order=False)
    X = kwargs.pop("X")
    with pytest.raises(ValueError, match=name):
        initial_state(model, X, **kwargs)


def test_initial_state_names_one_thing():
    """``initial_state`` is the function of phasekit.committee.starts everywhere it is exported."""
    import phasekit.committee as pc
    from phasekit.committee import starts

    assert pk.initial_state is pc.initial_state is starts.initial_state
    assert pk.INITIAL_KINDS == ("diagonal", "uniform", "plateau")


def test_initial_state_of_a_trained_second_layer_starts_from_the_model_weights():
    model = pk.Committee(2, 2, "erf", train_second_layer=True, student_weights=[0.5, 0.7])
    for kind in ("diagonal", "uniform", "plateau"):
        state = initial_state(model, 1e-3, kind=kind, seed=1)
        assert state.v is not None and model.validate_state(state) is state
        if kind != "plateau":
            assert state.v.tolist() == [0.5, 0.7]
