"""Study files: parsing, the grid, hashing, and one-line errors naming the key."""

import textwrap

import numpy as np
import pytest

from phasekit.study.schema import Study, StudyError, load_study, parse_study

GOOD = textwrap.dedent("""
    name = "demo"
    description = "a test study"
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
    [measures.convergence_time]
    threshold = 1e-3
    [measures.final_eg]
    [report]
    trajectories = [{eta = 0.1, K = 3}]
""")


def write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_good_study_grid_and_points(tmp_path):
    st = load_study(write(tmp_path, GOOD))
    assert st.dims == ("eta", "K", "activation")
    assert st.shape == (3, 2, 2) and st.n_points == 12
    np.testing.assert_allclose(st.grid["eta"], [0.1, 1.0, 10.0], rtol=1e-12)
    # C order over (eta, K, activation): point 7 = (1, 1, 1)
    p = st.point_parameters(7)
    assert p["eta"] == pytest.approx(1.0) and p["K"] == 3 and p["activation"] == "linear"
    assert p["M"] == 3  # tied to K
    assert p["X"] == 0.01 and p["second_order"] is True
    assert st.alpha_max(0.5) == pytest.approx(400.0)
    assert st.measures == {"convergence_time": {"threshold": 1e-3}, "final_eg": {}}
    assert len(st.points()) == 12 and len({tuple(sorted(map(str, q.items()))) for q in st.points()}) == 12


def test_round_trip_and_hash(tmp_path):
    st = load_study(write(tmp_path, GOOD))
    again = parse_study(__import__("json").loads(st.to_json()))
    assert again.hash() == st.hash() and again.dims == st.dims
    # Description and report options do not change the results: same hash.
    other = load_study(write(tmp_path, GOOD.replace("a test study", "words").replace("K = 3}", "K = 2}"), "o.toml"))
    assert other.hash() == st.hash()
    # Grid, order of axes, settings do.
    for old, new in [("num = 3", "num = 4"), ("stop_eg = 1e-4", "stop_eg = 1e-5"),
                     ("X = 0.01", "X = 0.02"), ("threshold = 1e-3", "threshold = 1e-2")]:
        changed = load_study(write(tmp_path, GOOD.replace(old, new), "c.toml"))
        assert changed.hash() != st.hash(), old
    swapped = GOOD.replace('K = [2, 3]\n', '').replace('activation = ["erf", "linear"]',
                                                         'activation = ["erf", "linear"]\nK = [2, 3]')
    sw = load_study(write(tmp_path, swapped, "w.toml"))
    assert sw.dims == ("eta", "activation", "K") and sw.hash() != st.hash()


def test_recipe_study(tmp_path):
    st = load_study(write(tmp_path, 'name = "fig"\nrecipe = "relu_perceptron"\n[parameters]\neta = 0.1\n'))
    assert st.recipe == "relu_perceptron" and st.parameters == {"eta": 0.1}


