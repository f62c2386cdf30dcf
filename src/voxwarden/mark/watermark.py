"""Keyed, blind audio watermark: spread-transform dither modulation of log band energies.

How it works (the argument is in docs/watermark.md):

* All analysis runs at 8 kHz on the mono mix, in the 500-3500 Hz band that telephone resampling, MP3
  and AAC keep. The signal is cut into 32 ms *slots* (256 samples) and 12 bands of 250 Hz; a *tile* is
  one slot x one band, and its value is its log energy with the slot's (weighted) mean removed, so gain
  changes and slow equalisation cancel.
* A *block* is 42 slots (1.344 s) carrying 126 projections (3 per slot). Each projection is a keyed,
  balanced +-1 combination of 4 tiles of one slot; the keyed layout (which tiles, which signs) repeats
  every LAYOUT_PERIOD = 3 slots, the keyed dither does not. The embedder moves every projection onto the
  quantiser lattice of its bit (spread-transform dither modulation, keyed dither): the host signal's
  own value does not interfere with the bit (blind, informed embedding), and the change is a gain of
  a fraction of a dB per tile, i.e. shaped by the speech's own spectrum.
* 32 payload bits + a 24-bit keyed MAC are coded with a K=7 rate-1/2 convolutional code (124 bits),
  keyed-interleaved over the block. Blocks repeat back to back, so any window of >= 1.344 s holds every
  bit (cyclically), and repetitions add up in longer clips.
* The detector needs no sync bits: on a lattice point cos(4 pi (p - d) / Delta) = 1 whatever the bit,
  so this sum over all projections is a sync statistic. It searches speed factors (+-3 %, each by
  resampling the signal back to nominal speed), sub-slot offsets and the block phase (all 42 phases at
  once: each position's 9 distinct projections become phasors, and the dither enters as one small
  correlation over the folded block), soft-decodes the
  best candidates and reports the mark only when the MAC verifies (false-positive bound
  18 * 2^-24 ~ 1.1e-6 per 20 s window).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from voxwarden.mark import ecc, keys

__all__ = [
    "MarkResult",
    "Marker",
    "WatermarkError",
    "payload_from_ids",
    "PAYLOAD_BYTES",
    "MIN_SR",
    "MAX_SR",
]

payload_from_ids = keys.payload_from_ids

# ---- parameters (changing any of them changes the mark format: bump FORMAT_VERSION) -----------------
FORMAT_VERSION = 3  # 3: layout repeats every 3 slots (2: a layout per slot; 1: 24 bands of 125 Hz)
SR = 8000  # internal analysis rate
MID_SR = 16000  # rates above this are resampled to/from SR through MID_SR
NFFT = 128  # 16 ms analysis window: short, so a slot's energy leaks little into its neighbours
HOP = 32
SLOT = 256  # samples at SR per slot (32 ms)
HOPS_PER_SLOT = SLOT // HOP
TILE_MARGIN = NFFT // 2  # a tile's frames keep their whole window inside the slot
BIN0 = 8  # first band starts at 500 Hz (62.5 Hz bins)
BAND_BINS = 4  # 250 Hz bands: twice the Hann main lobe, so neighbouring bands can be moved independently
N_BANDS = 12  # 500-3500 Hz
PROJ_PER_SLOT = 3  # 4 tiles per projection
PAYLOAD_BYTES = 4
PAYLOAD_BITS = 8 * PAYLOAD_BYTES
MAC_BITS = 24
N_INFO = PAYLOAD_BITS + MAC_BITS
N_CODED = 2 * (N_INFO + ecc.TAIL)  # 124
BLOCK_SLOTS = math.ceil(N_CODED / PROJ_PER_SLOT)  # 42 slots = 1.344 s
N_PROJ = BLOCK_SLOTS * PROJ_PER_SLOT
# slots after which the keyed tile-to-projection layout repeats (divides BLOCK_SLOTS; the dither does not
# repeat): the detector's search then projects each position onto 3 * LAYOUT_PERIOD patterns, not N_PROJ
LAYOUT_PERIOD = 3
DELTA_DB = 1.4  # quantiser step of a projection, in dB: robustness vs. SNR
MAX_GAIN_DB = 6.0  # cap on the change of any one tile
SHAPE_RANGE = 4.0
SHAPE_GAMMA = 0.25  # 0: same dB change on every tile; 0.5: same energy change on every tile
MIN_SNR_DB = 30.5  # embedding never goes below this SNR (mark energy vs signal energy)
ALLOC_SNR_MARGIN_DB = 0.05  # the allocation aims this far above MIN_SNR_DB (its energy model is approximate)
ALLOC_ALPHAS = np.linspace(0.0, 1.5, 16)  # scales of a projection's closed-loop gains the allocation chooses from
EMBED_ITERS = 3  # closed-loop passes before the allocation (4 found no more marks; 2 found fewer)
EMBED_RELAX = 1.0  # first step; later steps use a per-projection secant estimate of the response
RELAX_MAX = 1.5
CMD_MAX = 0.8  # max total command per projection, in units of DELTA_DB
WEIGHT_FLOOR_DB = 40.0  # tiles this far below their slot's loudest tile carry no weight
WEIGHT_RAMP_DB = 20.0
SLOT_FLOOR_DB = 50.0  # slots this far below the clip's loud slots carry no weight
SLOT_RAMP_DB = 15.0
#: 0.125 %: the sync peak is narrow (weak clips lose a third of their z 0.025 % off the true speed), so the
#: former 0.5 % grid missed ~a quarter of the clips whose speed fell between grid points, and a 0.25 % grid
#: still 7 % of the 3 s clips (docs, "Speed changes between grid points")
SPEED_STEP = 0.00125
SPEEDS = tuple(1.0 + SPEED_STEP * i for i in range(-24, 25))  # +-3 % in 0.125 % steps
REFINE_TOP = 2  # coarse speeds (best sync statistic) searched again nearby, at:
REFINE_FRACS = (-0.5, 0.5)  # refined speeds: coarse speed + these multiples of SPEED_STEP
FINE_TOP = 2  # best items (speeds) of a stage re-searched on the shifted STFT grids
FINE_SHIFTS = (8, 16, 24)  # 1, 2, 3 ms at 8 kHz (the main grid's hop is 4 ms)
RESCALE_UP = 8  # speed search: upsampling before linear interpolation (see _Rescaler)
N_OFFSETS = 8  # sub-slot time offsets searched (32 samples at 8 kHz apart)
WINDOW_S = 20.0  # long inputs are searched in windows of this length (bounds memory)
WINDOW_OVERLAP_S = 4.0
SEARCH_SLOTS = 8000  # (item x slot) rows per search call: ~12 speeds of a 20 s window (bounds memory, ~30 MB)
EMBED_CHUNK_SLOTS = 16 * BLOCK_SLOTS  # ~21.5 s of audio per embedding chunk
CHUNK_PAD_SLOTS = 4
LOCAL_Z_FULL = 2.0  # decoding: slots with local sync z >= this get full weight
LOCAL_W_MIN = 0.1
SPAN_Z = 2.5  # local (one block) sync z above which a slot counts as marked, for `spans`
SPAN_MIN_SLOTS = BLOCK_SLOTS // 3  # shorter spans are dropped when a longer one exists (~0.45 s)
N_CANDIDATES = 3  # (speed, offset, phase) hypotheses soft-decoded per search stage
MIN_SR, MAX_SR = 8000, 48000
MAX_SECONDS = 1800.0
#: search stages per 20 s window: nominal speed, coarse speeds, refined speeds. Each soft-decodes at most
#: 2 * N_CANDIDATES alignments: the main grid's best, then the best after adding the shifted grids
N_STAGES = 3
#: false-positive bound per 20 s window: 2 * N_STAGES * N_CANDIDATES MAC checks of MAC_BITS bits (~1.1e-6)
FP_BOUND = 2 * N_STAGES * N_CANDIDATES * 2.0**-MAC_BITS


class WatermarkError(ValueError):
    """Bad input to the watermark (wrong shape/type/rate, non-finite samples, bad payload)."""


@dataclass
class MarkResult:
    """Outcome of `Marker.detect`.

    present: the MAC of a decoded payload verified with this key (false-positive bound ~1.1e-6 per 20 s).
    payload: the 4 payload bytes when present, else None.
    confidence: 0..1. When present, 1 - the false-positive bound; when absent, a sync-strength score
        (< 0.5) that says how much mark-like structure was seen (e.g. a mark too damaged to decode).
    spans: (start, end) seconds of the input where the mark was seen (empty when absent).
    """

    present: bool
    payload: bytes | None
    confidence: float
    spans: list[tuple[float, float]] = field(default_factory=list)
    speed: float | None = None
    sync_z: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form used by the CLI and API."""
        return {
            "present": self.present,
            "payload": self.payload.hex() if self.payload is not None else None,
            "confidence": round(float(self.confidence), 6),
            "spans": [[round(a, 3), round(b, 3)] for a, b in self.spans],
        }


