"""Metrics against hand-computed cases and an independent re-implementation of the ASVspoof recipe."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwarden.detect.metrics import det_curve, eer, min_dcf, rates_at

BONA = [0.1, 0.2, 0.3, 0.6]
SPOOF = [0.4, 0.5, 0.7, 0.8]


def test_eer_hand_computed() -> None:
    # threshold t: p_miss = #(spoof < t)/4, p_fa = #(bona >= t)/4
    # t=0.1: 0, 1 | 0.2: 0, .75 | 0.3: 0, .5 | 0.4: 0, .25 | 0.5: .25, .25  <- crossing
    # so EER = 0.25 at t = 0.5
    e, t = eer(BONA, SPOOF)
    assert e == pytest.approx(0.25)
    assert t == pytest.approx(0.5)


def test_eer_perfect_and_inverted() -> None:
    e, t = eer([0.0, 0.1], [0.9, 1.0])
    assert e == 0.0 and 0.1 < t <= 0.9
    e, _ = eer([0.9, 1.0], [0.0, 0.1])  # a detector that is always wrong
    assert e == 1.0


def test_eer_ties_do_not_depend_on_order() -> None:
    # all scores equal: flagging everything gives (0, 1), nothing gives (1, 0): EER 0.5 either way
    e, _ = eer([0.5, 0.5, 0.5], [0.5, 0.5])
    assert e == pytest.approx(0.5)


def _asvspoof_eer(target: np.ndarray, nontarget: np.ndarray) -> float:
    """Independent reference: the ASVspoof package's recipe (target = class with *higher* scores)."""
    n = target.size + nontarget.size
    scores = np.concatenate([target, nontarget])
    labels = np.concatenate([np.ones(target.size), np.zeros(nontarget.size)])
    idx = np.argsort(scores, kind="mergesort")
    labels = labels[idx]
    tar_sums = np.cumsum(labels)
    non_sums = nontarget.size - (np.arange(1, n + 1) - tar_sums)
    frr = np.concatenate([[0.0], tar_sums / target.size])
    far = np.concatenate([[1.0], non_sums / nontarget.size])
    i = np.argmin(np.abs(frr - far))
    return float((frr[i] + far[i]) / 2)


def test_eer_matches_asvspoof_recipe_on_random_scores() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        bona = rng.normal(0.0, 1.0, 97)
        spoof = rng.normal(1.2, 1.5, 53)
        assert eer(bona, spoof)[0] == pytest.approx(_asvspoof_eer(spoof, bona))


def test_min_dcf_hand_computed() -> None:
    # P_spoof=.05, C_miss=1, C_fa=10: DCF = .95*p_fa + .5*p_miss, normaliser min(.95, .5) = .5,
    # so normalised DCF = 1.9*p_fa + p_miss.
    # t=.1: 1.9 | .2: 1.425 | .3: .95 | .4: p_fa .25, p_miss 0 -> .475 | .5: .475+.25 = .725
    # .6: p_fa .25, p_miss .5 -> .975 | .7: 0 + .5 = .5 | .8: .75 | inf: 1.0   => min .475 at .4
    d, t = min_dcf(BONA, SPOOF)
    assert d == pytest.approx(0.475)
    assert t == pytest.approx(0.4)


def test_min_dcf_never_above_one_and_zero_when_perfect() -> None:
    rng = np.random.default_rng(0)
    d, _ = min_dcf(rng.normal(size=50), rng.normal(size=50))
    assert d <= 1.0 + 1e-12
    assert min_dcf([0.0], [1.0])[0] == 0.0


def test_det_curve_endpoints_and_monotone() -> None:
    c = det_curve(BONA, SPOOF)
    assert c.p_miss[0] == 0.0 and c.p_fa[0] == 1.0
    assert c.p_miss[-1] == 1.0 and c.p_fa[-1] == 0.0
    assert np.all(np.diff(c.p_miss) >= 0) and np.all(np.diff(c.p_fa) <= 0)
    assert len(c.thresholds) == 9


def test_rates_at() -> None:
    assert rates_at(BONA, SPOOF, 0.45) == (pytest.approx(0.25), pytest.approx(0.25))
    assert rates_at(BONA, SPOOF, 0.6) == (pytest.approx(0.5), pytest.approx(0.25))


@pytest.mark.parametrize("bad", [[], [float("nan")], [np.inf]])
def test_bad_scores_raise(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        eer(bad, [1.0])
    with pytest.raises(ValueError):
        min_dcf([0.0], bad)


_scores = st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(_scores, _scores)
def test_properties(bona: list[float], spoof: list[float]) -> None:
    e, t = eer(bona, spoof)
    assert 0.0 <= e <= 1.0
    # invariant under a strictly increasing transform of all scores (x2 is exact in floating point)
    e2, _ = eer([2 * b for b in bona], [2 * s for s in spoof])
    assert e2 == pytest.approx(e)
    d, _ = min_dcf(bona, spoof)
    assert 0.0 <= d <= 1.0 + 1e-12
    c = det_curve(bona, spoof)
    assert np.all(np.diff(c.p_miss) >= 0) and np.all(np.diff(c.p_fa) <= 0)


def test_paired_bootstrap_separates_a_clearly_better_model():
    from voxwarden.detect.metrics import paired_bootstrap_eer

    rng = np.random.default_rng(1)
    bona = rng.normal(0.0, 1.0, 300)
    spoof = rng.normal(0.0, 1.0, 300)
    # model a: spoof shifted by 0.5 sd (EER ~40 %); model b: the same clips, shifted by 3 sd (EER ~7 %)
    res = paired_bootstrap_eer(bona, spoof + 0.5, bona, spoof + 3.0, resamples=300)
    assert res.eer_a > 0.3 and res.eer_b < 0.12
    assert res.diff == pytest.approx(res.eer_b - res.eer_a)
    assert res.low <= res.diff <= res.high and res.high < 0


def test_paired_bootstrap_interval_contains_zero_for_equal_models():
    from voxwarden.detect.metrics import paired_bootstrap_eer

    rng = np.random.default_rng(2)
    bona, spoof = rng.normal(0, 1, 200), rng.normal(1, 1, 200)
    noise = rng.normal(0, 0.05, 200)  # b is a slightly noisy copy of a: no real difference
    res = paired_bootstrap_eer(bona, spoof, bona + noise, spoof - noise, resamples=300)
    assert res.low < 0 < res.high


def test_paired_bootstrap_rejects_unpaired_input():
    from voxwarden.detect.metrics import paired_bootstrap_eer

    with pytest.raises(ValueError, match="same clips"):
        paired_bootstrap_eer([0.1, 0.2], [0.9], [0.1], [0.9])
    with pytest.raises(ValueError, match="resamples"):
        paired_bootstrap_eer([0.1], [0.9], [0.1], [0.9], resamples=0)
