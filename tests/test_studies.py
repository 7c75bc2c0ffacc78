"""The study files under studies/: each reads (full and cheap variant), and each cheap variant runs,
reproduces the published values it is about, and reports with every figure it names."""

import math
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from phasekit.core.results import status_names
from phasekit.plotting import figure_problem, layout_problems, save_figure
from phasekit.report import write_report
from phasekit.study.runner import run_study
from phasekit.study.schema import load_study

STUDIES = Path(__file__).resolve().parents[1] / "studies"
FILES = sorted(STUDIES.glob("*.toml"))


def names(ds):
    return status_names(ds["status"].values)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_study_file_reads_and_has_a_cheap_variant(path):
    full = load_study(path)
    assert full.name == path.stem and full.description and full.cost
    assert full.has_quick, "every study declares its cheap variant"
    quick = load_study(path, quick=True)
    # The cheap variant changes something; a smaller grid alone keeps the hash (the same points, fewer).
    assert quick.n_points <= full.n_points and quick.to_dict() != full.to_dict()
    assert quick.hash() != full.hash() or quick.n_points < full.n_points
    for spec in full.report.get("figures", []):
        assert figure_problem(spec) is None, spec


_RUNS: dict = {}
_LAYOUT: dict = {}  # study -> {figure file: layout problems}, seen as its report saved each figure


def run(name, tmp_path_factory):
    """The cheap variant of ``studies/<name>.toml``, run once, with its report."""
    if name not in _RUNS:
        out = tmp_path_factory.mktemp(name)
        ds = run_study(load_study(STUDIES / f"{name}.toml", quick=True), outdir=out, progress=False)
        seen = _LAYOUT.setdefault(name, {})

        def save_and_check(fig, path, *args, **kwargs):
            units = [f"[1] on the count or category axis {lab!r}" for ax in fig.axes
                     for lab in (ax.get_xlabel(), ax.get_ylabel())
                     if lab.endswith("[1]") and ("hidden units" in lab or "activation" in lab)]
            seen[Path(path).name] = layout_problems(fig) + units
            return save_figure(fig, path, *args, **kwargs)

        # (saved in this process: the check records what it sees here)
        with mock.patch("phasekit.report.save_figure", save_and_check), mock.patch("phasekit.report._SAVE_PROCESSES", 1):
            report = write_report(out / f"{name}.nc")
        _RUNS[name] = (ds, report)
    return _RUNS[name]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_cheap_variant_runs_and_reports_every_figure(path, tmp_path_factory):
    ds, report = run(path.stem, tmp_path_factory)
    assert ds.attrs["n_failed"] == 0 and ds.attrs["n_missing"] == 0, ds["message"].values
    text = report.read_text()
    figures = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert figures, "a report shows figures"
    for f in figures:
        assert (report.parent / f).stat().st_size > 5000, f
    for name in list(ds.data_vars) + list(ds.coords):
        assert "long_name" in ds[name].attrs and "units" in ds[name].attrs, name
    assert {"phasekit_version", "study", "study_hash", "created"} <= set(ds.attrs)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_figure_of_the_cheap_variant_has_nothing_clipped_and_no_legend_over_data(path, tmp_path_factory):
    """Every figure its report draws (the quick-start's among them), from matplotlib's drawn extents."""
    _, report = run(path.stem, tmp_path_factory)
    seen = _LAYOUT[path.stem]
    shown = [line.split("](")[1].rstrip(")") for line in report.read_text().splitlines() if line.startswith("![")]
    assert sorted(seen) == sorted(Path(f).name for f in shown)  # every figure of the report was checked
    assert {f: p for f, p in seen.items() if p} == {}


