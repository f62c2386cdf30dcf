"""How segment scores become one clip score, and how raw scores become probabilities."""

from __future__ import annotations

import numpy as np

AGGREGATIONS = ("mean", "median", "max", "top:<fraction>")


def aggregate(scores: np.ndarray, method: str = "mean", weights: np.ndarray | None = None) -> float:
    """Combine per-window raw scores into one clip score.

    ``mean`` (weighted by window length when ``weights`` is given) is the default: the calibration is
    fitted on clip scores made this way. ``top:0.25`` averages the highest quarter, which is more
    sensitive to a short synthetic insert inside a real recording.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no window scores to aggregate")
    if method == "mean":
        w = None if weights is None else np.asarray(weights, dtype=np.float64)
        return float(np.average(s, weights=w))
    if method == "median":
        return float(np.median(s))
    if method == "max":
        return float(np.max(s))
    if method.startswith("top:"):
        try:
            frac = float(method[4:])
        except ValueError as e:
            raise ValueError(f"bad aggregation {method!r}: expected top:<fraction>") from e
        if not 0.0 < frac <= 1.0:
            raise ValueError(f"bad aggregation {method!r}: fraction must be in (0, 1]")
        k = max(1, int(np.ceil(frac * s.size)))
        return float(np.mean(np.sort(s)[-k:]))
    raise ValueError(f"unknown aggregation {method!r} (known: {', '.join(AGGREGATIONS)})")


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out if out.ndim else float(out)
