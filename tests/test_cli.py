"""The phasekit command line: help texts, one-line errors, run / integrate / report / recipes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import phasekit as pk
from phasekit.cli import build_parser, main
from phasekit.committee.starts import initial_state

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ["run", "report", "fixed-points", "integrate", "recipes"]

STUDY = """
name = "clidemo"
[model]
K = 1
M = 1
activation = "erf"
[grid]
eta = [0.5, 2.0]
[integration]
eta_alpha_max = 60.0
n_points = 101
[measures.convergence_time]
threshold = 1e-2
[measures.final_eg]
"""


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_every_subcommand_has_help_with_example(cmd, capsys):
    with pytest.raises(SystemExit) as info:
        main([cmd, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"phasekit {cmd}" in out


def test_top_level_help_lists_subcommands():
    text = build_parser().format_help()
    for cmd in SUBCOMMANDS:
        assert cmd in text


def test_malformed_study_is_one_line_error_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[grid]\neta = [0.1, -0.2]\n[measures.final_eg]\n')
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'grid.eta[1]'" in err and "> 0" in err
    assert not (tmp_path / "outputs").exists()


def test_run_sweep_writes_dataset_and_report(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    out = tmp_path / "o"
    assert main(["run", str(study), "--outdir", str(out), "--workers", "0", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.md'}" in printed.splitlines()[-1]
    ds = xr.load_dataset(out / "clidemo.nc", engine="scipy")
    assert ds.sizes == {"eta": 2} and list(ds["status"].values) == ["ok", "ok"]
    # Same numbers as integrating the points directly.
    for eta in (0.5, 2.0):
        model = pk.Committee(1, 1, "erf", eta=eta)
        traj = pk.integrate(model, initial_state(model, 1e-3), 60.0 / eta, solver={"rtol": 1e-8, "atol": 1e-11})
        assert float(ds["final_eg"].sel(eta=eta)) == pytest.approx(float(traj["eg"][-1]), rel=1e-4, abs=1e-9)
    report = (out / "report.md").read_text()
    for line in report.splitlines():
        if line.startswith("!["):
            assert (out / line.split("](")[1].rstrip(")")).stat().st_size > 1000


def test_integrate_writes_trajectory_and_figure(tmp_path, capsys):
    out = tmp_path / "traj.nc"
    code = main(["integrate", "--K", "2", "--activation", "erf", "--eta", "0.5", "--first-order", "--X", "0.01",
                 "--Q0", "0.2", "0.3", "--eta-alpha-max", "20", "--n-points", "51", "--out", str(out)])
    assert code == 0
    ds = xr.load_dataset(out, engine="scipy")
    assert ds.attrs["K"] == 2 and ds.attrs["second_order"] == 0 and ds.sizes["alpha"] >= 2
    np.testing.assert_allclose(ds["R"].values[0], 0.01 * np.eye(2))
    np.testing.assert_allclose(np.diag(ds["Q"].values[0]), [0.2, 0.3])
    model = pk.Committee(2, 2, "erf", eta=0.5, second_order=False)
    ref = pk.integrate(model, pk.State(0.01 * np.eye(2), np.diag([0.2, 0.3])), 40.0, n_points=51)
    n = min(ds.sizes["alpha"], ref.sizes["alpha"])
    np.testing.assert_allclose(ds["eg"].values[:n], ref["eg"].values[:n], rtol=1e-6)
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "figure:" in capsys.readouterr().out


def test_bad_model_argument_is_one_line_error(capsys, tmp_path):
    assert main(["integrate", "--K", "0", "--out", str(tmp_path / "x.nc")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "K" in err


def test_recipes_lists_names(capsys):
    from phasekit.study.recipes import available_recipes

    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in available_recipes():
        assert name in out


def test_report_subcommand_rewrites_report(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    out = tmp_path / "o"
    main(["run", str(study), "--outdir", str(out), "--workers", "0", "--no-progress", "--no-report"])
    assert not (out / "report.md").exists()
    assert main(["report", str(out / "clidemo.nc"), "--no-trajectories"]) == 0
    assert (out / "report.md").exists()
    assert main(["report", str(tmp_path / "missing.nc")]) == 2


def test_fixed_points_table(capsys):
    assert main(["fixed-points", "--K", "1", "--M", "1", "--activation", "erf", "--eta", "0.5",
                 "--n-starts", "8"]) == 0
    out = capsys.readouterr().out
    assert "eps_g" in out and len(out.strip().splitlines()) >= 3


def test_console_module_runs():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-m", "phasekit.cli", "recipes"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def quick_recipes(tmp_path_factory):
    """Run the committee recipes' study files through the command line (quick variants)."""
    root = tmp_path_factory.mktemp("recipes")
    out = {}
    for name in ("relu_perceptron", "relu_committee", "overrealisable", "unrealisable"):
        assert main(["run", str(REPO / "studies" / f"{name}.toml"), "--quick", "--outdir", str(root / name)]) == 0
        assert (root / name / f"{name}.png").stat().st_size > 10_000
        out[name] = xr.load_dataset(root / name / f"{name}.nc", engine="scipy")
    return out


