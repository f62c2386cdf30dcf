"""Score calibration: raw countermeasure scores → probability of synthetic speech.

Platt scaling: ``p = sigmoid(a * score + b)``, fitted by Newton's method (IRLS) on held-back clips, with
a small L2 penalty on ``a`` so perfectly separated data still gives finite parameters. By default the two
classes are weighted equally (``balanced=True``), so the probability does not encode the held-back set's
class ratio: ``p = 0.5`` is where the calibrated log-likelihood ratio is zero. Fit only on training-side
held-back data, never on the validation set.
"""

from __future__ import annotations

import numpy as np

from voxwarden.detect.aggregate import sigmoid
from voxwarden.detect.metrics import det_curve


def _labels_scores(
    scores: np.ndarray | list[float], labels: np.ndarray | list[int]
) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.size != y.size:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (bona fide) or 1 (spoof)")
    if not (y == 0).any() or not (y == 1).any():
        raise ValueError("calibration needs both bona fide and spoof scores")
    return s, y.astype(np.float64)


def fit_platt(
    scores: np.ndarray | list[float],
    labels: np.ndarray | list[int],
    *,
    l2: float = 1e-3,
    balanced: bool = True,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[float, float]:
    """Fit ``(a, b)`` of ``sigmoid(a*score + b)`` by Newton/IRLS on labels 1=spoof, 0=bona fide.

    Minimises the (class-balanced) mean cross-entropy plus ``l2/2 * a**2``. Scores are standardised
    internally for conditioning; the returned ``(a, b)`` apply to raw scores.
    """
    s, y = _labels_scores(scores, labels)
    mu, sd = float(s.mean()), float(s.std())
    sd = sd if sd > 0 else 1.0
    z = (s - mu) / sd
    if balanced:
        w = np.where(y == 1, 0.5 / y.sum(), 0.5 / (y.size - y.sum()))
    else:
        w = np.full(y.size, 1.0 / y.size)
    X = np.stack([z, np.ones_like(z)], axis=1)
    theta = np.zeros(2)
    reg = np.array([l2, 1e-9])  # a tiny ridge on the bias keeps the Hessian invertible
    for _ in range(max_iter):
        p = np.asarray(sigmoid(X @ theta))
        grad = X.T @ (w * (p - y)) + reg * theta
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if np.max(np.abs(step)) < tol:
            break
    a_z, b_z = float(theta[0]), float(theta[1])
    return a_z / sd, b_z - a_z * mu / sd


def apply(a: float, b: float, scores: np.ndarray | list[float] | float) -> np.ndarray:
    """Probability of synthetic speech for raw score(s)."""
    return np.atleast_1d(np.asarray(sigmoid(a * np.asarray(scores, dtype=np.float64) + b), dtype=np.float64))


def eer_threshold(
    a: float, b: float, bonafide_scores: np.ndarray | list[float], spoof_scores: np.ndarray | list[float]
) -> tuple[float, float]:
    """Probability threshold at the EER of held-back raw scores, and that EER.

    Computed on calibrated probabilities, so it is right whatever the sign of ``a``. Every threshold
    between the EER point's score and the next lower score makes the same held-back decisions; we take
    the midpoint of that gap rather than its edge (on perfectly separated data: halfway between the
    highest bona fide and the lowest spoof probability). Clipped into (0.001, 0.999): a card's
    threshold must be a probability strictly inside (0, 1).
    """
    c = det_curve(apply(a, b, bonafide_scores), apply(a, b, spoof_scores))
    i = int(np.argmin(np.abs(c.p_miss - c.p_fa)))
    e = float((c.p_miss[i] + c.p_fa[i]) / 2.0)
    t = float(c.thresholds[i])
    if not np.isfinite(t):
        t = 0.999
    elif i > 0:
        t = 0.5 * (t + float(c.thresholds[i - 1]))
    return float(np.clip(t, 1e-3, 1 - 1e-3)), e
