"""Study files: parsing, the grid (plain, case and dependent axes), the cheap variant, hashing,
one-line errors naming the key, and that reading a study computes nothing."""

import json
import textwrap

import numpy as np
import pytest

from phasekit.study.schema import Study, StudyError, load_study, parse_study, study_files

GOOD = textwrap.dedent("""
    name = "demo"
    description = "a test study"
    cost = "seconds"
    [model]
    K = 2
    M = "K"
    activation = "erf"
    second_order = true
    [grid]
    eta = {start = 0.1, stop = 10.0, num = 3, spacing = "log"}
    K = [2, 3]
    activation = ["erf", "linear"]
    [initial]
    X = 0.01
    [integration]
    eta_alpha_max = 200.0
    stop_eg = 1e-4
    [solver]
    rtol = 1e-8
    [measures.convergence_time]
    threshold = 1e-3
    [measures.final_eg]
    [analyses.optimum]
    var = "convergence_time"
    over = "eta"
    [report]
    trajectories = [{eta = 0.1, K = 3}]
    [quick]
    grid.K = [2]
    grid.eta = {num = 2}
    report.trajectories = [{eta = 0.1, K = 2}]
""")


def write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_good_study_grid_and_points(tmp_path):
    st = load_study(write(tmp_path, GOOD))
    assert st.system == "committee" and st.cost == "seconds" and st.has_quick and not st.quick
    assert st.dims == ("eta", "K", "activation")
    assert st.shape == (3, 2, 2) and st.n_points == 12
    np.testing.assert_allclose(st.grid["eta"], [0.1, 1.0, 10.0], rtol=1e-12)
    # the range is numpy's own (no rounding): the values a Python call would use
    assert st.grid["eta"] == list(np.geomspace(0.1, 10.0, 3))
    # C order over (eta, K, activation): point 7 = (1, 1, 1)
    p, settings = st.point_parameters(7)
    assert p["eta"] == pytest.approx(1.0) and p["K"] == 3 and p["activation"] == "linear"
    assert p["M"] == 3  # tied to K
    assert p["X"] == 0.01 and p["second_order"] is True and settings == {}
    assert st.measures == {"convergence_time": {"threshold": 1e-3}, "final_eg": {}}
    assert st.solver.rtol == 1e-8 and st.solver.atol == 1e-14  # parsed once into the options object
    assert st.analyses == {"optimum": {"kind": "optimum", "var": "convergence_time", "over": "eta"}}
    assert st.trajectory_points() == [st.index_of({"eta": 0.1, "K": 3})] == [2]
    assert st.label(7) == "eta = 1, K = 3, activation = linear"


def test_quick_variant_is_merged_key_by_key(tmp_path):
    path = write(tmp_path, GOOD)
    q = load_study(path, quick=True)
    assert q.quick and q.dims == ("eta", "K", "activation") and q.shape == (2, 1, 2)
    assert q.grid["eta"] == list(np.geomspace(0.1, 10.0, 2))  # start, stop, spacing kept
    # Only the grid's values differ: the same points where they coincide.
    assert q.measures == load_study(path).measures and q.hash() == load_study(path).hash()
    plain = write(tmp_path, GOOD.split("[quick]")[0], "p.toml")
    with pytest.raises(StudyError) as info:
        load_study(plain, quick=True)
    assert "has no cheap variant (no [quick] table)" in str(info.value) and "\n" not in str(info.value)


def test_round_trip_and_hash(tmp_path):
    st = load_study(write(tmp_path, GOOD))
    again = parse_study(json.loads(st.to_json()))
    assert again.hash() == st.hash() and again.dims == st.dims and again.shape == st.shape
    # Description, report, analyses and the stored trajectories do not change the points: same hash.
    other = load_study(write(tmp_path, GOOD.replace("a test study", "words").replace("K = 3}", "K = 2}")
                             .replace('over = "eta"', 'over = "K"'), "o.toml"))
    assert other.hash() == st.hash()
    # Nor do the grid's values, their order or the order of the axes (a point is matched by its values) ...
    for old, new in [("num = 3", "num = 4"), ("K = [2, 3]", "K = [3, 2, 4]"), ("K = 2\n", "K = 5\n")]:
        assert load_study(write(tmp_path, GOOD.replace(old, new), "g.toml")).hash() == st.hash(), old
    swapped = GOOD.replace('K = [2, 3]\n', '').replace('activation = ["erf", "linear"]',
                                                         'activation = ["erf", "linear"]\nK = [2, 3]')
    sw = load_study(write(tmp_path, swapped, "w.toml"))
    assert sw.dims == ("eta", "activation", "K") and sw.hash() == st.hash()
    # ... but settings, options, defaults the grid does not set, and the axes themselves do.
    for old, new in [("stop_eg = 1e-4", "stop_eg = 1e-5"), ("rtol = 1e-8", "rtol = 1e-9"),
                     ("X = 0.01", "X = 0.02"), ("threshold = 1e-3", "threshold = 1e-2"),
                     ("second_order = true", "second_order = false"), ('activation = ["erf", "linear"]\n', ""),
                     ("K = [2, 3]\n", "K = [2, 3]\nX = [0.01]\n")]:
        changed = load_study(write(tmp_path, GOOD.replace(old, new), "c.toml"))
        assert changed.hash() != st.hash(), old


