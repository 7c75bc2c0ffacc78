"""phasekit.committee.sgd_phases: the regime of SGD in (delta, kappa) from the flow's term sizes."""

import numpy as np
import pytest

from phasekit import Committee
from phasekit.committee.sgd_phases import (SGD_REGIMES, analytic_sgd_regime, classify_sgd_regime, ode_limit_delta,
                                           sgd_scaling_model, sgd_term_sizes)


def test_model_follows_the_exponents():
    m = sgd_scaling_model(0.5, 0.5, 1e4, eta0=2.0, p0=3.0, noise=0.1)
    assert m.subspace == "site_symmetric" and m.K == m.M == 300
    assert m.eta == pytest.approx(2.0 / 100.0) and m.normalisation == "1/K" and m.noise == 0.1
    full = sgd_scaling_model(0.0, 0.5, 16, teacher="fixed", M=3)
    assert isinstance(full, Committee) and (full.K, full.M) == (4, 3)


def test_term_sizes_against_the_full_flow_and_the_eta_powers():
    """The reduced model's sizes equal those of the full flow at the embedded state; first ~ eta, second ~ eta^2."""
    z = (0.5, 0.0, 1.0, 0.2)
    red = Committee(5, 5, "erf", eta=0.3, noise=0.2, normalisation="1/K").restrict("site_symmetric")
    full = red.parent
    first, second = sgd_term_sizes(red, z)
    v = full.state_vector(red.embed(np.array(z)))
    p = full.flow_parts(v)
    KM = full.K * full.M
    assert first == pytest.approx(np.abs(0.3 * p.first).max(), rel=1e-12)
    assert second == pytest.approx(np.abs(0.09 * (p.i4 + 0.04 * p.j2)[KM:]).max(), rel=1e-12)
    # the second-order part is the flow minus its first-order model (an independent route)
    diff = full.rhs_vector(v) - full.replace(second_order=False).rhs_vector(v)
    assert second == pytest.approx(np.abs(diff).max(), rel=1e-10)
    f2, s2 = sgd_term_sizes(red.replace(eta=0.6), z)
    assert f2 == pytest.approx(2 * first, rel=1e-12) and s2 == pytest.approx(4 * second, rel=1e-12)


@pytest.mark.parametrize("delta, kappa, expected", [
    (0.5, 0.0, "gradient flow"), (0.0, 0.0, "both"), (-0.25, 0.0, "noise dominated"), (-0.75, 0.0, "no ODE limit"),
    (0.0, 0.5, "gradient flow"), (-0.5, 0.5, "both"), (-0.75, 0.5, "noise dominated"), (-1.25, 0.5, "no ODE limit"),
    (-0.75, 1.0, "gradient flow"), (-1.0, 1.0, "both"), (-1.25, 1.0, "noise dominated"),
])
def test_classifier_on_known_cases(delta, kappa, expected):
    res = classify_sgd_regime(delta, kappa, noise=0.1, tol=0.05)
    assert res.regime == expected and SGD_REGIMES[res.code] == expected
    # the exponents of the flow are the closed forms -(kappa + delta) and -1 - s + max(0, -s)
    s = kappa + delta
    assert res.ratio_exponent == pytest.approx(-s, abs=3e-3)
    assert res.step_exponent == pytest.approx(-1 - s + max(0.0, -s), abs=3e-3)


def test_classifier_without_noise_and_with_a_fixed_teacher():
    """Without output noise the eta^2 term alone decides; Veiga et al.'s fixed teacher (full flow, K = 4 ... 32)
    gives the same regimes away from the lines, its exponents off by the finite-K corrections (< 0.1)."""
    assert classify_sgd_regime(-0.25, 0.0, noise=0.0).regime == "noise dominated"
    for delta, expected in [(0.25, "gradient flow"), (-0.7, "noise dominated")]:
        res = classify_sgd_regime(delta, 0.5, teacher="fixed", M=2, p0=2.0, dims=(16, 64, 256), noise=0.1)
        assert list(res.K) == [8, 16, 32]
        assert res.regime == expected
        assert abs(res.ratio_exponent + 0.5 + delta) < 0.1


def test_analytic_lines():
    assert analytic_sgd_regime(0.1, 0.0) == "gradient flow"
    assert analytic_sgd_regime(-0.5, 0.5) == "both"
    # the figure's second line is delta = -kappa - 1/2 = -1 here (the authors' code's test would put it at -0.75)
    assert analytic_sgd_regime(-0.8, 0.5) == "noise dominated"
    assert analytic_sgd_regime(-0.98, 0.5) == "noise dominated"
    assert analytic_sgd_regime(-1.02, 0.5) == "no ODE limit"
    assert analytic_sgd_regime(-0.98, 0.5, tol=0.1) == "no ODE limit"   # 1 + 2 (kappa + delta) = 0.04 <= tol
    assert analytic_sgd_regime(-0.55, 0.5, tol=0.1) == "both"
    assert ode_limit_delta(0.0) == -0.5 and ode_limit_delta(1.0) == -1.5


@pytest.mark.parametrize("kw, match", [
    (dict(kappa=-0.1), "kappa"), (dict(dims=(100,)), "dims"), (dict(dims=(100, 100)), "dims"),
    (dict(eta0=0.0), "eta0"), (dict(p0=-1.0), "p0"), (dict(teacher="other"), "teacher"), (dict(tol=0.0), "tol"),
    (dict(teacher="fixed", M=0), "M"), (dict(delta=np.nan), "delta"),
])
def test_bad_input(kw, match):
    args = dict(delta=0.0, kappa=0.0) | kw
    with pytest.raises(ValueError, match=match):
        classify_sgd_regime(args.pop("delta"), args.pop("kappa"), **args)


def test_state_must_be_positive_definite():
    with pytest.raises(ValueError, match="positive-definite"):
        classify_sgd_regime(0.0, 0.5, teacher="fixed", M=2, p0=1.0, dims=(16, 64), state=(0.5, 0.0, 1.0, 0.2))