# ---- signal helpers ----------------------------------------------------------------------------------


def _design(fs_mid: float, wide: bool = False) -> np.ndarray:
    """Low-pass FIR at the resampler's intermediate rate: pass 3.5 kHz, stop from 4.5 kHz (60 dB).

    Aliases of 4.0-4.5 kHz land above 3.5 kHz, outside the watermark band, so this short filter is enough.
    `wide`: stop only from 11.5 kHz, for the first (last) stage between a high rate and MID_SR: what it lets
    through between 4.5 and 11.5 kHz, and what aliases there, the 16 <-> 8 kHz stage removes.
    """
    from scipy.signal import firwin, kaiserord

    width = MID_SR - 4500.0 - 3500.0 if wide else 1000.0
    numtaps, beta = kaiserord(60.0, width / (fs_mid / 2.0))
    numtaps |= 1
    return firwin(numtaps, 3500.0 + width / 2.0, window=("kaiser", beta), fs=fs_mid)


@lru_cache(maxsize=64)
def _fir_for(sr_from: int, sr_to: int, wide: bool = False) -> tuple[int, int, np.ndarray]:
    g = math.gcd(sr_from, sr_to)
    up, down = sr_to // g, sr_from // g
    return up, down, _design(float(sr_from * up), wide)


#: one convolution of a polyphase resampler: output[out_phase::out_step] += conv(input[in_phase::in_step], taps)
#: read from full-convolution index `start` on
_Phase = tuple[int, int, int, int, int, np.ndarray]  # (in_phase, in_step, out_phase, out_step, start, taps)
#: np.convolve runs kernels of up to ~10 taps through an unrolled loop ~3x faster per tap than longer ones
#: (one dot product per output), so longer phases are split into pieces of this many taps
_CONV_PIECE = 10


@lru_cache(maxsize=64)
def _int_phases(sr_from: int, sr_to: int, wide: bool = False) -> tuple[_Phase, ...]:
    """`resample_poly`'s filtering for an integer factor (up or down == 1), split into polyphase convolutions.

    resample_poly(x, up, down, window=h) is y[n] = sum_k up * h[k] * u[n * down + H - k], u the input with
    up - 1 zeros after each sample, H = (len(h) - 1) // 2. Grouping the taps k by k mod factor turns it into
    short dense convolutions (np.convolve: 2-4x faster than upfirdn here). Taps that are zero up to rounding
    (|h| < 1e-12 max |h|, e.g. every other tap of the 16 <-> 8 kHz half-band filter, ~1e-17) are trimmed from
    the ends of each phase, so the half-band stages cost half: the output changes by ~1e-16. Each phase is
    cut into pieces of at most _CONV_PIECE taps (conv(x, taps)[m] = sum over pieces i of conv(x, piece)[m - i *
    _CONV_PIECE]).
    """
    up, down, h = _fir_for(sr_from, sr_to, wide)
    half = (len(h) - 1) // 2
    tol = 1e-12 * float(np.max(np.abs(h)))
    out: list[_Phase] = []
    factor = down if up == 1 else up
    for r in range(factor):
        taps = h[r::factor] * up
        nz = np.flatnonzero(np.abs(taps) > tol)
        if not len(nz):
            continue
        j0, taps = int(nz[0]), taps[nz[0] : nz[-1] + 1]
        if up == 1:  # decimate: every tap group reads input phase (H - r) mod down, all add into one output
            q, c = divmod(half - r, down)
            phase = (c, down, 0, 1)
            start = q - j0
        else:  # interpolate: output phase p = (r - H) mod up reads the whole input
            p = (r - half) % up
            phase = (0, 1, p, up)
            start = (p + half - r) // up - j0
        for i in range(0, len(taps), _CONV_PIECE):
            out.append((*phase, start - i, taps[i : i + _CONV_PIECE]))
    return tuple(out)


def _add_conv(out: np.ndarray, x: np.ndarray, taps: np.ndarray, start: int) -> None:
    """out += the full convolution of x and taps at indices start .. start + len(out) - 1 (zero outside it)."""
    if not len(x):
        return
    c = np.convolve(x, taps) if len(taps) > 1 else x * taps[0]
    lo, hi = max(start, 0), min(start + len(out), len(c))
    if hi > lo:
        out[lo - start : hi - start] += c[lo:hi]