BAD = [
    ("unknown top-level key", 'name = "x"\ncolour = 1\n[measures.final_eg]\n', "colour"),
    ("unknown model key", 'name = "x"\n[model]\nKK = 2\n[measures.final_eg]\n', "model.KK"),
    ("unknown grid axis", 'name = "x"\n[grid]\nbeta = [1.0]\n[measures.final_eg]\n', "grid.beta"),
    ("unknown measure", 'name = "x"\n[measures.speed]\n', "measures.speed"),
    ("unknown measure setting", 'name = "x"\n[measures.convergence_time]\nthreshhold = 1e-3\n',
     "measures.convergence_time.threshhold"),
    ("wrong type model eta", 'name = "x"\n[model]\neta = "fast"\n[measures.final_eg]\n', "model.eta"),
    ("wrong type grid", 'name = "x"\n[grid]\neta = 0.5\n[measures.final_eg]\n', "grid.eta"),
    ("wrong type K float", 'name = "x"\n[grid]\nK = [2, 2.5]\n[measures.final_eg]\n', "grid.K[1]"),
    ("bool is not a number", 'name = "x"\n[model]\nnoise = true\n[measures.final_eg]\n', "model.noise"),
    ("eta <= 0 in grid", 'name = "x"\n[grid]\neta = [0.1, 0.0]\n[measures.final_eg]\n', "grid.eta[1]"),
    ("eta < 0 in model", 'name = "x"\n[model]\neta = -0.1\n[measures.final_eg]\n', "model.eta"),
    ("K = 0", 'name = "x"\n[grid]\nK = [0, 1]\n[measures.final_eg]\n', "grid.K[0]"),
    ("K = 0 in model", 'name = "x"\n[model]\nK = 0\n[measures.final_eg]\n', "model.K"),
    ("unknown activation", 'name = "x"\n[model]\nactivation = "relux"\n[measures.final_eg]\n', "model.activation"),
    ("unknown activation in grid", 'name = "x"\n[grid]\nactivation = ["erf", "sine"]\n[measures.final_eg]\n',
     "grid.activation[1]"),
    ("negative noise", 'name = "x"\n[grid]\nnoise = [-1.0]\n[measures.final_eg]\n', "grid.noise[0]"),
    ("empty axis", 'name = "x"\n[grid]\neta = []\n[measures.final_eg]\n', "grid.eta"),
    ("duplicate values", 'name = "x"\n[grid]\neta = [0.1, 0.1]\n[measures.final_eg]\n', "grid.eta"),
    ("log range from 0", 'name = "x"\n[grid]\neta = {start = 0.0, stop = 1.0, num = 3, spacing = "log"}\n'
                         '[measures.final_eg]\n', "grid.eta.start"),
    ("no measures", 'name = "x"\n[model]\nK = 2\n', "measures"),
    ("missing name", '[measures.final_eg]\n', "name"),
    ("bad name", 'name = "a b"\n[measures.final_eg]\n', "name"),
    ("both horizons", 'name = "x"\n[integration]\nalpha_max = 1.0\neta_alpha_max = 2.0\n[measures.final_eg]\n',
     "integration.alpha_max"),
    ("zero rtol", 'name = "x"\n[integration]\nrtol = 0.0\n[measures.final_eg]\n', "integration.rtol"),
    ("unknown solver", 'name = "x"\n[integration]\nmethod = "Euler"\n[measures.final_eg]\n', "integration.method"),
    ("Q0 wrong length", 'name = "x"\n[model]\nK = 3\n[initial]\nQ0 = [0.2, 0.3]\n[measures.final_eg]\n',
     "initial.Q0"),
    ("X <= 0", 'name = "x"\n[initial]\nX = 0.0\n[measures.final_eg]\n', "initial.X"),
    ("trajectory not on grid", 'name = "x"\n[grid]\neta = [0.1]\n[measures.final_eg]\n[report]\n'
                               'trajectories = [{eta = 0.2}]\n', "report.trajectories[0].eta"),
    ("parameters without recipe", 'name = "x"\n[parameters]\na = 1\n', "parameters"),
    ("recipe with grid", 'name = "x"\nrecipe = "r"\n[grid]\neta = [0.1]\n', "grid"),
    ("M tied and swept", 'name = "x"\n[model]\nM = "K"\n[grid]\nM = [1, 2]\n[measures.final_eg]\n', "model.M"),
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
    with pytest.raises(StudyError, match="grid.second_order is false"):
        load_study(mixed)
    assert load_study(write(tmp_path, 'name = "x"\n[measures.eta_c]\n', "ok.toml")).measures == {"eta_c": {}}


BAD_RECIPES = [
    ("unknown parameter", 'eta = 0.1\nalpha_maxx = 3.0\n', "parameters.alpha_maxx", "unknown key"),
    ("wrong type", 'eta = "fast"\n', "parameters.eta", "must be a number"),
    ("not a list", 'eta_values = 0.5\n', "parameters.eta_values", "must be a list of numbers"),
    ("out of range", 'eta = -0.1\n', "parameters.eta", "must be > 0"),
    ("element out of range", 'eta_values = [0.5, 0.0]\n', "parameters.eta_values[1]", "must be > 0"),
    ("quick is an option", 'quick = true\n', "parameters.quick", "--quick"),
]


@pytest.mark.parametrize("what, params, key, problem", BAD_RECIPES, ids=[b[0] for b in BAD_RECIPES])
def test_recipe_parameters_checked_at_parse_time(tmp_path, what, params, key, problem):
    path = write(tmp_path, f'name = "r"\nrecipe = "relu_perceptron"\n[parameters]\n{params}')
    with pytest.raises(StudyError) as info:
        load_study(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and f"'{key}'" in msg and problem in msg and "\n" not in msg, msg


def test_recipe_choices_workers_and_unknown_recipe(tmp_path):
    cases = [
        ('recipe = "plateau_scaling"\n[parameters]\nkinds = ["plateau", "diagonl"]\n', "parameters.kinds[1]",
         "must be one of"),
        ('recipe = "edge_of_chaos"\n[parameters]\nactivations = ["relu", "tanhh"]\n', "parameters.activations[1]",
         "unknown activation"),
        ('recipe = "stability_boundary"\n[parameters]\nn_workers = -2\n', "parameters.n_workers", "[0, "),
        ('recipe = "relu_perceptronn"\n', "recipe", "unknown recipe"),
    ]
    for j, (text, key, problem) in enumerate(cases):
        path = write(tmp_path, f'name = "r"\n{text}', f"r{j}.toml")
        with pytest.raises(StudyError) as info:
            load_study(path)
        msg = str(info.value)
        assert msg.startswith(f"{path}: ") and f"'{key}'" in msg and problem in msg, msg