def test_case_axis_sets_several_parameters():
    st = parse_study({"name": "c", "model": {"activation": "relu"},
                      "grid": {"case": [{"name": "perceptron", "K": 1, "M": 1, "Q0": 0.25},
                                        {"name": "committee", "K": 2, "M": 2, "Q0": [0.2, 0.3]}],
                               "eta": [0.1, 0.2]},
                      "measures": {"final_eg": {}}})
    assert st.dims == ("case", "eta") and st.shape == (2, 2)
    p, _ = st.point_parameters(3)
    assert (p["K"], p["M"], p["Q0"], p["eta"]) == (2, 2, [0.2, 0.3], 0.2)
    # named after a setting that every case sets: its values are the coordinate
    fs = parse_study({"name": "f", "grid": {"N": [{"N": 100, "seed": 0}, {"N": 300, "seed": 1}]},
                      "measures": {"spread": {"n_runs": 10}}})
    assert fs.grid["N"] == [100, 300]
    params, settings = fs.point_parameters(1)
    assert params["seed"] == 1 and settings == {"N": 300}


def test_dependent_range_has_values_per_value_of_an_earlier_axis():
    st = parse_study({"name": "e", "system": "propagation",
                      "grid": {"activation": ["relu", "tanh"],
                               "sigma_w2": {"start": 0.5, "stop": {"relu": 3.0, "tanh": 4.0}, "num": 6}},
                      "measures": {"phase": {}}})
    assert st.dims == ("activation", "sigma_w2_index") and st.shape == (2, 6)
    assert st.point_parameters(5)[0]["sigma_w2"] == 3.0
    assert st.point_parameters(11)[0]["sigma_w2"] == float(np.linspace(0.5, 4.0, 6)[5])


def test_measure_settings_can_be_grid_axes():
    st = parse_study({"name": "b", "model": {"second_order": False}, "grid": {"band": [0.05, 0.1]},
                      "measures": {"plateau_length": {}}})
    assert [st.point_parameters(j)[1] for j in range(2)] == [{"band": 0.05}, {"band": 0.1}]


def _no_work(monkeypatch):
    import phasekit.committee as committee

    def boom(*a, **k):
        raise AssertionError("reading a study must not compute")

    for name in ("integrate", "critical_eta", "symmetric_plateau", "simulate"):
        monkeypatch.setattr(committee, name, boom)


def test_reading_a_study_computes_nothing(tmp_path, monkeypatch):
    _no_work(monkeypatch)
    assert load_study(write(tmp_path, GOOD)).n_points == 12