def test_relu_perceptron(tmp_path_factory):
    from phasekit.plotting import trajectories

    ds, _ = run("relu_perceptron", tmp_path_factory)
    assert list(ds["eta"].values) == [0.1, 0.5, 1.0, 1.9, 2.2, 3.0]
    status = dict(zip(ds["eta"].values, names(ds)))
    runs = {float(t.attrs["eta"]): t for _, t in trajectories(ds)}
    # Below eta_c = 2 the student reaches the perfect solution (R, Q) = (1, 1) ...
    last = runs[1.0].isel(alpha=-1)
    assert last["R"].item() == pytest.approx(1.0, abs=1e-4) and last["Q"].item() == pytest.approx(1.0, abs=1e-4)
    # ... above it it cannot: at 2.2 it is held at a worse state, at 3.0 the norm blows up.
    assert status[2.2] == "ok" and float(ds["eg_end"].sel(eta=2.2)) > 0.1
    assert status[3.0] == "diverged" and float(ds["alpha_end"].sel(eta=3.0)) < 60.0
    assert runs[3.0]["alpha"].values[-1] == float(ds["alpha_end"].sel(eta=3.0))  # samples end where it stopped
    np.testing.assert_allclose(ds["eta_c"].values, 2.0, rtol=1e-9)
    # Independent check of the eta^2 term: at R = 0 the fields are independent and
    # dQ/dalpha = 2 eta (sqrt(q)/(2 pi) - q/2) + eta^2 (1/4 - sqrt(q)/pi + q/2) for ReLU.
    eta, q = 0.5, 0.25
    dQ = 2 * eta * (np.sqrt(q) / (2 * np.pi) - q / 2) + eta**2 * (0.25 - np.sqrt(q) / np.pi + q / 2)
    a, qs = runs[eta]["alpha"].values[:5], runs[eta]["Q"].values[:5, 0, 0]
    assert np.polyfit(a, qs, 2)[1] == pytest.approx(dQ, rel=1e-3)


def test_relu_committee_plateau(tmp_path_factory):
    ds, _ = run("relu_committee", tmp_path_factory)
    # eps_g sits near the symmetric plateau's 0.073613 for eta*alpha roughly 5 to 20
    ea = 0.1 * ds["alpha"].values
    eg = ds["eg"].values[(ea > 8) & (ea < 15)]
    np.testing.assert_allclose(eg, 0.073613, rtol=0.03)
    assert float(ds["plateau_eg"]) == pytest.approx(0.073613, rel=1e-4)
    assert int(ds["K"]) == 2 and int(ds["second_order"]) == 0


def test_mismatched_committees(tmp_path_factory):
    over, _ = run("overrealisable", tmp_path_factory)
    under, _ = run("unrealisable", tmp_path_factory)
    assert over.sizes["i"] == 3 and over.sizes["n"] == 2 and under.sizes["i"] == 2 and under.sizes["n"] == 3
    np.testing.assert_allclose(over["R"].values[:, 0], [[[1e-3, 0], [0, 0], [0, 0]]] * 2)
    np.testing.assert_allclose(np.diagonal(under["Q"].values[:, 0], axis1=-2, axis2=-1), [[0.2, 0.2]] * 2)
    # An over-realisable ReLU student can still reach zero error; an unrealisable one cannot.
    assert float(over["eg_end"].sel(activation="relu")) < 1e-3
    assert np.all(under["eg_end"].values > 1e-2)


def test_stability_boundary_and_plateau_escape(tmp_path_factory):
    sb, _ = run("stability_boundary", tmp_path_factory)
    assert abs(float(sb.eta_c.sel(activation="relu", K=1)) - 2.0) < 1e-9
    assert abs(float(sb.eta_opt.sel(activation="relu", K=1)) - 1.0) < 1e-8
    pe, _ = run("plateau_escape", tmp_path_factory)
    assert abs(float(pe.escape_eigenvalue.sel(activation="relu", K=2)) - 0.2392) < 5e-5
    assert np.isnan(float(pe.escape_eigenvalue.sel(activation="relu", K=1)))
    np.testing.assert_allclose(pe.escape_eigenvalue.sel(activation="erf", K=[2, 3]).values,
                               pe.escape_closed_form.sel(activation="erf", K=[2, 3]).values, rtol=1e-8)


