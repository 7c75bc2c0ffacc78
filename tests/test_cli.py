"""The phasekit command line: help texts, one-line errors, run / integrate / report / studies."""

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
from phasekit.core.results import status_names
from phasekit.study.schema import load_study

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ["run", "report", "studies", "recipes", "fixed-points", "integrate"]

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
    assert ds.sizes == {"eta": 2} and set(status_names(ds["status"].values)) <= {"ok", "not_reached"}
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


def test_integrate_and_fixed_points_in_the_site_symmetric_subspace(tmp_path, capsys):
    """--subspace site_symmetric: the reduced trajectory (R, S, Q, C) from R = X, S = 0, Q = Q0, C = 0 equals
    integrate of the reduced model, its figure is drawn; the fixed-point table lists the reduced points."""
    out = tmp_path / "wide.nc"
    assert main(["integrate", "--K", "50", "--activation", "erf", "--eta", "0.02", "--X", "0.001", "--Q0", "0.5",
                 "--eta-alpha-max", "20", "--n-points", "11", "--subspace", "site_symmetric", "--out", str(out)]) == 0
    ds = xr.load_dataset(out, engine="scipy")
    assert ds.attrs["subspace"] == "site_symmetric" and list(ds["S"].dims) == ["alpha"]
    red = pk.Committee(50, 50, "erf", eta=0.02).restrict("site_symmetric")
    ref = pk.integrate(red, [1e-3, 0.0, 0.5, 0.0], 1000.0, n_points=11)
    np.testing.assert_allclose(ds["C"].values, ref["C"].values, rtol=1e-12)
    assert out.with_suffix(".png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["fixed-points", "--K", "3", "--activation", "erf", "--eta", "0.5", "--n-starts", "2",
                 "--subspace", "site_symmetric", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "perfect" in table and "R = 1, S = 0, Q = 1, C = 0" in table
    assert main(["integrate", "--K", "2", "--M", "3", "--subspace", "site_symmetric", "--out", str(out)]) == 2


def test_console_freezes_the_heap_only_in_a_process_of_its_own(capsys):
    # main() (what tests and notebooks call) leaves the collector alone ...
    import gc

    before = gc.get_freeze_count()
    assert main(["studies", "--folder", str(REPO / "studies")]) == 0
    assert gc.get_freeze_count() == before
    # ... the command (console) freezes what it loaded, and returns main's status.
    code = ("import gc, sys; from phasekit.cli import console; "
            f"rc = console(['studies', '--folder', {str(REPO / 'studies')!r}]); "
            "print('STATUS', rc, gc.get_freeze_count() > 0, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "STATUS 0 True" in out.stderr, out.stderr


def test_bad_model_argument_is_one_line_error(capsys, tmp_path):
    assert main(["integrate", "--K", "0", "--out", str(tmp_path / "x.nc")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "K" in err


def test_studies_lists_every_study_file_with_its_cost(capsys):
    from phasekit.study.schema import study_files

    assert main(["studies", "--folder", str(REPO / "studies")]) == 0
    out = capsys.readouterr().out
    infos = study_files(REPO / "studies")
    assert infos and all("error" not in i for i in infos)
    for info in infos:
        assert info["name"] in out and info["cost"] in out
    assert main(["recipes", "--folder", str(REPO / "studies")]) == 0
    assert capsys.readouterr().out.startswith("(recipes are study files now: this is 'phasekit studies')")


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("phasekit ")


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
    res = subprocess.run([sys.executable, "-m", "phasekit.cli", "studies", "--folder", str(REPO / "studies")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_quick_means_the_studys_cheap_variant_or_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "s.toml"
    study.write_text(STUDY + "[quick]\ngrid.eta = [2.0]\n")
    assert main(["run", str(study), "--quick", "--workers", "0", "--no-progress", "--no-report"]) == 0
    ds = xr.load_dataset(tmp_path / "outputs" / "clidemo-quick" / "clidemo.nc", engine="scipy")
    assert list(ds["eta"].values) == [2.0] and ds.attrs["variant"] == "quick"
    plain = tmp_path / "p.toml"
    plain.write_text(STUDY)
    capsys.readouterr()
    assert main(["run", str(plain), "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no cheap variant (no [quick] table)" in err[0]


def test_a_bad_figure_spec_is_one_line_before_any_work(tmp_path, capsys):
    study = tmp_path / "f.toml"
    study.write_text(STUDY + '[[report.figures]]\nkind = "pie"\n')
    assert main(["run", str(study), "--outdir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{study}: key 'report.figures[0].kind': unknown figure 'pie'" in err[0]
    assert not (tmp_path / "o").exists()


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


def test_quick_is_the_cheap_variant_in_every_command_or_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    study = tmp_path / "studies" / "s.toml"
    study.write_text(STUDY + "[quick]\ngrid.eta = [2.0]\n")
    (tmp_path / "studies" / "p.toml").write_text(STUDY.replace('name = "clidemo"', 'name = "plain"'))
    full_points = load_study(study).n_points
    # studies --quick: the grid points of the cheap variant (1 here), and which studies have none
    assert main(["studies", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "clidemo" in out and "     1 points  --quick" in out and "plain" in out and "no cheap variant" in out
    assert main(["studies"]) == 0 and f"{full_points:>6d} points  --quick" in capsys.readouterr().out
    # report --quick: the cheap variant's dataset; a full-variant .nc is refused
    assert main(["run", str(study), "--workers", "0", "--no-progress", "--no-report"]) == 0
    assert main(["run", str(study), "--quick", "--workers", "0", "--no-progress", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["report", str(study), "--quick"]) == 0
    assert "clidemo-quick" in capsys.readouterr().out
    assert main(["report", "outputs/clidemo-quick/clidemo.nc", "--quick"]) == 0
    capsys.readouterr()
    assert main(["report", "outputs/clidemo/clidemo.nc", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--quick: outputs/clidemo/clidemo.nc holds the full variant of study 'clidemo'" in err[0]
    # commands without a study file refuse it, saying what --quick means
    for cmd in (["fixed-points", "--K", "1"], ["integrate", "--K", "1", "--out", "t.nc"]):
        assert main(cmd + ["--quick"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--quick: means a study file's cheap variant" in err[0], err
    assert not (tmp_path / "t.nc").exists()
