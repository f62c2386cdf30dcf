"""audio.windows: coverage, lengths and times of analysis windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwarden.audio import Window, windows
from voxwarden.audio.segment import merge_regions

SR = 100  # small rate keeps property tests fast; times are what matter


def _times(ws: list[Window]) -> list[tuple[float, float]]:
    return [(round(w.start, 3), round(w.end, 3)) for w in ws]


def test_exact_multiple_of_hop():
    x = np.zeros(10 * SR, np.float32)
    assert _times(windows(x, SR, [(0.0, 10.0)])) == [(0, 4), (2, 6), (4, 8), (6, 10)]


def test_tail_window_aligned_to_span_end():
    x = np.zeros(12 * SR, np.float32)
    assert _times(windows(x, SR, [(1.0, 10.0)])) == [(1, 5), (3, 7), (5, 9), (6, 10)]


def test_short_region_one_window_or_none():
    x = np.zeros(5 * SR, np.float32)
    assert _times(windows(x, SR, [(1.0, 2.2)])) == [(1.0, 2.2)]
    assert windows(x, SR, [(1.0, 1.3)]) == []  # under min_win
    assert _times(windows(x, SR, [(1.0, 1.3)], min_win=0.2)) == [(1.0, 1.3)]


def test_close_regions_merge_far_ones_do_not():
    x = np.zeros(30 * SR, np.float32)
    ws = windows(x, SR, [(1.0, 2.0), (2.5, 3.0), (20.0, 21.0)])
    assert _times(ws) == [(1.0, 3.0), (20.0, 21.0)]
    ws = windows(x, SR, [(1.0, 2.0), (2.5, 3.0)], merge_gap=0.1)
    assert _times(ws) == [(1.0, 2.0), (2.5, 3.0)]


def test_none_means_whole_clip_and_samples_match_times():
    x = np.arange(9 * SR, dtype=np.float32)
    ws = windows(x, SR, None)
    assert _times(ws) == [(0, 4), (2, 6), (4, 8), (5, 9)]
    for w in ws:
        np.testing.assert_array_equal(w.samples, x[int(round(w.start * SR)) : int(round(w.end * SR))])


def test_regions_beyond_clip_are_clipped():
    x = np.zeros(3 * SR, np.float32)
    assert _times(windows(x, SR, [(-1.0, 50.0)])) == [(0.0, 3.0)]
    assert windows(x, SR, []) == []


def test_bad_arguments():
    x = np.zeros(SR, np.float32)
    with pytest.raises(ValueError):
        windows(x, SR, None, win=0)
    with pytest.raises(ValueError):
        windows(x, 0, None)
    with pytest.raises(ValueError):
        windows(x, SR, [(0.0, float("nan"))])


regions_st = st.lists(
    st.tuples(st.floats(0, 60, allow_nan=False), st.floats(0.01, 15, allow_nan=False)).map(
        lambda t: (t[0], t[0] + t[1])
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(
    regions=regions_st,
    win=st.sampled_from([1.0, 2.0, 4.0]),
    hop_frac=st.sampled_from([0.25, 0.5, 1.0]),
    min_win=st.sampled_from([0.0, 0.5]),
    dur=st.floats(5, 70),
)
def test_window_properties(regions, win, hop_frac, min_win, dur):
    hop = win * hop_frac
    x = np.zeros(int(dur * SR), np.float32)
    duration = len(x) / SR
    ws = windows(x, SR, regions, win=win, hop=hop, min_win=min_win)
    spans = merge_regions(regions, gap=1.0, duration=duration)
    tol = 1.5 / SR
    for w in ws:
        assert 0 <= w.start < w.end <= duration + 1e-9
        assert w.end - w.start <= win + tol
        assert w.end - w.start >= min_win - tol
        assert len(w.samples) == int(round((w.end - w.start) * SR))
        assert any(a - tol <= w.start and w.end <= b + tol for a, b in spans)
    assert [w.start for w in ws] == sorted(w.start for w in ws)
    # every span long enough is covered end to end
    for a, b in spans:
        if b - a < min_win + tol:
            continue
        inside = [w for w in ws if a - tol <= w.start and w.end <= b + tol]
        assert inside
        assert abs(inside[0].start - a) <= tol and abs(inside[-1].end - b) <= tol
        for w1, w2 in zip(inside, inside[1:], strict=False):
            assert w2.start <= w1.end + tol  # no gaps