def test_k_scaling_fits_the_large_k_law_of_eta_c(tmp_path_factory):
    """The cheap variant (erf, K = 20, 1000, 10000, in the site-symmetric subspace): K eta_c = a + b / K on
    K >= 500 with a = pi sqrt 3 = 5.4413981 (two points: 5.4413980), eps_g / K and K eta_opt settled; at
    eta = eta_c / 5 the K = 20 run escapes the plateau and converges, while for K = 1e3, 1e4 the plateau is
    stable inside the subspace (escape eigenvalue < 0) and the runs never reach eps_g / K = 1e-4."""
    ks, _ = run("k_scaling", tmp_path_factory)
    assert str(ks["subspace"].values) == "site_symmetric"
    assert names(ks).ravel().tolist() == ["converged", "not_reached", "not_reached"]
    a = float(ks.K_eta_c_limit.sel(activation="erf"))
    assert int(ks.K_eta_c_n_fit.sel(activation="erf")) == 2
    assert a == pytest.approx(math.pi * math.sqrt(3.0), abs=1e-6)
    assert float(ks.K_eta_c_expected_limit.sel(activation="erf")) == pytest.approx(math.pi * math.sqrt(3.0), rel=1e-15)
    K = ks["K"].values
    np.testing.assert_allclose(ks.K_eta_c_scaled.sel(activation="erf").values,
                               K * ks.eta_c.sel(activation="erf").values, rtol=1e-14)
    # eta = eta_c / 5 at every point, and the points approach the law from below
    np.testing.assert_allclose(ks.eta.values, 0.2 * ks.eta_c.values, rtol=1e-14)
    assert np.all(np.diff(ks.K_eta_c_scaled.values) > 0) and np.all(ks.K_eta_c_scaled.values < a)
    # every eta_c exact to its (complex-step) error estimate, itself below 1e-8 relative
    assert np.all(ks.eta_c_error.values <= 1e-8 * ks.eta_c.values)
    assert float(ks.K_eta_opt_limit.sel(activation="erf")) == pytest.approx(4.93072, abs=1e-5)
    assert float(ks.plateau_eg_per_K_limit.sel(activation="erf")) == pytest.approx(0.010904, rel=1e-4)
    esc = ks.escape_eigenvalue.sel(activation="erf").values
    assert esc[0] > 0 and np.all(esc[1:] < 0)
    t = ks.convergence_time.sel(activation="erf").values
    assert np.isfinite(t[0]) and np.all(np.isinf(t[1:]))


def test_plateau_scaling_and_convergence_time(tmp_path_factory):
    ps, _ = run("plateau_scaling", tmp_path_factory)
    assert float(ps.slope_ratio.squeeze()) == pytest.approx(1.0, abs=0.02)
    assert np.isnan(float(ps.fitted_slope_stderr.squeeze()))  # three points: no standard error
    from phasekit.plotting import draw

    (_, _, fig), = draw(ps, {"kind": "plateau_scaling"})
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert any("fit: slope" in t for t in legend) and not any("nan" in t for t in legend), legend  # said nothing
    ct, _ = run("convergence_time", tmp_path_factory)
    per = ct.sel(case="perceptron")
    assert per.eta_c.dims == () and float(per.eta_c) == pytest.approx(2.0, rel=1e-6)  # one per case, not per eta
    np.testing.assert_allclose(per.eta.values, [0.5, 1.0, 1.5], rtol=1e-8)  # fractions of eta_c = 2
    assert set(names(ct).ravel()) == {"converged"}
    assert float(per.eta_opt) in per.eta.values  # (the cheap variant does not refine)


def test_simulation_overlay_and_finite_size(tmp_path_factory):
    ov, _ = run("simulation_overlay", tmp_path_factory)
    assert ov.sizes["run"] == 2 and ov["sim_R"].dims == ("case", "run", "sim_sample", "i", "n")
    fs, _ = run("finite_size", tmp_path_factory)
    # Fifty runs, N = 100 ... 1000: the spread shrinks like N^(-1/2) within its scatter.
    exps = fs["exponent"].values
    assert np.all(np.abs(exps + 0.5) < 0.15), exps
    assert list(fs["N"].values) == [100, 300, 1000] and list(fs["seed"].values) == [0, 1, 2]