def _poly(x: np.ndarray, sr_from: int, sr_to: int, wide: bool = False) -> np.ndarray:
    """`resample_poly` with `_fir_for`'s filter; integer factors run as polyphase convolutions (`_int_phases`)."""
    from scipy.signal import resample_poly

    up, down, h = _fir_for(sr_from, sr_to, wide)
    x = np.asarray(x, dtype=np.float64)
    if (up != 1 and down != 1) or not len(x):
        return resample_poly(x, up, down, window=h.copy())
    y = np.zeros(-(-len(x) * up // down))
    phases: dict[int, np.ndarray] = {}  # contiguous input phases: np.convolve is ~4x slower on strided input
    for in_phase, in_step, out_phase, out_step, start, taps in _int_phases(sr_from, sr_to, wide):
        if in_phase not in phases:
            phases[in_phase] = np.ascontiguousarray(x[in_phase::in_step])
        _add_conv(y[out_phase::out_step], phases[in_phase], taps, start)
    return y


def _resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample for the watermark band (0-3.5 kHz kept). Between 8 kHz and rates above 16 kHz it goes through
    16 kHz: two short filters cost ~40 % less than one long one at 44.1/48 kHz."""
    if sr_from == sr_to:
        return np.asarray(x, dtype=np.float64)
    if sr_to == SR and sr_from > MID_SR:
        return _poly(_poly(x, sr_from, MID_SR, wide=True), MID_SR, SR)
    if sr_from == SR and sr_to > MID_SR:
        return _poly(_poly(x, SR, MID_SR), MID_SR, sr_to, wide=True)
    return _poly(x, sr_from, sr_to)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    n = np.arange(NFFT)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / NFFT)


def _stft(x: np.ndarray) -> np.ndarray:
    """Centred STFT (frame f centred on sample f*HOP), Hann window, zero padding at the edges.

    Single precision: the mark sits ~30 dB under the signal, far above float32 rounding, and it halves
    the cost of the transforms that dominate embedding and detection.
    """
    from numpy.lib.stride_tricks import as_strided
    from scipy import fft as sfft

    pad = NFFT // 2
    n_frames = len(x) // HOP + 1
    xp = np.empty(len(x) + 2 * pad + NFFT, np.float32)  # not np.zeros: calloc'd pages fault on every call
    xp[:pad] = 0.0
    xp[pad : pad + len(x)] = x
    xp[pad + len(x) :] = 0.0
    # frame f = xp[f*HOP : f*HOP + NFFT]; the padding keeps every frame inside xp
    frames = as_strided(xp, (n_frames, NFFT), (HOP * xp.strides[0], xp.strides[0]), writeable=False) * _window32()
    return sfft.rfft(frames, axis=1)


def _istft(spec: np.ndarray, length: int) -> np.ndarray:
    """Inverse of `_stft` (weighted overlap-add with the same Hann window); float64 out."""
    from scipy import fft as sfft

    frames = sfft.irfft(spec, n=NFFT, axis=1)
    frames *= _window32()
    n_frames = spec.shape[0]
    total = (n_frames - 1) * HOP + NFFT
    out = np.zeros(total)
    step = NFFT // HOP
    for j in range(step):  # frames j, j+step, ... tile the signal without overlap: one slice each
        fr = frames[j::step]
        m = fr.shape[0]
        if m:
            start = j * HOP
            out[start : start + m * NFFT].reshape(m, NFFT)[...] += fr  # a view: no copy of the frames
    pad = NFFT // 2
    return out[pad : pad + length] / _ola_norm(total)[pad : pad + length]


@lru_cache(maxsize=1)
def _window32() -> np.ndarray:
    return _window().astype(np.float32)


@lru_cache(maxsize=8)
def _ola_norm(total: int) -> np.ndarray:
    """Sum of squared windows under the overlap-add of `_istft` (1.5 inside, less at the edges)."""
    wsum = np.zeros(total)
    w2 = _window() ** 2
    for start in range(0, total - NFFT + 1, HOP):
        wsum[start : start + NFFT] += w2
    return np.maximum(wsum, 1e-3)


def _band_energies(spec: np.ndarray) -> np.ndarray:
    """(frames, N_BANDS) energies of the watermark bands from a `_stft` spectrum, in float64 (cumulative sums
    over thousands of frames need the precision).

    Read from the complex64 spectrum's interleaved (re, im) floats, one bin of every band at a time, so the
    temporaries stay (frames, N_BANDS) small (a (frames, bins) float64 copy cost more in page faults than in
    arithmetic); summed bin by bin as in re^2 + im^2 over a band, bit for bit.
    """
    v = np.ascontiguousarray(spec).view(np.float32)
    e = np.zeros((v.shape[0], N_BANDS))
    for b in range(BAND_BINS):
        k = 2 * (BIN0 + b)
        bins = slice(k, k + 2 * N_BANDS * BAND_BINS, 2 * BAND_BINS)  # bin BIN0 + b of every band
        p = np.square(v[:, bins], dtype=np.float64)  # re^2: exact in float64
        p += np.square(v[:, bins.start + 1 : bins.stop + 1 : bins.step], dtype=np.float64)  # + im^2
        e += p
    return e


def _band_energies32(spec: np.ndarray) -> np.ndarray:
    """(N_BANDS, frames) band energies in float32, for the detector's search.

    Same sums as `_band_energies`, read straight from the complex64 spectrum's interleaved (re, im) floats:
    pairwise slice sums are ~3x faster than a reshape-sum over tiny axes. The search sums only 5 frames per
    tile (no long cumulative sums), so float32 is enough there.
    """
    v = np.ascontiguousarray(spec).view(np.float32)[:, 2 * BIN0 : 2 * (BIN0 + N_BANDS * BAND_BINS)]
    p = v * v
    p = p[:, 0::2] + p[:, 1::2]  # |X|^2 per bin
    p = p[:, 0::2] + p[:, 1::2]  # pairs of bins
    return np.ascontiguousarray((p[:, 0::2] + p[:, 1::2]).T)  # BAND_BINS == 4 bins per band; (bands, frames)


def _tiles(band_e: np.ndarray) -> np.ndarray:
    """Slot x band energies from frame x band energies, on the embedder's grid (slot t = samples t*SLOT ...).

    A tile sums the frames whose whole window lies inside its slot (centres from TILE_MARGIN after the
    slot start to TILE_MARGIN before its end: frames 8t+2 .. 8t+6), so it measures its own slot, not a
    louder neighbour. Computed as differences of one cumulative sum over the frames.
    """
    n_frames, n_bands = band_e.shape
    n_slots = int(((n_frames - 1.5) * HOP) // SLOT)
    if n_slots <= 0:
        return np.zeros((0, n_bands))
    cpad = np.zeros((n_frames + 1, n_bands))
    np.cumsum(band_e, axis=0, out=cpad[1:])
    lo, hi = TILE_MARGIN // HOP, (SLOT - TILE_MARGIN) // HOP + 1  # frames lo .. hi-1 of a slot
    return cpad[hi :: HOPS_PER_SLOT][:n_slots] - cpad[lo :: HOPS_PER_SLOT][:n_slots]


def _log_and_weights(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log energies (dB), weights in [0, 1], and per-slot centred log energies of (slots, bands) tiles.

    A tile's weight ramps from 0 (WEIGHT_FLOOR_DB below the clip's loud tiles) to 1: quiet tiles are what
    codecs and noise destroy first. The weighted per-slot mean is removed, so gain and slow EQ cancel.
    """
    return _log_and_weights_batch(tiles)


def _log_and_weights_batch(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_log_and_weights` for (..., slots, bands) arrays, each leading index being its own clip.

    Weight = (tile vs. its own slot's loudest tile) x (slot vs. the clip's loud slots). The first factor
    is local, so cropping or pasting does not move it; the second only switches off near-silent slots
    (its ramp sits far below speech level, so it rarely differs between embedder and detector).
    """
    v = 10.0 * np.log10(np.maximum(tiles, 0.0) + 1e-20)  # cumsum differences can round below 0
    smax = v.max(axis=-1, keepdims=True)
    lead = v.shape[:-2]
    gref = _percentile90_exact(smax.reshape(-1, v.shape[-2])).reshape(*lead, 1, 1)
    w = np.clip((v - (smax - WEIGHT_FLOOR_DB)) / WEIGHT_RAMP_DB, 0.0, 1.0)
    w *= np.clip((smax - (gref - SLOT_FLOOR_DB)) / SLOT_RAMP_DB, 0.0, 1.0)
    ws = w.sum(axis=-1, keepdims=True)
    mean = (w * v).sum(axis=-1, keepdims=True) / np.maximum(ws, 1e-9)
    return v, w, v - mean


def _merge_spans(spans: list[tuple[float, float]], gap: float = 0.5) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a - out[-1][1] <= gap:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


def _to_mono(samples: np.ndarray) -> np.ndarray:
    return samples if samples.ndim == 1 else samples.mean(axis=1)


@dataclass
class _Search:
    """One search call's result: sync z per (item, offset, block phase), and the tile weights (w) and
    weighted centred log energies (wv), (bands, items, offsets, slots), that a candidate's projections are
    recomputed from (cheaper than keeping every (slot, projection) value of every alignment)."""

    z: np.ndarray
    w: np.ndarray
    wv: np.ndarray

    def projections(self, lay: _Layout, si: int, oi: int) -> tuple[np.ndarray, np.ndarray]:
        """(slots, N_PROJ) lattice phases (p - dither) / DELTA_DB and weights of item si at offset oi."""
        nrm = self.w[:, si, oi].T.astype(np.float64) @ lay.m
        q = self.wv[:, si, oi].T.astype(np.float64) @ lay.a
        return (q / np.maximum(nrm, 1e-9) - lay.dither) / DELTA_DB, nrm


# a candidate alignment: (sync z, grid shift, item, offset index, block phase, search result, item in search)
_Cand = tuple[float, int, int, int, int, _Search, int]


def _collect(cands: list[_Cand], res: _Search, shift: int, item_of: list[int]) -> None:
    """Append the N_CANDIDATES best (item, offset) alignments of one search, each at its best block phase."""
    z = res.z
    best = z.max(axis=2)  # (S, O)
    order = np.unravel_index(np.argsort(-best, axis=None)[:N_CANDIDATES], best.shape)
    for si, oi in zip(*order, strict=True):
        k = int(np.argmax(z[si, oi]))
        cands.append((float(z[si, oi, k]), shift, item_of[si], int(oi), k, res, int(si)))


def _weights_bands_first(tiles: np.ndarray, n_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """`_log_and_weights_batch` for (bands, rows) tiles, rows = clips x n_slots: (weights, w * centred log).

    Same formula; with bands as the leading axis every per-slot reduction is an elementwise operation over
    12 contiguous rows, which numpy does far faster than reducing a trailing axis of length 12.
    """
    v = tiles + np.float32(1e-20)
    np.log2(v, out=v)  # log2 is ~2x faster than log10 in numpy
    v *= np.float32(10.0 * math.log10(2.0))
    smax = np.maximum.reduce(v, axis=0)
    gref = _percentile90(smax.reshape(-1, n_slots))
    slot_w = np.clip((smax.reshape(-1, n_slots) - (gref[:, None] - SLOT_FLOOR_DB)) / SLOT_RAMP_DB, 0.0, 1.0)
    w = v - (smax - np.float32(WEIGHT_FLOOR_DB))
    w *= np.float32(1.0 / WEIGHT_RAMP_DB)
    np.clip(w, 0.0, 1.0, out=w)
    w *= slot_w.reshape(-1)
    ws = np.add.reduce(w, axis=0)
    wv = w * v
    mean = np.add.reduce(wv, axis=0) / np.maximum(ws, np.float32(1e-9))
    wv -= np.multiply(w, mean, out=v)  # w * (v - mean); v is not needed any more
    return w, wv


def _percentile90_exact(a: np.ndarray) -> np.ndarray:
    """np.percentile(a, 90, axis=1) for float64 rows, bit for bit (numpy's linear method and its lerp), from a
    partial sort and without numpy's generic overhead (~0.2 ms a call: a tenth of a 3 s clip's embedding)."""
    n = a.shape[1]
    pos = (n - 1) * 0.9
    lo = math.floor(pos)
    if pos >= n - 1:
        return a.max(axis=1)
    t = pos - lo
    part = np.partition(a, (lo, lo + 1), axis=1)
    below, above = part[:, lo], part[:, lo + 1]
    diff = above - below
    return above - diff * (1 - t) if t >= 0.5 else below + diff * t


def _percentile90(a: np.ndarray) -> np.ndarray:
    """np.percentile(a, 90, axis=1) (linear interpolation) from a partial sort: ~5x faster on short rows."""
    pos = 0.9 * (a.shape[1] - 1)
    lo = int(pos)
    hi = min(lo + 1, a.shape[1] - 1)
    part = np.partition(a, (lo, hi), axis=1)
    return part[:, lo] + np.float32(pos - lo) * (part[:, hi] - part[:, lo])


def _viterbi_batch(soft: np.ndarray, n_bits: int) -> np.ndarray:
    """`ecc.viterbi_decode` for a batch of code words at once: (B, 2*(n_bits+TAIL)) soft values -> (B, n_bits).

    Same add-compare-select and tie rule (the first predecessor wins a tie), so the bits are identical. The
    K=7 trellis has butterflies: state ns = 2j + b is reached from j (input x=0) and j + 32 (x=1), so each step
    is a few broadcast operations on (B, 32, 2) arrays shared by the batch.
    """
    soft = np.asarray(soft, dtype=np.float64)
    nb = soft.shape[0]
    steps = n_bits + ecc.TAIL
    n_states = ecc._PREV.shape[0]
    half = n_states // 2
    if not (np.array_equal(ecc._PREV[:, 0], np.arange(n_states) >> 1)
            and np.array_equal(ecc._PREV[:, 1], (np.arange(n_states) >> 1) + half)):
        raise AssertionError("unexpected trellis")  # the butterfly layout below relies on it
    bm = (soft.reshape(nb, steps, 2) @ ecc._SIGNS.reshape(-1, 2).T).reshape(nb, steps, half, 2, 2)
    bm0 = np.ascontiguousarray(bm[..., 0].transpose(1, 0, 2, 3))  # (steps, B, j, b): branch from j (x = 0)
    bm1 = np.ascontiguousarray(bm[..., 1].transpose(1, 0, 2, 3))  # branch from j + 32 (x = 1)
    pm = np.full((nb, n_states), -1e18)
    pm[:, 0] = 0.0
    pm_jb = pm.reshape(nb, half, 2)  # the same memory, state 2j + b at [j, b]
    from_lo, from_hi = pm[:, :half, None], pm[:, half:, None]
    c0 = np.empty((nb, half, 2))
    c1 = np.empty((nb, half, 2))
    dec = np.empty((steps, nb, half, 2), dtype=bool)
    for i in range(steps):
        np.add(bm0[i], from_lo, out=c0)
        np.add(bm1[i], from_hi, out=c1)
        np.greater(c1, c0, out=dec[i])
        np.maximum(c0, c1, out=pm_jb)  # == where(c1 > c0, c1, c0)
    dec = dec.reshape(steps, nb, n_states)
    bits = np.empty((nb, steps), dtype=np.uint8)
    for b in range(nb):
        db = dec[:, b, :]
        state = 0  # terminated by the tail
        for i in range(steps - 1, -1, -1):
            bits[b, i] = state & 1
            state = (state >> 1) + (half if db[i, state] else 0)
    return bits[:, :n_bits]


def _slot_spans(loc: np.ndarray) -> list[tuple[int, int]]:
    """Slot ranges whose local (one block) sync statistic is clearly positive, merged over short gaps."""
    n = len(loc)
    on = loc > SPAN_Z
    if not on.any():
        on[:] = True
    spans: list[tuple[int, int]] = []
    i = 0
    while i < n:
        if on[i]:
            j = i
            while j + 1 < n and on[j + 1]:
                j += 1
            spans.append((i, j + 1))
            i = j + 1
        else:
            i += 1
    merged: list[tuple[int, int]] = []
    gap = int(0.5 * SR / SLOT)
    for a, b in spans:
        if merged and a - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    # a mark runs in whole blocks: a short island of local evidence next to a long span is chance
    longest = max(b - a for a, b in merged)
    return [(a, b) for a, b in merged if b - a >= min(longest, SPAN_MIN_SLOTS)]


class _Grids:
    """Band energies of one 8 kHz signal on STFT grids started `shift` samples late, cached per grid.

    The signal is `x8`, or `rescaler`'s at `speed`, made when a grid needs it and kept only for the shifted
    grids: a stage then never holds the ~50 rescaled signals of its speeds at once, only their band energies.
    """

    def __init__(self, x8: np.ndarray | None = None, rescaler: _Rescaler | None = None, speed: float = 1.0) -> None:
        self._x8 = x8
        self._rescaler = rescaler
        self._speed = speed
        self.n = len(x8) if x8 is not None else rescaler.length(speed) if rescaler is not None else 0
        self._cache: dict[tuple[int, int | None], np.ndarray] = {}

    def frames(self, shift: int) -> int:
        """Number of frames of the grid started `shift` samples late."""
        return (self.n - shift) // HOP + 1

    def get(self, shift: int, max_frames: int | None = None) -> np.ndarray:
        """(N_BANDS, frames) band energies of the grid started `shift` samples late; only the first
        `max_frames` frames when given (a search batch reads no further than its shortest item).

        Frame f is centred on sample f * HOP, so those frames need the signal only up to the last one's
        window: only that much is transformed, and the frames are the same as from the whole signal.
        """
        key = (shift, max_frames)
        if key not in self._cache:
            x8 = self._x8
            if x8 is None:
                assert self._rescaler is not None
                x8 = self._rescaler.get(self._speed)
                if shift:  # the shifted grids come in threes: keep the signal for the others
                    self._x8 = x8
            end = self.n
            if max_frames is not None:
                end = min(end, shift + (max_frames - 1) * HOP + NFFT // 2)
            be = _band_energies32(_stft(x8[shift:end]))
            self._cache[key] = be if max_frames is None else be[:, :max_frames]
        return self._cache[key]


class _Rescaler:
    """Undoes speed changes of one 8 kHz signal: resampling by a factor (tempo and pitch), read at nominal speed.

    The signal is upsampled once, exactly (FFT zero padding), by RESCALE_UP; every speed factor is then read
    from it by linear interpolation, ~5x cheaper per speed than the polyphase filter used before. At 64 kHz
    the band (< 4 kHz) is below 1/16 of the rate: the interpolator's sinc^2 response is divided out of the
    spectrum beforehand, and what its images alias back lies 47 dB below a 3.4 kHz tone, 57 dB below a 2 kHz
    one (a polyphase filter with 60 dB stop band found the same clips at the same sync z).
    """

    def __init__(self, x8: np.ndarray) -> None:
        from scipy import fft as sfft

        self.n = len(x8)
        n_fft = sfft.next_fast_len(self.n + 2 * SLOT, real=True)  # zeros after the signal: no circular wrap
        # float32 (like the STFT that follows): the upsampled signal is 8x as long, and this halves its cost
        spec = sfft.rfft(np.asarray(x8, dtype=np.float32), n_fft)
        spec /= (np.sinc(np.arange(len(spec)) / (RESCALE_UP * n_fft)) ** 2).astype(np.float32)
        self.up = sfft.irfft(spec, RESCALE_UP * n_fft) * np.float32(RESCALE_UP)
        self._step = self.up[1:] - self.up[:-1]  # up[k + 1] - up[k], as the interpolation takes it per sample

    def length(self, speed: float) -> int:
        """Length of the signal resampled by `speed`."""
        return int(self.n * speed)

    def get(self, speed: float) -> np.ndarray:
        """The signal resampled by `speed` (a 3 % faster recording comes back with speed 1.03)."""
        pos = np.arange(self.length(speed)) * (RESCALE_UP / speed)  # float64: exact sample positions
        i = pos.astype(np.int64)
        pos -= i  # exact: the fractional part
        y = pos.astype(np.float32)
        y *= self._step[i]
        y += self.up[i]
        return y


def _time_scale(x8: np.ndarray, speed: float) -> np.ndarray:
    """Undo a speed change by `speed` (resampling: tempo and pitch): the result plays at nominal speed."""
    return x8 if speed == 1.0 else _Rescaler(x8).get(speed)


# ---- key-derived layout ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    proj_of: np.ndarray  # (BLOCK_SLOTS, N_BANDS) projection index 0..2 within the slot
    sign: np.ndarray  # (BLOCK_SLOTS, N_BANDS) +-1
    a: np.ndarray  # (N_BANDS, N_PROJ) signed membership, column k*3+m
    m: np.ndarray  # (N_BANDS, N_PROJ) membership
    dither: np.ndarray  # (N_PROJ,) in [0, DELTA)
    interleave: np.ndarray  # (N_CODED,) coded bit i -> projection column
    # float32 forms for the detector's search (see `Marker._search`)
    m_lay: np.ndarray  # (LAYOUT_PERIOD * 3, N_BANDS): membership of each distinct (layout, projection)
    a_lay: np.ndarray  # the same with signs, times 4 pi / DELTA_DB
    corr_cos: np.ndarray  # (BLOCK_SLOTS * LAYOUT_PERIOD * 3, BLOCK_SLOTS) phase correlation, real part
    corr_sin: np.ndarray  # ... imaginary part
    corr_on: np.ndarray  # ... support (for the variance)


def _make_layout(key: bytes) -> _Layout:
    if BLOCK_SLOTS % LAYOUT_PERIOD:
        raise ValueError(f"LAYOUT_PERIOD {LAYOUT_PERIOD} does not divide BLOCK_SLOTS {BLOCK_SLOTS}")
    rng = np.random.Generator(np.random.PCG64(keys.pattern_seed(key, b"layout")))
    proj_of = np.empty((BLOCK_SLOTS, N_BANDS), dtype=np.int64)
    sign = np.empty((BLOCK_SLOTS, N_BANDS))
    sizes = [N_BANDS // PROJ_PER_SLOT + (1 if i < N_BANDS % PROJ_PER_SLOT else 0) for i in range(3)]
    for k in range(LAYOUT_PERIOD):
        perm = rng.permutation(N_BANDS)
        start = 0
        for mi, sz in enumerate(sizes):
            members = perm[start : start + sz]
            start += sz
            proj_of[k, members] = mi
            s = np.array([1.0, -1.0] * (sz // 2) + ([1.0] if sz % 2 else []))
            sign[k, members] = rng.permutation(s) * (rng.integers(0, 2) * 2 - 1)
    proj_of[:] = proj_of[np.arange(BLOCK_SLOTS) % LAYOUT_PERIOD]
    sign[:] = sign[np.arange(BLOCK_SLOTS) % LAYOUT_PERIOD]
    a = np.zeros((N_BANDS, N_PROJ))
    m = np.zeros((N_BANDS, N_PROJ))
    for k in range(BLOCK_SLOTS):
        cols = k * PROJ_PER_SLOT + proj_of[k]
        a[np.arange(N_BANDS), cols] = sign[k]
        m[np.arange(N_BANDS), cols] = 1.0
    dither = rng.uniform(0.0, DELTA_DB, N_PROJ)
    interleave = rng.permutation(N_PROJ)[:N_CODED]
    # the search's forms: one row per (layout l, projection m), j = l * 3 + m
    n_lay = LAYOUT_PERIOD * PROJ_PER_SLOT
    m_lay = np.ascontiguousarray(m[:, :n_lay].T, np.float32)
    a_lay = np.ascontiguousarray(a[:, :n_lay].T * (4.0 * np.pi / DELTA_DB), np.float32)
    # phase correlation: the folded phasor of (slot mod BLOCK_SLOTS = r, row j) meets block position
    # k = (r + shift) mod BLOCK_SLOTS, whose layout is k mod LAYOUT_PERIOD, with that position's dither
    r = np.arange(BLOCK_SLOTS)[:, None, None]
    j = np.arange(n_lay)[None, :, None]
    k = (r + np.arange(BLOCK_SLOTS)[None, None, :]) % BLOCK_SLOTS  # (r, 1, shift)
    phi = 4.0 * np.pi / DELTA_DB * dither[k * PROJ_PER_SLOT + j % PROJ_PER_SLOT]  # (r, j, shift)
    on = (k % LAYOUT_PERIOD == j // PROJ_PER_SLOT).astype(np.float64)
    shape = (BLOCK_SLOTS * n_lay, BLOCK_SLOTS)
    return _Layout(proj_of, sign, a, m, dither, interleave, m_lay, a_lay,
                   (on * np.cos(phi)).reshape(shape).astype(np.float32),
                   (on * np.sin(phi)).reshape(shape).astype(np.float32), on.reshape(shape).astype(np.float32))


def _allocate(
    gain: np.ndarray, ef: np.ndarray, proj_of: np.ndarray, mark_energy: float, budget: float,
    nn: np.ndarray, p0: np.ndarray, p1: np.ndarray, lat: np.ndarray,
) -> np.ndarray | None:
    """Per-projection scale (n_slots, PROJ_PER_SLOT) of the closed-loop gains, within an energy budget.

    The closed loop pushes every projection to its lattice point, whatever that costs. Projections differ a
    lot in what a dB of command buys: one whose tiles are loud and fully weighted moves cheaply, one whose
    quiet tiles hardly respond (their energy leaks in from a neighbour) costs much and moves little. Scaling
    the whole mark down to the SNR limit afterwards takes the same share from both. Instead, each projection
    k picks alpha_k from ALLOC_ALPHAS to maximise its decoding value nn_k * cos(2 pi (p_k(alpha) - lat_k) /
    DELTA) minus lambda times its mark energy, with p_k(alpha) = p0 + alpha * (p1 - p0) (the loop's own
    response, linearised) and the energy of tile i modelled as ef_i * (10^(alpha g_i / 20) - 1)^2, calibrated
    against the measured mark. lambda >= 0 is the smallest that fits the budget. alpha > 1 lets a projection
    that stopped short of its point (capped command) go further when the budget allows.
    Returns None when the model cannot be calibrated (no mark energy).
    """
    lin = 10.0 ** (gain / 20.0)
    model_e = float(np.sum(ef * (lin - 1.0) ** 2))
    if model_e <= 0.0 or mark_energy <= 0.0:
        return None
    kappa = mark_energy / model_e
    n = gain.shape[0]
    # tiles grouped by projection: (slots, projection, its N_BANDS // PROJ_PER_SLOT tiles)
    order = np.argsort(proj_of, axis=1, kind="stable").reshape(n, PROJ_PER_SLOT, -1)
    rows = np.arange(n)[:, None, None]
    g_a = np.clip(gain[rows, order][..., None] * ALLOC_ALPHAS, -MAX_GAIN_DB, MAX_GAIN_DB)
    g_a *= math.log(10.0) / 20.0
    np.expm1(g_a, out=g_a)
    cost = np.einsum("nmt,nmta->nma", ef[rows, order] * kappa, g_a * g_a)  # (slots, projection, alphas)
    p_a = p0[:, :, None] + ALLOC_ALPHAS * (p1 - p0)[:, :, None]
    value = nn[:, :, None] * np.cos(2.0 * np.pi * (p_a - lat[:, :, None]) / DELTA_DB)

    def pick(lam: float) -> tuple[np.ndarray, float]:
        idx = np.argmax(value - lam * cost, axis=2)  # ties: the smaller alpha
        return idx, float(np.take_along_axis(cost, idx[:, :, None], axis=2).sum())

    idx, total = pick(0.0)
    if total > budget:
        # above this lambda no scale gains more value than it costs: every projection picks alpha 0
        paid = cost > 1e-12 * budget  # a scale that costs nothing is never what overspends
        gain_per_e = np.where(paid, value - value[:, :, :1], 0.0) / np.where(paid, cost, 1.0)
        hi = float(max(gain_per_e.max(), 0.0)) * (1.0 + 1e-9) + 1e-300
        lo = hi * 1e-15
        if pick(lo)[1] <= budget:
            hi = lo
        for _ in range(30):  # bisection on log lambda: the energy spent falls as lambda rises
            mid = math.sqrt(lo * hi)
            if pick(mid)[1] > budget:
                lo = mid
            else:
                hi = mid
        idx, total = pick(hi)
    return ALLOC_ALPHAS[idx]


# ---- the marker --------------------------------------------------------------------------------------


class Marker:
    """Embeds and detects the keyed watermark. `Marker()` uses the public, NOT secret, demo key."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = keys.check_key(key) if key is not None else keys.DEMO_KEY
        self.is_demo_key = self.key == keys.DEMO_KEY
        self._layout = _make_layout(self.key)

    @classmethod
    def from_key_file(cls, path: str | os.PathLike[str]) -> Marker:
        """Load the key from a key file written by `keys.write_key_file` / `voxwarden mark keygen`."""
        return cls(keys.load_key_file(path))

    # -- validation --
    @staticmethod
    def _check(samples: np.ndarray, sr: int) -> np.ndarray:
        if not isinstance(samples, np.ndarray):
            raise WatermarkError(f"samples must be a numpy array, got {type(samples).__name__}")
        if isinstance(sr, bool) or not isinstance(sr, int | np.integer):
            raise WatermarkError(f"sample rate must be an integer, got {sr!r}")
        if not MIN_SR <= int(sr) <= MAX_SR:
            raise WatermarkError(f"sample rate {sr} Hz outside the supported {MIN_SR}-{MAX_SR} Hz")
        if samples.ndim not in (1, 2):
            raise WatermarkError(f"samples must be (N,) or (N, channels), got shape {samples.shape}")
        if samples.ndim == 2 and not 1 <= samples.shape[1] <= 16:
            raise WatermarkError(f"expected (N, channels) with 1-16 channels, got shape {samples.shape}")
        if samples.dtype.kind not in "fiu":
            raise WatermarkError(f"samples must be float or integer PCM, got dtype {samples.dtype}")
        if samples.shape[0] > MAX_SECONDS * sr:
            raise WatermarkError(f"input longer than {MAX_SECONDS:.0f} s; split it")
        x = _as_float(samples)
        if not np.all(np.isfinite(x)):
            raise WatermarkError("samples contain NaN or infinity")
        return x

    # -- embedding --
    def embed(self, samples: np.ndarray, sr: int, payload: bytes) -> np.ndarray:
        """Return a marked copy of `samples` (same shape and dtype) carrying the 4-byte `payload`.

        Clips shorter than one slot, or digital silence, come back unchanged (nothing can carry a mark).
        """
        payload = _check_payload(payload)
        x = self._check(samples, sr)
        sr = int(sr)
        mono = _to_mono(x)
        x8 = _resample(mono, sr, SR)
        g = _level_scale(x8)  # 1.0 at any ordinary level; energies below are of the scaled signals
        mono_g = mono * g if g != 1.0 else mono
        e_x = _energy(mono_g)
        # the mark energy the SNR guard allows, as energy of the 8 kHz mark signal (resampling a band-limited
        # signal keeps its mean square, so energies scale with the number of samples)
        budget = e_x * 10.0 ** (-(MIN_SNR_DB + ALLOC_SNR_MARGIN_DB) / 10.0) * SR / sr
        w8 = self._watermark_chunked(x8 * g if g != 1.0 else x8, payload, budget)
        if w8 is None:
            return samples.copy()
        w = _resample(w8, SR, sr)
        if len(w) < len(mono):
            w = np.concatenate([w, np.zeros(len(mono) - len(w))])
        if len(w) > len(mono):
            w = w[: len(mono)]
        # SNR guard: never let the mark exceed MIN_SNR_DB below the signal (the allocation already aims just
        # above it; this catches its model error)
        e_w = _energy(w)
        if e_w > 0 and e_w > e_x * 10.0 ** (-MIN_SNR_DB / 10.0):
            w *= math.sqrt(e_x * 10.0 ** (-MIN_SNR_DB / 10.0) / e_w)
        if g != 1.0:
            w /= g
        if x.ndim == 1:
            w += x  # the marked signal, in place: no second signal-sized temporary
            return _from_float(w, samples)
        return _from_float(x + w[:, None], samples)

    def _codeword(self, payload: bytes) -> np.ndarray:
        mac = keys.mac_bits(self.key, payload, MAC_BITS)
        mac_arr = np.array([(mac >> (MAC_BITS - 1 - i)) & 1 for i in range(MAC_BITS)], dtype=np.uint8)
        info = np.concatenate([ecc.bits_from_bytes(payload), mac_arr])
        coded = ecc.conv_encode(info)
        bits = np.zeros(N_PROJ, dtype=np.int64)
        bits[self._layout.interleave] = coded
        return bits

    def _watermark_chunked(self, x8: np.ndarray, payload: bytes, budget: float | None) -> np.ndarray | None:
        """The 8 kHz mark signal, computed in chunks of EMBED_CHUNK_SLOTS slots (bounded memory).

        Each chunk is analysed with CHUNK_PAD_SLOTS slots of context on both sides; slot indices stay global,
        so the block pattern runs on seamlessly across chunk borders. `budget` (energy of the 8 kHz mark) is
        shared between chunks in proportion to their energy; None skips the allocation (every projection
        keeps its closed-loop gains).
        """
        n_slots = len(x8) // SLOT
        if n_slots <= EMBED_CHUNK_SLOTS + 2 * CHUNK_PAD_SLOTS:
            return self._watermark_8k(x8, payload, budget=budget)
        e_all = max(_energy(x8), 1e-30)
        out = np.zeros(len(x8))
        any_mark = False
        for c0 in range(0, n_slots, EMBED_CHUNK_SLOTS):
            c1 = min(n_slots, c0 + EMBED_CHUNK_SLOTS)
            a = max(0, c0 - CHUNK_PAD_SLOTS)
            b = min(len(x8), (c1 + CHUNK_PAD_SLOTS) * SLOT)
            part = x8[a * SLOT : b]
            b_part = None if budget is None else budget * _energy(part) / e_all
            w = self._watermark_8k(part, payload, slot0=a, budget=b_part)
            if w is None:
                continue
            any_mark = True
            lo, hi = c0 * SLOT, (c1 * SLOT if c1 < n_slots else len(x8))
            out[lo:hi] = w[lo - a * SLOT : hi - a * SLOT]
        return out if any_mark else None

    def _watermark_8k(
        self, x8: np.ndarray, payload: bytes, slot0: int = 0, budget: float | None = None
    ) -> np.ndarray | None:
        lay = self._layout
        n_slots = len(x8) // SLOT
        if n_slots < 1:
            return None
        spec = _stft(x8)
        band_e = _band_energies(spec)
        tiles = _tiles(band_e)[:n_slots]
        n_slots = tiles.shape[0]
        if n_slots < 1 or not np.any(tiles > 0):
            return None
        _, w, vc = _log_and_weights(tiles)
        if not np.any(w > 0):
            return None
        k_of = (slot0 + np.arange(n_slots)) % BLOCK_SLOTS
        cols = k_of[:, None] * PROJ_PER_SLOT + np.arange(PROJ_PER_SLOT)[None, :]  # (n, 3)
        bits = self._codeword(payload)[cols]
        lat = lay.dither[cols] + bits * (DELTA_DB / 2.0)

        def project(vc_: np.ndarray, w_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            q = (w_ * vc_) @ lay.a
            nrm = w_ @ lay.m
            rows = np.arange(n_slots)[:, None]
            qn = q[rows, cols]
            nn = nrm[rows, cols]
            return qn / np.maximum(nn, 1e-9), nn

        p, nn = project(vc, w)
        p0 = p
        target = lat + DELTA_DB * np.round((p - lat) / DELTA_DB)
        active = nn > 0.5  # projections with too little energy are left alone
        gain = np.zeros((n_slots, N_BANDS))
        proj_of = lay.proj_of[k_of]  # (n, bands)
        sign = lay.sign[k_of]
        # the marked spectrum: the band bins of the slots' frames (8 per slot) are the input's times the slot's
        # band gains, as float32 (re, im) pairs [slot, frame in slot, band bin * 2]; later frames: gain 0 dB
        y_spec = spec.copy()
        bins = slice(2 * BIN0, 2 * (BIN0 + N_BANDS * BAND_BINS))
        n_fr = n_slots * HOPS_PER_SLOT
        src = spec.view(np.float32)[:n_fr].reshape(n_slots, HOPS_PER_SLOT, -1)[:, :, bins]
        dst = y_spec.view(np.float32)[:n_fr].reshape(n_slots, HOPS_PER_SLOT, -1)[:, :, bins]
        # Spread each projection's change over its tiles in proportion to energy^-SHAPE_GAMMA: a loud tile
        # costs more mark energy per dB than a quiet one. The weighted projection still moves by exactly dp.
        rows = np.arange(n_slots)[:, None]
        shape = np.where(w > 0, (tiles / max(float(tiles.max()), 1e-30) + 1e-12) ** -SHAPE_GAMMA, 0.0)
        # bounded to [1/SHAPE_RANGE, SHAPE_RANGE] x the slot's mean: a very weak tile next to a loud one
        # hardly responds (its measured energy leaks in from the neighbour), so it must not take the load
        smean = shape.sum(axis=1, keepdims=True) / np.maximum((shape > 0).sum(axis=1, keepdims=True), 1)
        shape = np.where(shape > 0, np.clip(shape, smean / SHAPE_RANGE, smean * SHAPE_RANGE), 0.0)
        grp = np.zeros((n_slots, PROJ_PER_SLOT))
        wsum = np.zeros((n_slots, PROJ_PER_SLOT))
        for mi in range(PROJ_PER_SLOT):
            sel = proj_of == mi
            grp[:, mi] = (w * shape * sel).sum(axis=1)
            wsum[:, mi] = (w * sel).sum(axis=1)
        spread = shape * np.take_along_axis(wsum / np.maximum(grp, 1e-30), proj_of, axis=1)
        sign_spread = sign * spread  # the loop's tile step is sign * spread * the projection's command

        def synth(g: np.ndarray) -> np.ndarray:
            lin = (10.0 ** (g / 20.0)).astype(np.float32)
            np.multiply(src, np.repeat(lin, 2 * BAND_BINS, axis=1)[:, None, :], out=dst)  # re and im alike
            return _istft(y_spec, len(x8))

        y8 = x8
        relax = np.full((n_slots, PROJ_PER_SLOT), EMBED_RELAX)  # per-projection inverse response (secant)
        total = np.zeros((n_slots, PROJ_PER_SLOT))
        for it in range(EMBED_ITERS):
            dp = np.where(active, target - p, 0.0)
            # bound the total command per projection: a projection that does not respond (its tiles' energy
            # leaks in from a loud neighbour slot) must not soak up mark energy
            cmd = np.clip(total + relax * dp, -CMD_MAX * DELTA_DB, CMD_MAX * DELTA_DB) - total
            total = total + cmd
            step = sign_spread * cmd[rows, proj_of]
            gain = np.clip(gain + step, -MAX_GAIN_DB, MAX_GAIN_DB)
            y8 = synth(gain)
            if it == EMBED_ITERS - 1 and budget is None:  # nothing would use the last pass's own effect
                break
            t2 = _tiles(_band_energies(_stft(y8)))[:n_slots]
            _, w2, vc2 = _log_and_weights(t2)  # what the detector will compute on the marked clip
            p_old = p
            p, _ = project(vc2, w2)
            if it == EMBED_ITERS - 1:
                break
            moved = np.abs(cmd) > 0.02
            resp = np.where(moved, (p - p_old) / np.where(moved, cmd, 1.0), 1.0 / relax)
            relax = np.where(moved, np.clip(1.0 / np.maximum(resp, 0.1), 0.7, RELAX_MAX), relax)
        if budget is None:
            return y8 - x8
        # Spend the energy budget where it buys the most: scale each projection's closed-loop gains by its own
        # alpha (see `_allocate`) instead of scaling the whole mark down afterwards.
        ef = band_e[:n_fr].reshape(n_slots, HOPS_PER_SLOT, N_BANDS).sum(axis=1)
        alpha = _allocate(gain, ef, proj_of, float(np.sum((y8 - x8) ** 2)), budget,
                          np.where(active, nn, 0.0), p0, p, lat)
        if alpha is not None:
            y8 = synth(np.clip(gain * alpha[rows, proj_of], -MAX_GAIN_DB, MAX_GAIN_DB))
        return y8 - x8

    # -- detection --
    def detect(self, samples: np.ndarray, sr: int) -> MarkResult:
        """Look for this key's mark in `samples`; blind (the original is not needed).

        Long inputs are searched in overlapping windows of `WINDOW_S` seconds, so a mark pasted into a
        long recording is found with its spans; the first payload that verifies wins, and the spans of
        every window carrying that same payload are merged.
        """
        x = self._check(samples, sr)
        x8 = _resample(_to_mono(x), int(sr), SR)
        g = _level_scale(x8)
        if g != 1.0:
            x8 = x8 * g
        scale = len(x) / (int(sr) * len(x8) / SR) if len(x8) else 1.0  # map 8 kHz seconds to input seconds
        win, hop = int(WINDOW_S * SR), int((WINDOW_S - WINDOW_OVERLAP_S) * SR)
        starts = [0] if len(x8) <= win else list(range(0, len(x8) - win + hop, hop))
        found: MarkResult | None = None
        best = MarkResult(False, None, 0.0, [])
        for st in starts:
            r = self._detect_8k(x8[st : st + win])
            t0 = st / SR
            r.spans = [((a + t0) * scale, (b + t0) * scale) for a, b in r.spans]
            if r.present:
                if found is None:
                    found = r
                elif r.payload == found.payload:
                    found.spans = _merge_spans(found.spans + r.spans)
                    found.sync_z = max(found.sync_z, r.sync_z)
            elif r.sync_z > best.sync_z:
                best = r
        return found if found is not None else best

    def _detect_8k(self, x8: np.ndarray) -> MarkResult:
        """Staged search, stopping at the first stage whose decoded payload's MAC verifies.

        1. Nominal speed: finds unchanged, re-encoded, cropped or pasted audio quickly.
        2. Speeds +-3 % in 0.125 % steps, each exactly: the signal is resampled back to nominal speed
           (`_Rescaler`) and searched as unchanged audio. (Rescaling band edges and slots on one STFT is
           cheaper, but the frame grid then drifts against the slots, and it missed most speed-changed TTS
           clips.)
        3. +-0.0625 % around the REFINE_TOP speeds of stage 2 with the highest sync statistic.

        Every stage searches 8 sub-slot offsets on the main STFT grid, then its best items again on STFTs
        started 1, 2 and 3 ms later: tile energies are only exact on the embedder's frame grid (a 2 ms
        misalignment already costs most of the sync statistic). Each stage soft-decodes N_CANDIDATES.
        """
        if len(x8) < 2 * SLOT or not np.any(x8):
            return MarkResult(False, None, 0.0, [])
        found, best_z, _ = self._stage([(_Grids(x8), 1.0)])
        if found is not None or best_z == 0.0:
            return found if found is not None else MarkResult(False, None, 0.0, [])
        coarse = [sp for sp in SPEEDS if sp != 1.0]
        rescaler = _Rescaler(x8)
        found, z, z_items = self._stage([(_Grids(rescaler=rescaler, speed=sp), sp) for sp in coarse])
        best_z = max(best_z, z)
        if found is None and z_items:
            top = [coarse[i] for i in np.argsort(-np.asarray(z_items))[:REFINE_TOP]]
            fine = {round(sp + f * SPEED_STEP, 6) for sp in top for f in REFINE_FRACS}
            refine = sorted(fine - {round(sp, 6) for sp in SPEEDS})
            found, z, _ = self._stage([(_Grids(rescaler=rescaler, speed=sp), sp) for sp in refine])
            best_z = max(best_z, z)
        if found is not None:
            return found
        conf = float(np.clip((best_z - 5.0) / 10.0, 0.0, 0.49))
        return MarkResult(False, None, conf, [], sync_z=best_z)

    def _stage(self, items: list[tuple[_Grids, float]]) -> tuple[MarkResult | None, float, list[float]]:
        """One search stage over signals that were resampled back by a speed factor: [(grids, speed)].

        Returns (result if a payload verified, best sync z, best sync z of each item). Spans are mapped back
        to the received signal's time axis.
        """
        items = [it for it in items if it[0].n >= 2 * SLOT]
        if not items:
            return None, 0.0, []
        cands: list[_Cand] = []
        z_items = np.zeros(len(items))
        per = max(1, SEARCH_SLOTS // max(1, items[0][0].n // SLOT))  # items per search call: bounds memory
        for b0 in range(0, len(items), per):
            idx = list(range(b0, min(len(items), b0 + per)))
            common = min(items[i][0].frames(0) for i in idx)  # the search reads no further
            res = self._search([items[i][0].get(0, common) for i in idx])
            if res is not None:
                _collect(cands, res, 0, idx)
                z_items[idx] = res.z.max(axis=(1, 2))
        if not cands:
            return None, 0.0, []
        # the main grid's best candidates are decoded first: unchanged or re-encoded audio is usually found
        # here, and the three shifted grids are then never computed
        found = self._try(cands, items)
        if found is not None:
            return found, found.sync_z, []
        tried = {id(c) for c in cands}
        top = [int(t) for t in np.argsort(-z_items)[:FINE_TOP]]
        for shift in FINE_SHIFTS:
            sel = [i for i in top if items[i][0].n - shift >= 2 * SLOT]
            if sel:
                common = min(items[i][0].frames(shift) for i in sel)
                r2 = self._search([items[i][0].get(shift, common) for i in sel])
                if r2 is not None:
                    _collect(cands, r2, shift, sel)
                    for j, i in enumerate(sel):
                        z_items[i] = max(z_items[i], float(r2.z[j].max()))
        cands.sort(key=lambda c: -c[0])
        found = self._try([c for c in cands[:N_CANDIDATES] if id(c) not in tried], items)
        if found is not None:
            return found, found.sync_z, list(z_items)
        return None, cands[0][0] if cands else 0.0, [float(v) for v in z_items]

    def _try(self, cands: list[_Cand], items: list[tuple[_Grids, float]]) -> MarkResult | None:
        """Soft-decode the N_CANDIDATES best of `cands` (one batched Viterbi); the first, in order of sync z,
        whose MAC verifies becomes the result."""
        top = sorted(cands, key=lambda c: -c[0])[:N_CANDIDATES]
        if not top:
            return None
        soft = [self._soft(*res.projections(self._layout, si, oi), k) for _, _, _, oi, k, res, si in top]
        infos = _viterbi_batch(np.stack([llr[self._layout.interleave] for llr, _ in soft]), N_INFO)
        for (zc, shift, item, oi, *_), (_, loc), info in zip(top, soft, infos, strict=True):
            payload = ecc.bytes_from_bits(info[:PAYLOAD_BITS])
            mac = int("".join(str(int(b)) for b in info[PAYLOAD_BITS:]), 2)
            if mac != keys.mac_bits(self.key, payload, MAC_BITS):
                continue
            speed = items[item][1]
            t0 = (shift + oi * SLOT / N_OFFSETS) / SR
            spans = [((t0 + a * SLOT / SR) / speed, (t0 + b * SLOT / SR) / speed) for a, b in _slot_spans(loc)]
            return MarkResult(True, payload, 1.0 - FP_BOUND, spans, speed=speed, sync_z=zc)
        return None

    def _search(self, items: list[np.ndarray]) -> _Search | None:
        """Sync statistic z for every (item, offset, block phase), plus the tile values it came from.

        An item is the (N_BANDS, frames) band energies of one STFT grid of one signal (at nominal speed).
        Items are searched together, over their common length. The offsets are one STFT hop apart
        (SLOT / N_OFFSETS == HOP), so a tile is the sum of 5 whole frames: the tiles of every offset are one
        sliding sum over the frames, read with stride HOPS_PER_SLOT.
        """
        lay = self._layout
        n_sp = len(items)
        n_frames = min(it.shape[1] for it in items)
        n = int(((n_frames - 1.5) * HOP - (N_OFFSETS - 1) * HOP) // SLOT)
        if n < 1:
            return None
        n_pos = n * HOPS_PER_SLOT  # (slot, offset) positions, one per frame
        lo, hi = TILE_MARGIN // HOP, (SLOT - TILE_MARGIN) // HOP + 1  # frames lo..hi-1 of a slot: whole windows
        be = np.stack([it[:, :n_frames] for it in items], axis=1)  # (B, S, frames) float32
        sums = be[:, :, lo : lo + n_pos].copy()
        for j in range(lo + 1, hi):
            sums += be[:, :, j : j + n_pos]
        del be  # large temporaries go as soon as they are used: less memory to fault in again
        # (B, S, O, n) flattened to (B, rows): tile of slot t at offset o sums the frames of position 8t + o
        tiles = sums.reshape(N_BANDS, n_sp, n, N_OFFSETS).transpose(0, 1, 3, 2).reshape(N_BANDS, -1)
        del sums
        if not np.any(tiles > 0):
            return None
        w, wv = _weights_bands_first(tiles, n)
        del tiles
        # projections of every distinct (layout, projection) row at every position, as phasors
        # nrm * exp(i * 4 pi q / (nrm * DELTA)); the dither is applied after folding, in the correlation below
        nrm = lay.m_lay @ w
        nrm += np.float32(1e-9)  # a projection whose tiles all have weight 0 then adds 0, not NaN
        ang = lay.a_lay @ wv
        ang /= nrm
        parts = np.empty((3, *nrm.shape), np.float32)  # re, im, weight^2
        np.cos(ang, out=parts[0])
        np.sin(ang, out=parts[1])
        del ang
        parts[0] *= nrm
        parts[1] *= nrm
        np.multiply(nrm, nrm, out=parts[2])
        del nrm
        # fold the slots modulo the block: [part, j, S, O, slot mod BLOCK_SLOTS]
        parts = parts.reshape(3, -1, n_sp, N_OFFSETS, n)
        fold = np.zeros((*parts.shape[:4], BLOCK_SLOTS), np.float32)
        for t0 in range(0, n, BLOCK_SLOTS):
            t1 = min(n, t0 + BLOCK_SLOTS)
            fold[..., : t1 - t0] += parts[..., t0:t1]
        # [part, S*O, r*J + j] against the correlation matrices [r*J + j, shift]
        fold = fold.transpose(0, 2, 3, 4, 1).reshape(3, n_sp * N_OFFSETS, -1)
        s_sum = fold[0] @ lay.corr_cos + fold[1] @ lay.corr_sin  # sum of nrm * cos(4 pi (p - dither) / DELTA)
        v_sum = np.float32(0.5) * (fold[2] @ lay.corr_on)
        z = (s_sum / np.sqrt(np.maximum(v_sum, 1e-9))).reshape(n_sp, N_OFFSETS, BLOCK_SLOTS)
        return _Search(z, w.reshape(N_BANDS, n_sp, N_OFFSETS, n), wv.reshape(N_BANDS, n_sp, N_OFFSETS, n))

    def _soft(self, phase: np.ndarray, nrm: np.ndarray, phase_shift: int) -> tuple[np.ndarray, np.ndarray]:
        """Soft values of the N_PROJ projections of one alignment, and each slot's local (one block) sync z."""
        n = phase.shape[0]
        k_of = (np.arange(n) + phase_shift) % BLOCK_SLOTS
        cols = k_of[:, None] * PROJ_PER_SLOT + np.arange(PROJ_PER_SLOT)[None, :]
        rows = np.arange(n)[:, None]
        ph = phase[rows, cols]
        nn = nrm[rows, cols]
        # local sync evidence (one block around each slot): slots outside the mark (paste, silence) are
        # down-weighted so they do not drown the marked part in noise
        e = (nn * np.cos(4.0 * np.pi * ph)).sum(axis=1)
        var = (0.5 * nn**2).sum(axis=1)
        win = np.ones(min(BLOCK_SLOTS, n))
        loc = np.convolve(e, win, mode="same") / np.sqrt(np.maximum(np.convolve(var, win, mode="same"), 1e-9))
        slot_w = np.clip(loc / LOCAL_Z_FULL, LOCAL_W_MIN, 1.0)
        llr = np.bincount(cols.ravel(), (slot_w[:, None] * nn * np.cos(2.0 * np.pi * ph)).ravel(), N_PROJ)
        return llr, loc

    # -- files --
    def embed_file(
        self,
        in_path: str | os.PathLike[str],
        out_path: str | os.PathLike[str],
        payload: bytes,
        *,
        publish_only_if_found: bool = False,
    ) -> MarkResult:
        """Mark an audio file; keeps sample rate and channels, writes the format of `out_path`'s suffix.

        Returns `detect_file` of the written file: a self-check (a lossy output format or a too-short or
        silent input can leave no detectable mark). By default the file stays at `out_path` whatever the
        check says and the caller decides. With ``publish_only_if_found=True`` the file is written and
        checked beside `out_path` first and only moved there when it carries `payload`; otherwise nothing
        is left behind and an existing `out_path` is untouched (what a pipeline that ships `out_path`
        needs: an unverifiable mark never takes the place of a file).
        """
        import tempfile

        from voxwarden.mark import fileio

        payload = _check_payload(payload)
        samples, sr = fileio.read_audio(in_path, max_seconds=MAX_SECONDS)
        y = self.embed(samples, sr, payload)
        if not publish_only_if_found:
            fileio.write_audio(out_path, y, sr)
            return self.detect_file(out_path)
        out = Path(out_path)
        if not out.parent.is_dir():
            raise fileio.UnreadableError(f"{out.parent}: output directory does not exist")
        fd, tmp = tempfile.mkstemp(prefix=".vwm-check-", suffix=out.suffix, dir=str(out.parent))
        os.close(fd)
        try:
            fileio.write_audio(tmp, y, sr)
            check = self.detect_file(tmp)
            if check.present and check.payload == payload:
                try:
                    os.replace(tmp, out)
                except OSError as e:  # e.g. OUT is a directory, or read-only
                    raise fileio.UnreadableError(f"{out}: cannot write ({e.strerror or e})") from None
            return check
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def detect_file(self, path: str | os.PathLike[str]) -> MarkResult:
        """Decode any audio file (native rate and channels) and look for the mark."""
        from voxwarden.mark import fileio

        samples, sr = fileio.read_audio(path, max_seconds=MAX_SECONDS)
        if sr > MAX_SR:  # e.g. 96 kHz masters: the mark lives below 4 kHz, so 48 kHz loses nothing
            samples = _resample(_to_mono(samples), sr, MAX_SR)
            sr = MAX_SR
        return self.detect(samples, sr)


def _check_payload(payload: bytes) -> bytes:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise WatermarkError(f"payload must be bytes, got {type(payload).__name__}")
    payload = bytes(payload)
    if len(payload) != PAYLOAD_BYTES:
        raise WatermarkError(f"payload must be exactly {PAYLOAD_BYTES} bytes (32 bits), got {len(payload)}")
    return payload


def _as_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype.kind == "f":
        return samples.astype(np.float64, copy=False)
    info = np.iinfo(samples.dtype)
    if samples.dtype.kind == "u":
        mid = (int(info.max) + 1) / 2.0
        return (samples.astype(np.float64) - mid) / mid
    return samples.astype(np.float64) / float(-int(info.min))


def _level_scale(x8: np.ndarray) -> float:
    """A power of two that brings a signal far outside audio levels (hostile or mis-scaled floats, peak
    above 2^20 or below 2^-20) to a peak near 1, else 1.0. The STFTs run in float32, whose band energies
    would overflow or underflow there; the mark ignores gain, and a power of two scales exactly."""
    peak = float(np.max(np.abs(x8))) if len(x8) else 0.0
    if peak > 2.0**20 or 0.0 < peak < 2.0**-20:
        return 2.0 ** min(1000, max(-1000, -round(math.log2(peak))))  # 2^1000: denormals stay finite
    return 1.0


def _energy(x: np.ndarray) -> float:
    """Sum of squares without a temporary the size of x (einsum: one pass, numpy's own loop, no BLAS threads)."""
    return float(np.einsum("i,i->", x, x))


def _from_float(y: np.ndarray, like: np.ndarray) -> np.ndarray:
    """`y` as `like`'s dtype (float: clipped to +-1 when `like` was within it). Float `y` is clipped in place."""
    if like.dtype.kind == "f":
        if like.size and max(float(like.max()), -float(like.min())) <= 1.0:
            np.clip(y, -1.0, 1.0, out=y)
        return y.astype(like.dtype, copy=False)
    info = np.iinfo(like.dtype)
    if like.dtype.kind == "u":
        mid = (int(info.max) + 1) / 2.0
        return np.clip(np.round(y * mid + mid), info.min, info.max).astype(like.dtype)
    scale = float(-int(info.min))
    return np.clip(np.round(y * scale), info.min, info.max).astype(like.dtype)
