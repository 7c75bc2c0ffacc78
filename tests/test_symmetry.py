"""phasekit.committee.symmetry: permutation symmetries of states and the site-symmetric subspace.

Independent routes: relabelling students and teachers by hand, and the flow
itself (the site-symmetric subspace is invariant).
"""

import numpy as np

import phasekit.committee as pc
from phasekit.committee.model import Committee, State
from phasekit.committee.symmetry import _state_symmetry, _symmetric_basis


def test_perfect_solution_symmetry_is_simultaneous():
    model = Committee(3, 3, "relu", eta=1.0, second_order=False)
    sym = _state_symmetry(model, State(np.eye(3), np.eye(3)).to_vector())
    assert sym is not None and sym.kind == "simultaneous" and len(sym.representatives) == 4


def test_plateau_symmetry_is_separate_and_maps_coordinates_onto_representatives():
    model = Committee(3, 3, "erf", eta=1.0, second_order=False)
    v = pc.symmetric_plateau(model).vector
    sym = _state_symmetry(model, v)
    assert sym is not None and sym.kind == "separate" and len(sym.representatives) == 3
    # every coordinate map leaves the state unchanged
    for pi in sym.perms:
        w = np.empty_like(v)
        w[pi] = v
        assert np.abs(w - v).max() <= 1e-12
    # a generic state has no symmetry
    assert _state_symmetry(model, v + 1e-3 * np.arange(v.size)) is None


def test_symmetrise_averages_over_the_group_and_makes_the_jacobian_equivariant():
    model = Committee(3, 3, "erf", eta=1.0, second_order=False)
    v = pc.symmetric_plateau(model).vector
    sym = _state_symmetry(model, v)
    rng = np.random.default_rng(0)
    J = rng.normal(size=(v.size, v.size))
    Js = sym.symmetrise(J)
    assert np.allclose(sym.symmetrise(Js), Js, rtol=0, atol=1e-14)  # a projection
    for g in sym.generators:
        P = np.eye(v.size)[g]
        assert np.allclose(P @ Js @ P.T, Js, rtol=0, atol=1e-14)


def test_site_symmetric_subspace_is_invariant_under_the_flow():
    """With T invariant under teacher permutations the flow maps R_in = R, Q_ii = Q, Q_ik = C into itself."""
    for K, M in ((2, 2), (3, 2), (2, 3)):
        P = _symmetric_basis(K, M)
        assert P.shape == (K * M + K * (K + 1) // 2, 3)
        model = Committee(K, M, "relu", eta=0.7, second_order=True)
        v = P @ np.array([0.2, 0.6, 0.1])
        f = model.rhs_vector(v)
        Qb, _ = np.linalg.qr(P)
        assert np.abs(f - Qb @ (Qb.T @ f)).max() <= 1e-14 and np.abs(f).max() > 1e-3


def test_symmetry_with_second_layer_weights():
    """Trained weights permute with their students; unequal weights break the permutation symmetry."""
    model = Committee(3, 3, "relu", eta=0.5, train_second_layer=True)
    v = State(np.eye(3), np.eye(3), [1.0, 1.0, 1.0]).to_vector()
    sym = _state_symmetry(model, v)
    assert sym.kind == "simultaneous" and len(sym.representatives) == 5  # R_ii, R_in, Q_ii, Q_ik, v_i
    # each coordinate map is a permutation of the state vector that leaves it invariant
    for pi in sym.perms:
        assert sorted(pi) == list(range(model.n_state))
        w = np.empty_like(v)
        w[pi] = v
        assert np.array_equal(w, v)
    for kwargs, state in ((dict(teacher_weights=[1.0, 0.6], student_weights=[1.0, 0.6]), State(np.eye(2), np.eye(2))),
                          (dict(teacher_weights=[1.0, 0.6], train_second_layer=True),
                           State(np.eye(2), np.eye(2), [1.0, 0.6]))):
        m = Committee(2, 2, "relu", **kwargs)
        assert _state_symmetry(m, m.state_vector(state)) is None
    assert _symmetric_basis(2, 2, second_layer=True).shape == (9, 4)
