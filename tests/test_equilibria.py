"""Fixed points of deep linear networks and their stability (phasekit.deep_linear.equilibria)."""

import numpy as np
import pytest

from phasekit import deep_linear as ld


def _fd_jacobian(a, s, lam, h=1e-6):
    J = np.empty((a.size, a.size))
    for j in range(a.size):
        e = np.zeros(a.size)
        e[j] = h
        J[:, j] = (ld.layer_rhs(a + e, s, weight_decay=lam)
                   - ld.layer_rhs(a - e, s, weight_decay=lam)) / (2 * h)
    return J


def test_fixed_points_depth_two():
    s, lam = 1.5, 0.2
    origin, learned = ld.fixed_points(s, weight_decay=lam)
    # origin: saddle with eigenvalues s - lambda and -s - lambda
    assert np.allclose(origin.eigenvalues, [s - lam, -s - lam]) and origin.n_unstable == 1
    assert not origin.stable
    # learned: u = s - lambda; balanced direction -2 (s - lambda), unbalancing -2 lambda
    assert np.prod(learned.state) == pytest.approx(s - lam, rel=1e-14)
    assert np.allclose(np.sort(learned.eigenvalues), np.sort([-2 * (s - lam), -2 * lam]))
    assert learned.stable and learned.n_unstable == 0 and learned.residual < 1e-14
    # without weight decay the unbalancing direction is neutral (a family of solutions)
    _, free = ld.fixed_points(s)
    assert np.allclose(np.sort(free.eigenvalues), [-2 * s, 0.0], atol=1e-14) and not free.stable


@pytest.mark.parametrize("k", [3, 4])
def test_fixed_points_with_weight_decay_have_a_barrier(k):
    s, lam = 1.0, 0.1
    fps = ld.fixed_points(s, depth=k, weight_decay=lam)
    assert [fp.stable for fp in fps] == [True, False, True]
    assert [fp.n_unstable for fp in fps] == [0, 1, 0]
    for fp in fps:
        assert fp.residual < 1e-13
        fd = np.sort(np.linalg.eigvals(_fd_jacobian(fp.state, s, lam)).real)[::-1]
        assert np.allclose(fp.eigenvalues, fd, atol=1e-7)
        col = fp.eigenvectors[:, 0]
        assert np.linalg.norm(col) == pytest.approx(1.0) and col[np.argmax(np.abs(col))] > 0
    # mode coordinates: the balanced-direction eigenvalue is the u-flow slope at nonzero fixed points
    modes = ld.fixed_points(s, depth=k, weight_decay=lam, coordinates="mode")
    for fp_l, fp_m in zip(fps[1:], modes[1:]):
        u = np.prod(fp_l.state)
        assert fp_m.state[0] == pytest.approx(u, rel=1e-12)
        h = 1e-7 * u
        slope = (ld.mode_rhs(u + h, s, depth=k, weight_decay=lam)
                 - ld.mode_rhs(u - h, s, depth=k, weight_decay=lam)) / (2 * h)
        assert fp_m.eigenvalues[0] == pytest.approx(slope, rel=1e-6)
        balanced = fp_l.eigenvalues[np.argmin(np.abs(fp_l.eigenvalues - slope))]
        assert balanced == pytest.approx(fp_m.eigenvalues[0], rel=1e-10)
    # starting below the unstable fixed point the mode dies, above it the mode is learned
    u_barrier = np.prod(fps[1].state)
    assert ld.mode_strength(200.0, s, 0.9 * u_barrier, depth=k, weight_decay=lam) < 1e-3 * u_barrier
    assert ld.mode_strength(200.0, s, 1.1 * u_barrier, depth=k, weight_decay=lam) == pytest.approx(
        np.prod(fps[2].state), rel=1e-9)


@pytest.mark.parametrize("k", [3, 4, 5])
def test_layer_eigenvectors_are_an_orthonormal_eigenbasis(k):
    """The layer Jacobian is symmetric with a (k-1)-fold eigenvalue at balanced points:
    its eigenvectors are real, orthonormal and span the eigenspaces of eigh (an independent driver)."""
    for fp in ld.fixed_points(1.0, depth=k, weight_decay=0.1):
        J, V, w = fp.jacobian, fp.eigenvectors, fp.eigenvalues
        assert np.allclose(J, J.T, rtol=0, atol=1e-14)
        assert V.dtype == float and w.dtype == float
        assert np.abs(V.T @ V - np.eye(k)).max() <= 1e-10
        assert np.abs(J @ V - V * w).max() <= 1e-12
        lam, U = np.linalg.eigh(J)
        assert np.allclose(np.sort(w), lam, rtol=0, atol=1e-12)
        for x in np.unique(np.round(lam, 9)):
            sel_v, sel_u = np.abs(w - x) < 1e-9, np.abs(lam - x) < 1e-9
            assert np.abs(V[:, sel_v] @ V[:, sel_v].T - U[:, sel_u] @ U[:, sel_u].T).max() <= 1e-9


def test_fixed_points_are_generic_fixed_point_results():
    import phasekit as pk

    fps = ld.fixed_points(2.0, depth=2)
    assert fps and all(type(fp) is pk.FixedPoint for fp in fps)
    assert all(fp.status == "ok" and fp.success and fp.kind in {"stable", "saddle", "unstable", "marginal"}
               for fp in fps)
    assert fps[0].labels == ("a1", "a2") and fps[0].jacobian_scheme == "analytic"
    assert np.array_equal(fps[0].state, fps[0].vector)
    ds = fps[-1].to_dataset()
    assert list(ds.component.values) == ["a1", "a2"] and int(ds.n_unstable) == fps[-1].n_unstable
    # layer coordinates: the origin is a saddle, the learned point is marginal along the
    # rescaling a1 -> c a1, a2 -> a2 / c; in the mode strength it is stable
    assert [fp.kind for fp in fps] == ["saddle", "marginal"]
    assert [fp.kind for fp in ld.fixed_points(2.0, depth=2, coordinates="mode")] == ["unstable", "stable"]


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="s: singular value must be finite and >= 0"):
        ld.fixed_points(-1.0)
    with pytest.raises(ValueError, match="coordinates: must be 'layers' or 'mode'"):
        ld.fixed_points(1.0, coordinates="weights")
