import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwarden.detect.aggregate import aggregate, sigmoid


def test_aggregations_by_hand():
    s = np.array([1.0, 2.0, 3.0, 10.0])
    assert aggregate(s, "mean") == pytest.approx(4.0)
    assert aggregate(s, "median") == pytest.approx(2.5)
    assert aggregate(s, "max") == 10.0
    assert aggregate(s, "top:0.25") == 10.0
    assert aggregate(s, "top:0.5") == pytest.approx(6.5)
    # weighted mean: a 1 s tail window counts a quarter of a 4 s window
    assert aggregate(np.array([0.0, 4.0]), "mean", weights=np.array([4.0, 1.0])) == pytest.approx(0.8)


@pytest.mark.parametrize("bad", ["avg", "top:0", "top:x", "top:1.5"])
def test_bad_aggregation(bad):
    with pytest.raises(ValueError):
        aggregate(np.array([1.0]), bad)


def test_empty_scores():
    with pytest.raises(ValueError):
        aggregate(np.array([]), "mean")


@given(st.floats(-1e6, 1e6))
def test_sigmoid_stable_and_bounded(x):
    p = sigmoid(x)
    assert 0.0 <= p <= 1.0
    assert sigmoid(-x) == pytest.approx(1.0 - p, abs=1e-12)
