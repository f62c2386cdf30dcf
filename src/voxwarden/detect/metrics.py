"""Countermeasure metrics: EER, normalised minDCF, DET curve points, error rates at a threshold.

Convention everywhere in voxwarden: **higher score = more likely synthetic (spoof)**, and a clip is
flagged "synthetic" when ``score >= threshold``. Hence

* *miss* (``p_miss``): a spoof clip with ``score < threshold`` (a deepfake let through);
* *false alarm* (``p_fa``): a bona fide clip with ``score >= threshold`` (a real voice flagged).

The EER follows the ASVspoof evaluation package (``compute_det_curve``/``compute_eer`` of the 2019/2021
packages): sort all scores, accumulate the two error rates over every threshold, and take the point where
they cross (the threshold minimising ``|p_miss - p_fa|``; EER = their mean there). No ROC convex hull.
One difference: tied scores are grouped, so the result does not depend on the order of equal scores.

The minDCF is the ASVspoof 5 countermeasure cost (the normalised DCF of the ASVspoof 5 evaluation plan),
which treats *bona fide* as the CM's target class::

    DCF(t) = C_miss * (1 - P_spoof) * P_miss_cm(t) + C_fa * P_spoof * P_fa_cm(t)
    minDCF = min_t DCF(t) / min(C_miss * (1 - P_spoof), C_fa * P_spoof)

with ``P_miss_cm`` = bona fide rejected (our false alarm) and ``P_fa_cm`` = spoof accepted (our miss).
Defaults: ``P_spoof = 0.05``, ``C_miss = 1`` (rejecting a real voice), ``C_fa = 10`` (accepting a fake).
The normaliser makes 1.0 the cost of the better of the two trivial systems (accept all / reject all).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Scores = np.ndarray | list[float]

@dataclass(frozen=True)
class DetCurve:
    """Error rates at every distinct threshold (ascending), decision ``score >= threshold`` = spoof."""

    thresholds: np.ndarray
    p_miss: np.ndarray
    p_fa: np.ndarray


def _clean(scores: Scores, name: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError(f"{name}: no scores")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name}: scores contain NaN or infinite values")
    return s


def det_curve(bonafide_scores: Scores, spoof_scores: Scores) -> DetCurve:
    """Miss and false-alarm rates at each distinct score used as threshold, plus +inf (flag nothing).

    At threshold ``t``: ``p_miss = #(spoof < t) / N_spoof``, ``p_fa = #(bonafide >= t) / N_bonafide``.
    The first point (lowest score) flags everything (p_miss 0, p_fa 1); the last (+inf) flags nothing.
    """
    bona = _clean(bonafide_scores, "bonafide_scores")
    spoof = _clean(spoof_scores, "spoof_scores")
    thr = np.unique(np.concatenate([bona, spoof]))  # ascending, ties grouped
    bona_sorted = np.sort(bona)
    spoof_sorted = np.sort(spoof)
    # number strictly below each threshold
    spoof_below = np.searchsorted(spoof_sorted, thr, side="left")
    bona_below = np.searchsorted(bona_sorted, thr, side="left")
    p_miss = spoof_below / spoof.size
    p_fa = (bona.size - bona_below) / bona.size
    return DetCurve(
        thresholds=np.append(thr, np.inf),
        p_miss=np.append(p_miss, 1.0),
        p_fa=np.append(p_fa, 0.0),
    )


def eer(bonafide_scores: Scores, spoof_scores: Scores) -> tuple[float, float]:
    """Equal error rate and the threshold where it is reached (decision: spoof if ``score >= threshold``).

    ASVspoof method: at the threshold minimising ``|p_miss - p_fa|`` the EER is their mean.
    """
    c = det_curve(bonafide_scores, spoof_scores)
    i = int(np.argmin(np.abs(c.p_miss - c.p_fa)))
    return float((c.p_miss[i] + c.p_fa[i]) / 2.0), float(c.thresholds[i])


def min_dcf(
    bonafide_scores: Scores,
    spoof_scores: Scores,
    *,
    p_spoof: float = 0.05,
    c_miss: float = 1.0,
    c_fa: float = 10.0,
) -> tuple[float, float]:
    """Normalised minimum DCF (ASVspoof 5 CM definition, see module doc) and its threshold.

    ``c_miss`` is the cost of rejecting a bona fide clip, ``c_fa`` of accepting a spoof (ASVspoof's
    naming, where the target class is bona fide).
    """
    if not 0.0 < p_spoof < 1.0:
        raise ValueError("p_spoof must be in (0, 1)")
    if c_miss <= 0 or c_fa <= 0:
        raise ValueError("costs must be positive")
    c = det_curve(bonafide_scores, spoof_scores)
    # ASVspoof's P_miss_cm (bona fide rejected) is our p_fa; its P_fa_cm (spoof accepted) is our p_miss.
    dcf = c_miss * (1.0 - p_spoof) * c.p_fa + c_fa * p_spoof * c.p_miss
    norm = min(c_miss * (1.0 - p_spoof), c_fa * p_spoof)
    i = int(np.argmin(dcf))
    return float(dcf[i] / norm), float(c.thresholds[i])


def rates_at(
    bonafide_scores: Scores,
    spoof_scores: Scores,
    threshold: float,
) -> tuple[float, float]:
    """(p_miss, p_fa) of the decision ``score >= threshold`` = spoof."""
    bona = _clean(bonafide_scores, "bonafide_scores")
    spoof = _clean(spoof_scores, "spoof_scores")
    return float(np.mean(spoof < threshold)), float(np.mean(bona >= threshold))


@dataclass(frozen=True)
class PairedDiff:
    """EER of two systems on the same trials and a bootstrap interval of their difference (b − a)."""

    eer_a: float
    eer_b: float
    diff: float
    low: float
    high: float
    resamples: int


def paired_bootstrap_eer(
    bonafide_a: Scores,
    spoof_a: Scores,
    bonafide_b: Scores,
    spoof_b: Scores,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedDiff:
    """Compare two models scored on the *same* clips: EER of each, and a percentile bootstrap interval of
    ``eer_b - eer_a``. Bona fide and spoof clips are resampled separately (each class keeps its size) and
    the same resampled clips serve both models, so the interval reflects which clips were drawn, not the
    model pairing. An interval that contains 0 means the clips cannot tell the two apart."""
    ba, sa = _clean(bonafide_a, "bonafide_a"), _clean(spoof_a, "spoof_a")
    bb, sb = _clean(bonafide_b, "bonafide_b"), _clean(spoof_b, "spoof_b")
    if ba.size != bb.size or sa.size != sb.size:
        raise ValueError("paired comparison needs the same clips: score counts differ between a and b")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    rng = np.random.default_rng(seed)
    ea, eb = eer(ba, sa)[0], eer(bb, sb)[0]
    diffs = np.empty(resamples)
    for k in range(resamples):
        i = rng.integers(0, ba.size, ba.size)
        j = rng.integers(0, sa.size, sa.size)
        diffs[k] = eer(bb[i], sb[j])[0] - eer(ba[i], sa[j])[0]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    return PairedDiff(eer_a=ea, eer_b=eb, diff=eb - ea, low=float(low), high=float(high), resamples=resamples)
