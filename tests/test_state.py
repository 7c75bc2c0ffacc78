"""phasekit.committee.state: the state and the layout of its vector."""

import numpy as np
import pytest

import phasekit as pk
from phasekit.committee.model import vector_labels


def test_state_vector_order():
    s = pk.State(R=[[11, 12], [21, 22]], Q=[[1.1, 1.2], [1.2, 2.2]])
    assert s.to_vector().tolist() == [11, 12, 21, 22, 1.1, 1.2, 2.2]
    assert vector_labels(2, 2) == ["R11", "R12", "R21", "R22", "Q11", "Q12", "Q22"]
    back = pk.State.from_vector(s.to_vector(), 2, 2)
    assert np.array_equal(back.R, s.R) and np.array_equal(back.Q, s.Q)
    s3 = pk.State(np.arange(6.0).reshape(3, 2), np.arange(9.0).reshape(3, 3) + np.arange(9.0).reshape(3, 3).T)
    assert np.array_equal(pk.State.from_vector(s3.to_vector(), 3, 2).Q, s3.Q)


def test_state_rejects_non_numeric_entries():
    with pytest.raises(ValueError, match=r"R: must hold real numbers, got an array of dtype <U3"):
        pk.State([["0.5"]], [[1.0]])
    with pytest.raises(ValueError, match=r"Q: must hold real numbers, got an array of dtype complex128"):
        pk.State([[0.5]], [[1.0 + 1j]])
    with pytest.raises(ValueError, match=r"R: must hold real numbers, got an array of dtype bool"):
        pk.State([[True]], [[1.0]])
    with pytest.raises(ValueError, match=r"Q: entries must be finite"):
        pk.State([[0.5]], [[np.nan]])
