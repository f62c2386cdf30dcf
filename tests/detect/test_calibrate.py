"""Platt calibration: recovers a known logistic model, stays finite on separable data, EER threshold."""

from __future__ import annotations

import numpy as np
import pytest

from voxwarden.detect.calibrate import apply, eer_threshold, fit_platt


def test_recovers_known_logistic() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(0.0, 2.0, 20000)
    true_a, true_b = 1.5, -0.5
    y = (rng.random(s.size) < 1 / (1 + np.exp(-(true_a * s + true_b)))).astype(int)
    a, b = fit_platt(s, y, balanced=False, l2=0.0)
    assert a == pytest.approx(true_a, rel=0.05)
    assert b == pytest.approx(true_b, abs=0.08)


def test_gaussian_classes_give_llr_slope() -> None:
    # bona ~ N(0,1), spoof ~ N(2,1): true log-likelihood ratio is 2*s - 2 (balanced priors)
    rng = np.random.default_rng(1)
    bona, spoof = rng.normal(0, 1, 5000), rng.normal(2, 1, 3000)
    a, b = fit_platt(np.r_[bona, spoof], np.r_[np.zeros(5000), np.ones(3000)])
    assert a == pytest.approx(2.0, rel=0.08)
    assert b == pytest.approx(-2.0, rel=0.08)
    assert apply(a, b, 1.0)[0] == pytest.approx(0.5, abs=0.03)


def test_separable_data_stays_finite() -> None:
    a, b = fit_platt([0.0, 0.1, 0.2, 5.0, 5.1], [0, 0, 0, 1, 1])
    assert np.isfinite(a) and np.isfinite(b) and a > 0
    p = apply(a, b, [0.0, 5.1])
    assert p[0] < 0.1 and p[1] > 0.9


def test_apply_is_stable_for_extreme_scores() -> None:
    p = apply(1.0, 0.0, [-1e6, 0.0, 1e6])
    np.testing.assert_allclose(p, [0.0, 0.5, 1.0])


def test_eer_threshold_in_probability_space() -> None:
    rng = np.random.default_rng(2)
    bona, spoof = rng.normal(0, 1, 400), rng.normal(3, 1, 400)
    a, b = fit_platt(np.r_[bona, spoof], np.r_[np.zeros(400), np.ones(400)])
    t, e = eer_threshold(a, b, bona, spoof)
    assert 0.0 < t < 1.0
    assert e < 0.1
    # the threshold's raw-score equivalent lies between the class means
    raw_t = (np.log(t / (1 - t)) - b) / a
    assert 0.5 < raw_t < 2.5


@pytest.mark.parametrize(
    ("scores", "labels"),
    [([0.0, 1.0], [0, 0]), ([0.0, np.nan], [0, 1]), ([0.0], [0, 1]), ([0.0, 1.0], [0, 3])],
)
def test_bad_inputs(scores: list[float], labels: list[int]) -> None:
    with pytest.raises(ValueError):
        fit_platt(scores, labels)


def test_eer_threshold_is_midpoint_of_the_gap() -> None:
    # identity-like calibration a=1, b=0 on logits: probabilities are sigmoid(score)
    bona, spoof = [-3.0, -2.0, -1.0], [1.0, 2.0, 3.0]
    t, e = eer_threshold(1.0, 0.0, bona, spoof)
    assert e == 0.0
    # perfectly separated: halfway between sigmoid(-1) = .269 and sigmoid(1) = .731 -> 0.5
    assert t == pytest.approx(0.5)