def test_relu_perceptron_recipe(quick_recipes):
    ds = quick_recipes["relu_perceptron"]
    assert list(ds["eta"].values) == [0.1, 0.5, 1.0, 1.9, 2.2, 3.0]
    status = dict(zip(ds["eta"].values, ds["status"].values))
    # Below eta_c = 2 the student reaches the perfect solution (R, Q) = (1, 1) ...
    last = ds.sel(eta=1.0).dropna("alpha", subset=["eg"]).isel(alpha=-1)
    assert last["R"].item() == pytest.approx(1.0, abs=1e-4) and last["Q"].item() == pytest.approx(1.0, abs=1e-4)
    # ... above it it cannot: at 2.2 it is held at a worse state, at 3.0 the norm blows up.
    assert status[2.2] == "ok" and float(ds["eg_end"].sel(eta=2.2)) > 0.1
    assert status[3.0] == "diverged" and float(ds["alpha_end"].sel(eta=3.0)) < float(ds["alpha"].max())
    assert np.isnan(ds["eg"].sel(eta=3.0).values[-1])  # nothing plotted beyond the stop
    # Independent check of the eta^2 term: at R = 0 the fields are independent and
    # dQ/dalpha = 2 eta (sqrt(q)/(2 pi) - q/2) + eta^2 (1/4 - sqrt(q)/pi + q/2) for ReLU.
    eta, q = 0.5, 0.25
    dQ = 2 * eta * (np.sqrt(q) / (2 * np.pi) - q / 2) + eta**2 * (0.25 - np.sqrt(q) / np.pi + q / 2)
    a, qs = ds["alpha"].values[:5], ds["Q"].sel(eta=eta).values[:5, 0, 0]
    slope = np.polyfit(a, qs, 2)[1]
    assert slope == pytest.approx(dQ, rel=1e-3)


def test_relu_committee_recipe_plateau(quick_recipes):
    ds = quick_recipes["relu_committee"]
    # MODEL.md: eps_g sits near the symmetric plateau's 0.073613 for eta*alpha roughly 5 to 20.
    eg = ds["eg"].values[(ds["eta_alpha"].values > 8) & (ds["eta_alpha"].values < 15)]
    np.testing.assert_allclose(eg, 0.073613, rtol=0.03)
    assert ds.attrs["K"] == 2 and ds.attrs["second_order"] == 0


def test_mismatched_committee_recipes(quick_recipes):
    over, under = quick_recipes["overrealisable"], quick_recipes["unrealisable"]
    assert over.sizes["i"] == 3 and over.sizes["n"] == 2 and under.sizes["i"] == 2 and under.sizes["n"] == 3
    np.testing.assert_allclose(over["R"].values[:, 0], [[[1e-3, 0], [0, 0], [0, 0]]] * 2)
    np.testing.assert_allclose(np.diagonal(under["Q"].values[:, 0], axis1=-2, axis2=-1), [[0.2, 0.2]] * 2)
    # An over-realisable ReLU student can still reach zero error; an unrealisable one cannot.
    assert float(over["eg"].sel(activation="relu").values[-1]) < 1e-3
    assert np.all(under["eg"].values[:, -1] > 1e-2)
    assert list(over["status"].values) == ["ok", "ok"] and list(under["status"].values) == ["ok", "ok"]


def _cli(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PHASEKIT_MAX_WORKERS", None)
    return subprocess.run([sys.executable, "-m", "phasekit", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("workers", ["-1", "1000"])
def test_worker_count_is_checked_before_any_work(tmp_path, workers):
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    res = _cli("run", str(study), "--outdir", str(tmp_path / "o"), "--workers", workers)
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("phasekit run: error: --workers: must be an integer in [0, ")
    assert "PHASEKIT_MAX_WORKERS" in err[0] and f"got {workers}" in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("size", ["-3", "0"])
def test_batch_size_is_checked(tmp_path, capsys, size):
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    assert main(["run", str(study), "--outdir", str(tmp_path / "o"), "--workers", "0", "--batch-size", size]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"phasekit run: error: --batch-size: must be an integer >= 1 (points per task), got {size}"]
    assert not (tmp_path / "o").exists()


def test_argument_errors_are_one_line():
    res = _cli("run", "x.toml", "--workers", "many")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "phasekit run: error: argument --workers: invalid int value: 'many' (see phasekit run --help)"]


def test_report_of_a_study_file_or_a_wrong_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    assert main(["report", str(study)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no dataset of study 'clidemo' at outputs/clidemo/clidemo.nc" in err[0]
    assert main(["run", str(study), "--workers", "0", "--no-progress", "--no-report"]) == 0
    assert main(["report", str(study), "--no-trajectories"]) == 0  # finds outputs/clidemo/clidemo.nc
    assert (tmp_path / "outputs" / "clidemo" / "report.md").exists()
    capsys.readouterr()
    for wrong in (study.with_suffix(".txt"), tmp_path / "outputs"):
        if wrong.suffix:
            wrong.write_text("not a dataset")
        assert main(["report", str(wrong)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is not a dataset written by 'phasekit run' (a netCDF .nc file" in err[0], err


def test_recipe_parameter_error_names_file_and_key_before_work(tmp_path, capsys):
    study = tmp_path / "r.toml"
    study.write_text('name = "r"\nrecipe = "relu_perceptron"\n[parameters]\neta = 0.1\nalpha_maxx = 3.0\n')
    assert main(["run", str(study), "--outdir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"phasekit run: error: {study}: unknown key 'parameters.alpha_maxx'")
    assert not (tmp_path / "o").exists()


def test_recipe_study_refuses_a_scheduler(capsys):
    assert main(["run", str(REPO / "studies" / "relu_perceptron.toml"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--scheduler" in err[0] and "is a recipe study" in err[0]