BAD = [
    ("unknown top-level key", 'name = "x"\ncolour = 1\n[measures.final_eg]\n', "colour"),
    ("unknown model key", 'name = "x"\n[model]\nKK = 2\n[measures.final_eg]\n', "model.KK"),
    ("unknown grid axis", 'name = "x"\n[grid]\nbeta = [1.0]\n[measures.final_eg]\n', "grid.beta"),
    ("unknown measure", 'name = "x"\n[measures.speed]\n', "measures.speed"),
    ("measure of another system", 'name = "x"\n[measures.phase]\n', "measures.phase"),
    ("unknown measure setting", 'name = "x"\n[measures.convergence_time]\nthreshhold = 1e-3\n',
     "measures.convergence_time.threshhold"),
    ("wrong type model eta", 'name = "x"\n[model]\neta = "fast"\n[measures.final_eg]\n', "model.eta"),
    ("wrong type grid", 'name = "x"\n[grid]\neta = 0.5\n[measures.final_eg]\n', "grid.eta"),
    ("wrong type K float", 'name = "x"\n[grid]\nK = [2, 2.5]\n[measures.final_eg]\n', "grid.K[1]"),
    ("bool is not a number", 'name = "x"\n[model]\nnoise = true\n[measures.final_eg]\n', "model.noise"),
    ("eta <= 0 in grid", 'name = "x"\n[grid]\neta = [0.1, 0.0]\n[measures.final_eg]\n', "grid.eta[1]"),
    ("eta < 0 in model", 'name = "x"\n[model]\neta = -0.1\n[measures.final_eg]\n', "model.eta"),
    ("K = 0", 'name = "x"\n[grid]\nK = [0, 1]\n[measures.final_eg]\n', "grid.K[0]"),
    ("unknown activation", 'name = "x"\n[model]\nactivation = "relux"\n[measures.final_eg]\n', "model.activation"),
    ("unknown activation in grid", 'name = "x"\n[grid]\nactivation = ["erf", "sine"]\n[measures.final_eg]\n',
     "grid.activation[1]"),
    ("negative noise", 'name = "x"\n[grid]\nnoise = [-1.0]\n[measures.final_eg]\n', "grid.noise[0]"),
    ("empty axis", 'name = "x"\n[grid]\neta = []\n[measures.final_eg]\n', "grid.eta"),
    ("duplicate values", 'name = "x"\n[grid]\neta = [0.1, 0.1]\n[measures.final_eg]\n', "grid.eta"),
    ("log range from 0", 'name = "x"\n[grid]\neta = {start = 0.0, stop = 1.0, num = 3, spacing = "log"}\n'
                         '[measures.final_eg]\n', "grid.eta.start"),
    ("range of a non-number", 'name = "x"\n[grid]\nK = {start = 1, stop = 3, num = 3}\n[measures.final_eg]\n',
     "grid.K"),
    ("case without a name", 'name = "x"\n[grid]\ncase = [{K = 1}]\n[measures.final_eg]\n', "grid.case[0].name"),
    ("unknown key in a case", 'name = "x"\n[grid]\ncase = [{name = "a", KK = 1}]\n[measures.final_eg]\n',
     "grid.case[0].KK"),
    ("two axes set one parameter", 'name = "x"\n[grid]\nK = [1]\ncase = [{name = "a", K = 2}]\n'
                                   '[measures.final_eg]\n', "grid.case"),
    ("no measures", 'name = "x"\n[model]\nK = 2\n', "measures"),
    ("missing name", '[measures.final_eg]\n', "name"),
    ("bad name", 'name = "a b"\n[measures.final_eg]\n', "name"),
    ("unknown system", 'name = "x"\nsystem = "spin_glass"\n[measures.final_eg]\n', "system"),
    ("rtol moved to [solver]", 'name = "x"\n[integration]\nrtol = 1e-9\n[measures.final_eg]\n', "integration.rtol"),
    ("zero rtol", 'name = "x"\n[solver]\nrtol = 0.0\n[measures.final_eg]\n', "solver.rtol"),
    ("unknown solver", 'name = "x"\n[solver]\nmethod = "Euler"\n[measures.final_eg]\n', "solver.method"),
    ("unknown solver key", 'name = "x"\n[solver]\ntol = 1e-3\n[measures.final_eg]\n', "solver.tol"),
    ("solver of a system without one", 'name = "x"\nsystem = "propagation"\n[solver]\nrtol = 1e-9\n'
                                       '[measures.phase]\n', "solver"),
    ("newton tol", 'name = "x"\n[newton]\ntol = -1.0\n[measures.final_eg]\n', "newton.tol"),
    ("run workers", 'name = "x"\n[run]\nn_workers = -2\n[measures.final_eg]\n', "run.n_workers"),
    ("run unknown", 'name = "x"\n[run]\nclient = "c"\n[measures.final_eg]\n', "run.client"),
    ("Q0 wrong length", 'name = "x"\n[model]\nK = 3\n[initial]\nQ0 = [0.2, 0.3]\n[measures.final_eg]\n',
     "initial.Q0"),
    ("R0 wrong shape", 'name = "x"\n[model]\nK = 2\nM = 2\n[initial]\nR0 = [[0.1, 0.0]]\n[measures.final_eg]\n',
     "initial.R0"),
    ("X < 0", 'name = "x"\n[initial]\nX = -1.0\n[measures.final_eg]\n', "initial.X"),
    ("trajectory not on grid", 'name = "x"\n[grid]\neta = [0.1]\n[measures.final_eg]\n[report]\n'
                               'trajectories = [{eta = 0.2}]\n', "report.trajectories[0].eta"),
    ("figure without kind", 'name = "x"\n[measures.final_eg]\n[[report.figures]]\nvar = "final_eg"\n',
     "report.figures[0].kind"),
    ("recipe", 'name = "x"\nrecipe = "r"\n', "recipe"),
    ("M tied and swept", 'name = "x"\n[model]\nM = "K"\n[grid]\nM = [1, 2]\n[measures.final_eg]\n', "model.M"),
    ("analysis unknown", 'name = "x"\n[measures.final_eg]\n[analyses.fit]\n', "analyses.fit"),
    ("analysis of a missing variable", 'name = "x"\n[grid]\neta = [0.1]\n[measures.final_eg]\n'
                                       '[analyses.optimum]\nvar = "convergence_time"\nover = "eta"\n',
     "analyses.optimum.var"),
    ("analysis along no axis", 'name = "x"\n[grid]\neta = [0.1]\n[measures.final_eg]\n'
                               '[analyses.optimum]\nvar = "final_eg"\nover = "K"\n', "analyses.optimum.over"),
    ("analysis setting missing", 'name = "x"\n[grid]\neta = [0.1]\n[measures.final_eg]\n'
                                 '[analyses.optimum]\nvar = "final_eg"\n', "analyses.optimum.over"),
    ("odd symmetric width", 'name = "x"\nsystem = "lazy_training"\n[grid]\nm = [2, 3]\n[measures.training]\n',
     "model.m"),
]