def test_propagation_studies(tmp_path_factory):
    eoc, _ = run("edge_of_chaos", tmp_path_factory)
    assert eoc["sigma_w2"].dims == ("activation", "sigma_w2_index")
    assert float(eoc["sigma_w2"].sel(activation="erf").max()) == 5.0
    relu = eoc.sel(activation="relu")
    assert float(relu["eoc_sigma_w2"].values[0]) == 2.0  # relu's edge of chaos: the point (0, 2)
    cd, _ = run("correlation_depth", tmp_path_factory)
    assert float(cd["asymptote"].isel(case=0)) == pytest.approx(4.5 * math.pi ** 2)
    assert float(cd["chi_1"].isel(case=1)) == pytest.approx(1.0, abs=1e-9)  # tanh on its edge of chaos


def test_deep_linear(tmp_path_factory):
    dl, _ = run("deep_linear", tmp_path_factory)
    assert float(dl["max_ode_deviation"].max()) <= 1e-10
    assert float(np.abs(dl["u_sim"] - dl["u_sim_theory"]).max()) < 0.2


def test_lazy_studies(tmp_path_factory):
    tau, report = run("lazy_vs_active", tmp_path_factory)
    assert float(tau["loss"].isel(tau=0).max()) < 0.1 * float(tau["loss"].isel(tau=-1).min())
    meanings = tau["training_regime"].attrs["flag_meanings"].split()
    regimes = [meanings[int(c)] for c in tau["training_regime"].values.ravel()]
    assert regimes[-1] == "lazy" and regimes[0] != "lazy"
    assert "feature learning" in report.read_text()
    width, _ = run("lazy_width", tmp_path_factory)
    sig = width.sel(activation="sigmoid")
    assert np.all(sig["loss"].values >= sig["loss_floor"].values - 1e-9)
    assert list(width["regime"].values) == ["feature learning", "lazy"] and list(width["tau"].values) == [0.1, 1.0]
    scale, _ = run("lazy_scale", tmp_path_factory)
    assert set(scale["variant"].values) == {"relu, symmetrised", "erf, centred"}
    assert scale["distance_expected_exponent"].sel(variant="relu, symmetrised") == -0.5


def test_goldt2019_noise_floor(tmp_path_factory):
    ds, report = run("goldt2019_noise_floor", tmp_path_factory)
    eg = ds["floor_eg"].transpose("K", "train_second_layer").values / (0.01 * 0.1 ** 2)  # per unit eta sigma^2
    # small-eta closed form: (M / sqrt 3 + K - M) / (2 pi) first layer only, sum_n 1 / (2 sqrt 3 pi c_n) both layers
    closed = np.array([[0.18378, 0.18378], [0.34293, 0.13783]])
    np.testing.assert_allclose(eg, closed, rtol=0.015)
    assert np.all(eg > closed)
    # the published statement: the error grows with K for the first layer only and falls when both are trained
    assert eg[1, 0] > 1.8 * eg[0, 0] and eg[1, 1] < 0.8 * eg[0, 1]
    # the authors' final error, first order in sigma^2 (first layer only, M = 2, eta = 0.01, sigma = 0.1): its
    # O(sigma^2) corrections are 1e-4 of it here
    published = [1.845706e-05, 3.454166e-05]
    np.testing.assert_allclose(ds["floor_eg"].sel(train_second_layer=0).values, published, rtol=1e-4)
    # the switch is stored as 0/1 with CF flags, which legends read as True / False
    from phasekit.plotting.common import coord_value

    assert ds["train_second_layer"].attrs["flag_meanings"] == "False True"
    assert [coord_value(ds["train_second_layer"], v) for v in ds["train_second_layer"].values] == ["False", "True"]
    assert coord_value(ds["K"], 3) == "3"
    assert "0.34293" in report.read_text() and "3.454166e-05" in report.read_text()


