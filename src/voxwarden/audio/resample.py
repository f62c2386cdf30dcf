"""Sample-rate conversion with a polyphase FIR (`scipy.signal.resample_poly`).

One resampler for every path (files, arrays, live streams) so the detector always sees the same filter.
`StreamResampler` produces exactly what `resample` would on the whole signal, block by block, so a long
file can be decoded and resampled without first holding it all at its native rate.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np

__all__ = ["resample", "StreamResampler"]


# Largest `down` term we design a filter for (filter length ~ 20 * max(up, down) taps). Every common rate
# is far below (44.1k -> 16k is 160/441, 44.056k -> 16k is 2000/5507); a hostile header with a prime
# rate such as 767999 Hz would need a 15M-tap filter, so such ratios are approximated (rate error < 1e-4).
MAX_RATIO_TERM = 10000


def _ratio(sr_in: int, sr_out: int) -> tuple[int, int]:
    """(up, down) for sr_in -> sr_out, reduced; `down` capped at MAX_RATIO_TERM by rational approximation."""
    if int(sr_in) != sr_in or int(sr_out) != sr_out or sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive integers, got {sr_in} -> {sr_out}")
    g = math.gcd(int(sr_in), int(sr_out))
    up, down = int(sr_out) // g, int(sr_in) // g
    if down > MAX_RATIO_TERM:
        f = Fraction(up, down).limit_denominator(MAX_RATIO_TERM)
        if f.numerator > 0:
            up, down = f.numerator, f.denominator
    return up, down


@lru_cache(maxsize=32)
def _fir(up: int, down: int) -> np.ndarray:
    """The low-pass `resample_poly` designs by default for (up, down), as float32, designed once."""
    from scipy.signal import firwin

    max_rate = max(up, down)
    h = firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0)).astype(np.float32)
    h.setflags(write=False)
    return h


def _resample_poly(a: np.ndarray, up: int, down: int) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(a, up, down, window=_fir(up, down))


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a 1-D signal from `sr_in` to `sr_out` Hz; returns float32 (a copy, even if rates match).

    Uses `resample_poly` with its default filter (Kaiser beta 5, half-length 10 * max(up, down), designed
    once per ratio and cached) and zero padding at the edges; output length is
    ceil(len(x) * sr_out / sr_in). Exotic rates needing a ratio term above `MAX_RATIO_TERM` use the
    closest ratio with `down <= MAX_RATIO_TERM` instead (rate error below 1e-4 for rates up to 1 MHz).
    """
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 1:
        raise ValueError(f"resample expects a 1-D array, got shape {a.shape}")
    up, down = _ratio(sr_in, sr_out)
    if up == down or a.size == 0:
        return a.copy()
    return np.ascontiguousarray(_resample_poly(a, up, down), dtype=np.float32)


class StreamResampler:
    """Incremental `resample`: push blocks, get output as soon as it is final, `flush()` at the end.

    The concatenated output equals `resample(whole_signal, sr_in, sr_out)` up to float rounding: each
    block is resampled together with enough past/future input to cover the filter, starting at an input
    offset that is a multiple of `down` so the polyphase phase lines up with the whole-signal result.
    """

    def __init__(self, sr_in: int, sr_out: int, *, block: int | None = None) -> None:
        self.up, self.down = _ratio(sr_in, sr_out)
        self.sr_in, self.sr_out = int(sr_in), int(sr_out)
        # Filter half-length in the upsampled domain, as resample_poly designs it.
        self._half = 10 * max(self.up, self.down)
        self._block = int(block) if block else max(self.sr_in, 4 * self._half // self.up + 1)
        self._parts: list[np.ndarray] = []
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # global input index of _buf[0]; always a multiple of `down`
        self._n_in = 0  # input samples pushed so far
        self._m_done = 0  # output samples emitted so far
        self._pending = 0  # input samples pushed since the last compute

    @property
    def passthrough(self) -> bool:
        return self.up == self.down

    def push(self, x: np.ndarray) -> np.ndarray:
        """Add input samples; return the output samples that no later input can change."""
        a = np.asarray(x, dtype=np.float32).reshape(-1)
        if self.passthrough:
            self._n_in += a.size
            self._m_done += a.size
            return a.copy()
        if a.size:
            self._parts.append(a)
            self._n_in += a.size
            self._pending += a.size
        if self._pending < self._block:
            return np.zeros(0, dtype=np.float32)
        return self._compute(final=False)

    def flush(self) -> np.ndarray:
        """End of input: return the remaining output (zero padding beyond the end, like `resample`)."""
        if self.passthrough:
            return np.zeros(0, dtype=np.float32)
        return self._compute(final=True)

    def _compute(self, *, final: bool) -> np.ndarray:
        if self._parts:
            self._buf = np.concatenate([self._buf, *self._parts])
            self._parts = []
        self._pending = 0
        up, down, half = self.up, self.down, self._half
        n_end = self._buf_start + self._buf.size  # global index one past the last input sample
        if final:
            m_stop = -(-self._n_in * up // down)  # ceil: total output length of the whole signal
        else:
            # y[m] needs x[k] for k <= (m*down + half) / up; final when that is all < n_end.
            m_stop = max(self._m_done, (up * (n_end - 1) - half) // down + 1)
        if m_stop <= self._m_done or self._buf.size == 0:
            return np.zeros(0, dtype=np.float32)
        y = _resample_poly(self._buf, up, down)
        offset = self._buf_start * up // down  # output index of y[0]
        out = np.asarray(y[self._m_done - offset : m_stop - offset], dtype=np.float32)
        self._m_done = m_stop
        # Drop input no future output needs: y[m] needs x[k] for k >= (m*down - half) / up.
        k_need = max(0, math.ceil((self._m_done * down - half) / up) - 1)
        new_start = min((k_need // down) * down, (n_end // down) * down)
        if new_start > self._buf_start:
            self._buf = self._buf[new_start - self._buf_start :].copy()
            self._buf_start = new_start
        return out