@pytest.mark.parametrize("what, text, key", BAD, ids=[b[0] for b in BAD])
def test_malformed_study_one_line_naming_key(tmp_path, what, text, key):
    path = write(tmp_path, text)
    with pytest.raises(StudyError) as info:
        load_study(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"'{key}'" in msg, msg
    assert msg.startswith(str(path))


def test_moved_keys_say_where_they_went(tmp_path):
    with pytest.raises(StudyError, match=r"rtol is set in \[solver\] now"):
        load_study(write(tmp_path, 'name = "x"\n[integration]\nrtol = 1e-9\n[measures.final_eg]\n'))


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(StudyError, match="not valid TOML"):
        load_study(write(tmp_path, 'name = "x\n'))
    with pytest.raises(StudyError, match="cannot read"):
        load_study(tmp_path / "nope.toml")


def test_study_error_is_value_error():
    assert issubclass(StudyError, ValueError)
    with pytest.raises(ValueError):
        parse_study({"name": "x", "measures": {"final_eg": {}}, "model": {"eta": 0}})


def test_point_index_range():
    st = parse_study({"name": "x", "grid": {"eta": [0.1, 0.2]}, "measures": {"final_eg": {}}})
    assert isinstance(st, Study) and st.n_points == 2
    with pytest.raises(ValueError, match="index"):
        st.point(2)
    single = parse_study({"name": "one", "measures": {"final_eg": {}}})
    assert single.n_points == 1 and single.dims == () and single.point(0) == {}


def test_grid_size_limit_before_any_memory_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("PHASEKIT_MAX_POINTS", raising=False)
    huge = write(tmp_path, 'name = "x"\n[grid]\neta = {start = 0.1, stop = 1.0, num = 100000000}\n'
                           '[measures.final_eg]\n')
    with pytest.raises(StudyError) as info:
        load_study(huge)
    msg = str(info.value)
    assert "'grid.eta.num'" in msg and "100,000,000 grid points exceed the limit of 1,000,000" in msg
    assert "PHASEKIT_MAX_POINTS" in msg
    product = write(tmp_path, 'name = "x"\n[grid]\neta = {start = 0.1, stop = 1.0, num = 2000}\n'
                              'X = {start = 0.001, stop = 0.01, num = 1000}\n[measures.final_eg]\n', "p.toml")
    with pytest.raises(StudyError, match="'grid': 2,000,000 grid points exceed"):
        load_study(product)
    monkeypatch.setenv("PHASEKIT_MAX_POINTS", "3e6")
    assert load_study(product).n_points == 2_000_000


def test_eta_c_of_a_first_order_study_is_refused(tmp_path):
    first = write(tmp_path, 'name = "x"\n[model]\nsecond_order = false\n[measures.eta_c]\n')
    with pytest.raises(StudyError) as info:
        load_study(first)
    msg = str(info.value)
    assert "'measures.eta_c'" in msg and "needs second_order = true" in msg and "stable at every eta" in msg
    mixed = write(tmp_path, 'name = "x"\n[grid]\nsecond_order = [true, false]\n[measures.eta_c]\n', "m.toml")
    with pytest.raises(StudyError, match="the grid sets it false"):
        load_study(mixed)
    assert load_study(write(tmp_path, 'name = "x"\n[measures.eta_c]\n', "ok.toml")).measures == {"eta_c": {}}


def test_study_files_lists_name_description_cost_and_errors(tmp_path):
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, 'name = "b"\n[measures.speed]\n', "b.toml")
    a, b = study_files(tmp_path)
    assert (a["name"], a["cost"], a["quick"], a["points"], a["system"]) == ("demo", "seconds", True, 12, "committee")
    assert b["name"] == "b" and "measures.speed" in b["error"]