def test_riegler_biehl1995_plateau(tmp_path_factory):
    ds, _ = run("riegler_biehl1995_plateau", tmp_path_factory)
    # the cheap variant is first order: Saad and Solla's plateau, with v = 1 when the second layer is trained
    K = 2
    plateau_eg = K / math.pi * (math.pi / 6 - K * math.asin(1 / (2 * K)))
    np.testing.assert_allclose(ds["plateau_eg"].values, plateau_eg, rtol=1e-10)
    np.testing.assert_allclose(ds["plateau_R"].values, 1 / math.sqrt(6), rtol=1e-10)
    np.testing.assert_allclose(ds["plateau_C"].values, 1 / 3, rtol=1e-9)
    np.testing.assert_allclose(ds["plateau_v"].values, 1.0, atol=1e-12)
    np.testing.assert_allclose(ds["escape_eigenvalue"].values, ds["escape_closed_form"].values, rtol=1e-8)
    # both runs pass the plateau and leave it: its length is finite, shorter with the trained second layer
    length = ds["plateau_length"].values
    assert np.all(np.isfinite(length)) and length[1] < length[0]

def test_drift_steady_state_reproduces_straat_fig5a(tmp_path_factory):
    """Straat et al. 2018 fig. 5(a) (erf K = M = 2, eta = 0.5): eps_g at alpha = 3000 at delta = 0.6/39, the
    curve's point in the first author's notebook 0.027547 (6 decimals); the steady state is the same point;
    the best learning rate under that drift is interior and beats eta = 0.5."""
    ds, report = run("drift_steady_state", tmp_path_factory)
    assert list(names(ds)) == ["converged"]
    assert float(ds["final_eg"].values[0]) == pytest.approx(0.027547, abs=5e-7)
    assert float(ds["steady_eg"].values[0]) == pytest.approx(float(ds["final_eg"].values[0]), rel=1e-8)
    eta, eg = float(ds["steady_eta"].values[0]), float(ds["steady_eta_eg"].values[0])
    assert 0.7 < eta < 1.5 and eg < float(ds["steady_eg"].values[0])
    assert eta == pytest.approx(1.0482, abs=1e-3)
    assert "0.027547" in report.read_text()


def test_drift_weight_decay_reproduces_straat_fig5b(tmp_path_factory):
    """Straat et al. 2018 fig. 5(b) (drift 0.015): their gamma = 0.22/39 is lambda = gamma / eta = 0.44/39; the
    notebook's curve has its minimum 0.025825 there (6 decimals)."""
    ds, _ = run("drift_weight_decay", tmp_path_factory)
    assert float(ds["weight_decay"].values[0]) * 0.5 == pytest.approx(0.22 / 39, rel=1e-12)
    assert float(ds["final_eg"].values[0]) == pytest.approx(0.025825, abs=5e-7)
    assert float(ds["steady_eg"].values[0]) == pytest.approx(float(ds["final_eg"].values[0]), rel=1e-8)


def test_annealing_falls_below_the_constant_eta_floor_as_c_over_alpha(tmp_path_factory):
    """Constant eta = 0.5 with sigma = 0.5: the floor is the steady state's error; 1/alpha annealing with
    c = 50 is below it and on its way to C / (alpha + alpha0); c = 8 is below c_critical (no 1/alpha law)."""
    import phasekit as pk

    ds, _ = run("annealing", tmp_path_factory)
    eg = ds["eg_end"].sel(case=["constant", "annealed c = 50", "annealed c = 8"]).values
    floor = pk.steady_state(pk.Committee(2, 2, "erf", eta=0.5, noise=0.5, second_order=True)).eg
    assert eg[0] == pytest.approx(floor, rel=1e-6) and floor == pytest.approx(0.027456, abs=1e-6)
    C = float(ds["annealing_C"].sel(case="annealed c = 50"))
    assert C == pytest.approx(2.3681, abs=1e-4)
    alpha = float(ds["alpha_end"].sel(case="annealed c = 50"))
    assert eg[1] < eg[2] < eg[0] and eg[1] * (alpha + 100.0) / C == pytest.approx(1.0, abs=0.1)
    assert np.isnan(ds["annealing_C"].sel(case="annealed c = 8")) and \
        float(ds["annealing_exponent"].sel(case="annealed c = 8")) == pytest.approx(0.70696, abs=1e-4)


