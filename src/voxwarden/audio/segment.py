"""Cut speech into fixed-length analysis windows for the detector.

Policy (the same for file scans and live streams, so offline figures hold live):

1. Speech regions closer than `merge_gap` seconds are merged into one *span* (short pauses belong to
   the speech around them; the detector should see natural pauses, not only voiced frames).
2. Each span yields windows of `win` seconds starting every `hop` seconds from the span start. If the
   last full window stops short of the span end, one more window is aligned to end exactly at the span
   end, so every speech second is covered.
3. A span shorter than `win` yields a single window of the whole span if it is at least `min_win`
   seconds long; shorter spans yield nothing.

Times are seconds of the original clip; `Window.samples` is a view into the input array (no copy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Window", "windows", "merge_regions"]


@dataclass(frozen=True)
class Window:
    """One analysis window: [start, end) seconds of the clip and its samples."""

    start: float
    end: float
    samples: np.ndarray

    @property
    def duration(self) -> float:
        return self.end - self.start


def merge_regions(
    regions: Sequence[tuple[float, float]], *, gap: float = 0.0, duration: float | None = None
) -> list[tuple[float, float]]:
    """Sort regions, clip them to [0, duration], drop empty ones, merge those at most `gap` s apart."""
    spans: list[tuple[float, float]] = []
    cleaned = []
    for a, b in regions:
        a, b = float(a), float(b)
        if not (np.isfinite(a) and np.isfinite(b)):
            raise ValueError(f"region ({a}, {b}) is not finite")
        a = max(0.0, a)
        if duration is not None:
            b = min(b, duration)
        if b > a:
            cleaned.append((a, b))
    for a, b in sorted(cleaned):
        if spans and a - spans[-1][1] <= gap:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        else:
            spans.append((a, b))
    return spans


def windows(
    samples: np.ndarray,
    sr: int,
    regions: Sequence[tuple[float, float]] | None,
    *,
    win: float = 4.0,
    hop: float = 2.0,
    min_win: float = 0.5,
    merge_gap: float = 1.0,
) -> list[Window]:
    """Windows of `win` s every `hop` s over the speech spans (see module docstring for the policy).

    `regions=None` means the whole clip is one span. Returns windows in time order.
    """
    if int(sr) != sr or sr <= 0:
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    if not (win > 0 and hop > 0 and min_win >= 0):
        raise ValueError(f"need win > 0, hop > 0, min_win >= 0 (got {win}, {hop}, {min_win})")
    x = np.asarray(samples).reshape(-1)
    duration = x.size / float(sr)
    if regions is None:
        regions = [(0.0, duration)]
    spans = merge_regions(regions, gap=merge_gap, duration=duration)

    def cut(a: float, b: float) -> Window:
        # Fixed sample count per window length (full windows all have round(win * sr) samples).
        n = int(round((b - a) * sr))
        i0 = max(0, min(int(round(a * sr)), x.size - n))
        i1 = min(x.size, i0 + n)
        return Window(start=i0 / sr, end=i1 / sr, samples=x[i0:i1])

    out: list[Window] = []
    eps = 1e-9
    for a, b in spans:
        length = b - a
        if length < min_win - eps or length <= 0:
            continue
        if length <= win + eps:
            out.append(cut(a, b))
            continue
        n_full = int(np.floor((length - win) / hop + eps)) + 1
        for k in range(n_full):
            s = a + k * hop
            out.append(cut(s, s + win))
        if a + (n_full - 1) * hop + win < b - eps:
            out.append(cut(b - win, b))
    return out
