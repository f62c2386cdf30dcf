"""Detector internals: the fast search, band energies, percentile and batched Viterbi against direct forms."""

from __future__ import annotations

import numpy as np
import pytest

from voxwarden.audio.synth import speech_like
from voxwarden.mark import Marker, ecc
from voxwarden.mark import watermark as wm

KEY = bytes(range(32))
PAYLOAD = b"\x0a\x0b\x0c\x0d"


def _direct_z(res: wm._Search, lay: wm._Layout, oi: int, shift: int) -> float:
    """The sync statistic of one alignment straight from its definition: sum of nrm * cos(4 pi (p - d) / DELTA)
    over every slot's 3 projections at block position (slot + shift) mod 42, over sqrt(sum nrm^2 / 2)."""
    phase, nrm = res.projections(lay, 0, oi)
    n = phase.shape[0]
    cols = ((np.arange(n) + shift) % wm.BLOCK_SLOTS)[:, None] * wm.PROJ_PER_SLOT + np.arange(wm.PROJ_PER_SLOT)
    rows = np.arange(n)[:, None]
    e = float((nrm[rows, cols] * np.cos(4.0 * np.pi * phase[rows, cols])).sum())
    return e / float(np.sqrt(0.5 * (nrm[rows, cols] ** 2).sum()))


@pytest.mark.parametrize("period", [wm.LAYOUT_PERIOD, 1, wm.BLOCK_SLOTS])
def test_search_equals_the_direct_statistic(monkeypatch: pytest.MonkeyPatch, period: int) -> None:
    # the search folds phasors and correlates with the dither; that must be the same number as the plain sum,
    # for the shipped layout period and for the extremes (one layout; a layout per slot, as in format 2)
    monkeypatch.setattr(wm, "LAYOUT_PERIOD", period)
    m = Marker(KEY)
    x = speech_like(3.0, 8000, 3, noise_floor=1e-4).astype(np.float64)
    y = m.embed(x, 8000, PAYLOAD)
    res = m._search([wm._Grids(y).get(0)])
    assert res is not None and res.z.shape == (1, wm.N_OFFSETS, wm.BLOCK_SLOTS)
    oi, k = np.unravel_index(int(np.argmax(res.z[0])), res.z.shape[1:])
    assert oi == 0 and res.z[0, oi, k] > 8.0  # marked on the embedder's grid: offset 0 wins clearly
    rng = np.random.default_rng(period)
    for o, s in [(oi, k), *zip(rng.integers(0, wm.N_OFFSETS, 4), rng.integers(0, wm.BLOCK_SLOTS, 4), strict=True)]:
        assert res.z[0, o, s] == pytest.approx(_direct_z(res, m._layout, int(o), int(s)), abs=2e-3)


def test_layout_repeats_with_its_period_but_the_dither_does_not() -> None:
    lay = Marker(KEY)._layout
    p = wm.LAYOUT_PERIOD
    assert wm.BLOCK_SLOTS % p == 0
    k = np.arange(wm.BLOCK_SLOTS)
    assert np.array_equal(lay.proj_of, lay.proj_of[k % p]) and np.array_equal(lay.sign, lay.sign[k % p])
    assert len({tuple(r) for r in lay.proj_of[:p]}) == p  # the p layouts differ
    d = lay.dither.reshape(wm.BLOCK_SLOTS, wm.PROJ_PER_SLOT)
    assert not np.allclose(d[:p], d[p : 2 * p])
    # each projection: 4 tiles with balanced signs
    for row in range(p):
        for mi in range(wm.PROJ_PER_SLOT):
            members = lay.proj_of[row] == mi
            assert members.sum() == 4 and lay.sign[row, members].sum() == 0


def test_other_keys_get_other_layouts() -> None:
    a, b = Marker(KEY)._layout, Marker(bytes(32))._layout
    assert not np.array_equal(a.proj_of, b.proj_of) or not np.array_equal(a.sign, b.sign)


def test_band_energies32_match_the_float64_ones() -> None:
    x = speech_like(1.0, 8000, 5, noise_floor=1e-4)
    spec = wm._stft(x)
    ref = wm._band_energies(spec)
    got = wm._band_energies32(spec)
    assert got.shape == (wm.N_BANDS, spec.shape[0]) and got.dtype == np.float32
    np.testing.assert_allclose(got.T, ref, rtol=1e-5, atol=1e-6 * ref.max())


@pytest.mark.parametrize("n", [1, 2, 5, 42, 93])
def test_percentile90_equals_numpy(n: int) -> None:
    a = np.random.default_rng(n).normal(0, 10, (6, n)).astype(np.float32)
    np.testing.assert_allclose(wm._percentile90(a), np.percentile(a, 90, axis=1), rtol=1e-6, atol=1e-5)


def test_batched_viterbi_equals_ecc() -> None:
    rng = np.random.default_rng(0)
    for trial in range(60):
        soft = rng.normal(0, 1, (3, wm.N_CODED)) * rng.choice([0.0, 1.0, 1.0], (3, wm.N_CODED))
        if trial % 3 == 0:
            soft = np.round(soft)  # many exact ties: the first predecessor must win, as in ecc
        got = wm._viterbi_batch(soft, wm.N_INFO)
        for b in range(3):
            assert np.array_equal(got[b], ecc.viterbi_decode(soft[b], wm.N_INFO)[0])
    bits = rng.integers(0, 2, wm.N_INFO)
    coded = 1.0 - 2.0 * ecc.conv_encode(bits)
    assert np.array_equal(wm._viterbi_batch(coded[None, :], wm.N_INFO)[0], bits)


def test_unmarked_speech_is_rejected_with_a_small_sync_statistic() -> None:
    m = Marker(KEY)
    r = m.detect(speech_like(3.0, 16000, 21, noise_floor=1e-4), 16000)
    assert not r.present and r.sync_z < 6.0 and r.confidence < 0.5


@pytest.mark.parametrize("speed", [0.97, 1.0125, 1.03])
def test_rescaler_matches_ideal_resampling(speed: float) -> None:
    # a speed change of a windowed tone, read back by the rescaler, against the exact resampled tone
    n = 16000
    t = np.arange(n)
    r_err = []
    for f in (500.0, 2000.0, 3400.0):
        x = np.sin(2 * np.pi * f / 8000 * t) * np.hanning(n)
        y = wm._Rescaler(x).get(speed)
        assert len(y) == int(n * speed)
        tt = np.arange(len(y)) / speed
        ideal = np.sin(2 * np.pi * f / 8000 * tt) * np.interp(tt, t, np.hanning(n))
        band = slice(1000, len(y) - 1000)
        r_err.append(10 * np.log10(np.mean((y[band] - ideal[band]) ** 2) / np.mean(ideal[band] ** 2)))
    assert r_err[0] < -70 and r_err[1] < -50 and r_err[2] < -42, r_err