def test_sgd_phase_diagram_regimes_follow_the_published_lines_away_from_them(tmp_path_factory):
    """The flow's regime at (delta, kappa) points away from the lines is the published one, the line on which
    both terms survive is delta = -kappa, and the ODE limit ends at delta = -kappa - 1/2, as in the published
    figure (the authors' code's region test, -(1 + kappa)/2, agrees at kappa = 0 only)."""
    from phasekit.committee.sgd_phases import SGD_REGIMES, analytic_sgd_regime

    ds, _ = run("sgd_phase_diagram", tmp_path_factory)
    assert set(names(ds).ravel()) == {"ok"}
    regime = ds["sgd_regime"]
    # green, blue, orange, red (both kinds of line agree there), one of each at kappa = 0 and kappa = 1
    for delta, kappa in [(0.25, 0.0), (0.0, 0.0), (-0.25, 0.0), (-1.0, 0.0), (0.0, 1.0), (-1.0, 1.0),
                         (-1.75, 1.0), (-0.5, 0.25), (-1.25, 0.5)]:
        got = SGD_REGIMES[int(regime.sel(delta=delta, kappa=kappa, method="nearest"))]
        assert abs(float(ds["delta"].sel(delta=delta, method="nearest")) - delta) < 1e-9
        assert got == analytic_sgd_regime(delta, kappa), (delta, kappa, got)
    kappa = ds["kappa"].values
    np.testing.assert_allclose(ds["sgd_line_both_delta"].values, -kappa, atol=3e-3)
    np.testing.assert_allclose(ds["sgd_line_ode_delta"].values, -kappa - 0.5, atol=3e-3)
    np.testing.assert_allclose(ds["sgd_line_ode_delta"].values, ds["sgd_line_ode_delta_analytic"].values, atol=3e-3)
    # where the figure's line and the code's part (kappa = 0.75, delta = -1): noise dominated by the flow and by
    # the figure, "no ODEs" by the code's -(1 + kappa)/2
    assert SGD_REGIMES[int(regime.sel(delta=-1.0, kappa=0.75))] == "noise dominated"
    assert analytic_sgd_regime(-1.0, 0.75) == "noise dominated"
    assert float(ds["sgd_line_ode_delta_code"].sel(kappa=0.75)) == pytest.approx(-0.875)
    np.testing.assert_array_equal(ds["sgd_regime_agreement"].values, 1.0)   # every point in the figure's regime


def test_grouped_students_scale_with_the_group_size(tmp_path_factory):
    """Over-realisable students in groups (the cheap variant: erf, M = 2, g = 2, 4, in the grouped subspace):
    at the perfect solution the group's students are identical, so eta_c and eta_opt grow like g and the
    optimal decay rate is the site-symmetric K = M = 2 one (the model with weights g v at eta / g)."""
    import phasekit as pk

    gs, _ = run("grouped_students", tmp_path_factory)
    assert str(gs["subspace"].values) == "grouped"
    eta_c, eta_opt = gs.eta_c.sel(activation="erf").values, gs.eta_opt.sel(activation="erf").values
    assert eta_c[1] == pytest.approx(2 * eta_c[0], rel=1e-9) and eta_opt[1] == pytest.approx(2 * eta_opt[0], rel=1e-7)
    site = pk.Committee(2, 2, "erf", second_order=True, normalisation="1/K")
    assert eta_c[0] == pytest.approx(2 * pk.critical_eta(site).value, rel=1e-9)
    np.testing.assert_allclose(gs.rate_opt.values, pk.optimal_eta(site).rate, rtol=1e-7)
