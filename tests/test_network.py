"""A deep linear network trained by gradient descent (phasekit.deep_linear.network) against the theory."""

import numpy as np
import pytest

from phasekit import deep_linear as ld


@pytest.mark.parametrize("k, lam, u0", [(2, 0.0, 1e-3), (3, 0.1, 1e-2)])
def test_trained_network_follows_theory(k, lam, u0):
    """Gradient descent is Euler on the gradient flow: the deviation from the closed form
    is O(learning rate) (halves when the step halves) and vanishes under Richardson extrapolation."""
    sv = [3.0, 2.0, 1.0, 0.5]
    kw = dict(depth=k, hidden=8, n_in=8, n_out=6, n_samples=64, u0=u0, weight_decay=lam,
              t_max=8.0, n_records=81, seed=3)
    coarse = ld.simulate_deep_linear(sv, learning_rate=0.01, **kw)
    fine = ld.simulate_deep_linear(sv, learning_rate=0.005, **kw)
    assert np.array_equal(coarse["time"].values, fine["time"].values)
    err_c = float(np.abs(coarse["u_sim"] - coarse["u_theory"]).max())
    err_f = float(np.abs(fine["u_sim"] - fine["u_theory"]).max())
    extrap = 2 * fine["u_sim"] - coarse["u_sim"]
    err_x = float(np.abs(extrap - fine["u_theory"]).max())
    print(f"\nk={k} lambda={lam}: max |u_sim - u_theory| = {err_c:.4f} (step 0.01), {err_f:.4f} "
          f"(step 0.005), Richardson {err_x:.2e}")
    assert err_f <= 0.02 * max(sv)
    assert err_c / err_f == pytest.approx(2.0, rel=0.1)
    assert err_x <= 0.1 * err_f
    # the modes stay decoupled: U^T W V is diagonal throughout
    assert float(fine["offdiag"].max()) <= 1e-12
    assert fine["loss"].values[-1] < fine["loss"].values[0]


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="singular_values: at most min"):
        ld.simulate_deep_linear([1.0] * 7, n_in=8, n_out=6)
