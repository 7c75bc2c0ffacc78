"""phasekit.committee.search: every fixed point by a multi-start Newton search.

Independent routes: the landmarks found directly, and the distance modulo
permutations of the students coded in the module's helper.
"""

import numpy as np
import pytest

import phasekit.committee as pc
from phasekit.committee.model import Committee, State
from phasekit.committee.search import _permutation_distance


def test_fixed_points_relu_committee_finds_plateau_and_perfect_once():
    model = Committee(2, 2, "relu", eta=1.0, second_order=False)
    fps = pc.fixed_points(model, n_starts=64, seed=0)
    labels = [fp.label for fp in fps]
    assert labels.count("perfect") == 1 and labels.count("symmetric_plateau") == 1
    perfect = State(np.eye(2), np.eye(2)).to_vector()
    near_perfect = [fp for fp in fps if _permutation_distance(model, fp.vector, perfect) < 1e-4]
    near_plateau = [fp for fp in fps if _permutation_distance(
        model, fp.vector, fps[labels.index("symmetric_plateau")].vector) < 1e-4]
    assert len(near_perfect) == 1 and len(near_plateau) == 1
    assert fps[labels.index("perfect")].stable
    assert fps[labels.index("symmetric_plateau")].n_unstable == 1
    direct = pc.symmetric_plateau(model)
    assert np.abs(fps[labels.index("symmetric_plateau")].vector - direct.vector).max() < 1e-8
    for fp in fps:
        assert fp.status == "converged" and fp.residual < 1e-10
        model.validate_state(fp.state)
        assert fp.kind in ("stable", "saddle", "unstable", "marginal")
        assert "family_size" in fp.extra


def test_permutation_distance_ignores_student_labels():
    model = Committee(3, 2, "erf")
    s = State(np.array([[0.5, 0.1], [0.2, 0.6], [0.0, 0.3]]), np.diag([0.5, 0.6, 0.7]))
    p = [2, 0, 1]
    t = State(s.R[p], s.Q[np.ix_(p, p)])
    assert _permutation_distance(model, s.to_vector(), t.to_vector()) == 0.0
    assert np.abs(s.to_vector() - t.to_vector()).max() > 0.1


def test_newton_options_reach_the_search_and_bad_inputs():
    model = Committee(1, 1, "linear", eta=0.5, second_order=False)
    fps = pc.fixed_points(model, n_starts=2, seed=1, newton={"tol": 1e-13})
    assert [fp.label for fp in fps] == ["perfect"] and fps[0].residual <= 1e-13
    # from a short flow Newton needs several iterations: one is not enough to find the perfect solution
    relu = Committee(1, 1, "relu", eta=1.0, second_order=False)
    kw = {"n_starts": 3, "seed": 1, "include_landmarks": False, "alpha_flow": 0.5}
    assert [fp.label for fp in pc.fixed_points(relu, **kw)] == ["perfect"]
    assert pc.fixed_points(relu, newton={"max_iter": 1}, **kw) == []
    with pytest.raises(ValueError, match="n_starts"):
        pc.fixed_points(model, n_starts=0)
    with pytest.raises(ValueError, match="max_iter: must be an integer >= 1"):
        pc.fixed_points(model, newton={"max_iter": 0})
    with pytest.raises(ValueError, match="alpha_flow: must be finite and > 0"):
        pc.fixed_points(model, alpha_flow=0.0)


def test_fixed_points_reports_progress_after_a_threshold_and_can_be_quiet(capsys, monkeypatch):
    from phasekit.core import parallel

    model = Committee(2, 2, "erf", eta=1.0, second_order=False)
    monkeypatch.setattr(parallel, "PROGRESS_DELAY", 0.0)
    quiet = pc.fixed_points(model, n_starts=4, seed=0, progress=False)
    assert capsys.readouterr().err == ""
    shown = pc.fixed_points(model, n_starts=4, seed=0)
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("fixed_points (K = 2, M = 2) [##############################] ") and "left" in last
    done, total = last.split("] ")[1].split(" ")[0].split("/")
    # 2 landmarks + 3 candidates per start, then one linearisation per distinct root found
    assert done == total and int(total) >= 2 + 3 * 4 + len(quiet)
    assert [fp.label for fp in shown] == [fp.label for fp in quiet]


def test_fixed_points_of_a_reduced_model_are_fixed_points_of_the_full_flow():
    """erf K = M = 3, second order, in the site-symmetric subspace: the search finds the perfect solution and the
    symmetric plateau, each found point embedded is a fixed point of the full
    flow, and the full search's points inside the subspace are among them (same eps_g)."""
    from phasekit.committee.subspaces import site_symmetric_basis

    full = pc.Committee(3, 3, "erf", eta=0.5, second_order=True)
    red = full.restrict("site_symmetric")
    found = pc.fixed_points(red, n_starts=4, progress=False)
    messages = [fp.message for fp in found]
    assert messages.count("perfect") == 1 and messages.count("symmetric_plateau") == 1
    egs = [float(red.eg_vector(fp.vector)) for fp in found]
    assert egs == sorted(egs) and egs[0] == 0.0
    for fp in found:
        assert float(np.abs(full.rhs_vector(red.embed(fp.vector).to_vector())).max()) < 1e-10
    P = site_symmetric_basis(3)
    inside = [fp.eg for fp in pc.fixed_points(full, n_starts=4, progress=False)
              if np.abs(P @ np.linalg.lstsq(P, fp.vector, rcond=None)[0] - fp.vector).max() < 1e-7]
    assert inside and all(min(abs(e - g) for g in egs) < 1e-9 for e in inside)
