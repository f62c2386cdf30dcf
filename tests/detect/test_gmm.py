"""Diagonal GMM by EM, the two-model LFCC-GMM back end, its weights file and train_gmm."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from voxwarden.detect.features import LfccConfig
from voxwarden.detect.gmm import DiagGmm, GmmBackend, fit_gmm, select_frames, train_gmm


def test_loglik_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    w = np.array([0.3, 0.7])
    mu = rng.normal(size=(2, 3))
    var = rng.uniform(0.5, 2.0, size=(2, 3))
    g = DiagGmm(w, mu, var)
    x = rng.normal(size=(5, 3))
    ref = np.log(sum(w[k] * multivariate_normal(mu[k], np.diag(var[k])).pdf(x) for k in range(2)))
    np.testing.assert_allclose(g.frame_loglik(x), ref, rtol=1e-10)


def test_em_recovers_clusters_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(m, 0.5, (1500, 2)) for m in (-6.0, 0.0, 6.0)])
    g, hist = fit_gmm(x, 3, seed=4)
    np.testing.assert_allclose(np.sort(g.means[:, 0]), [-6, 0, 6], atol=0.1)
    np.testing.assert_allclose(g.weights, 1 / 3, atol=0.02)
    np.testing.assert_allclose(g.variances, 0.25, atol=0.05)
    assert all(b >= a - 1e-9 for a, b in zip(hist, hist[1:], strict=False))  # EM never decreases LL
    g2, _ = fit_gmm(x, 3, seed=4)
    np.testing.assert_array_equal(g.means, g2.means)


def test_em_survives_degenerate_data() -> None:
    x = np.zeros((50, 4))
    x[:, 0] = np.arange(50) % 2  # two points only, constant dims
    g, _ = fit_gmm(x, 8, seed=0)
    assert np.all(np.isfinite(g.means)) and np.all(g.variances > 0)
    with pytest.raises(ValueError):
        fit_gmm(np.full((10, 2), np.nan), 2)
    with pytest.raises(ValueError):
        fit_gmm(np.zeros((0, 2)), 2)


def test_bad_parameters_rejected() -> None:
    with pytest.raises(ValueError):
        DiagGmm(np.ones(2), np.zeros((2, 3)), -np.ones((2, 3)))
    with pytest.raises(ValueError):
        DiagGmm(np.ones(3), np.zeros((2, 3)), np.ones((2, 3)))


def test_select_frames_drops_silence() -> None:
    f = np.zeros((4, 60), dtype=np.float32)
    level_db = np.array([0.0, -10.0, -70.0, -200.0])
    f[:, 0] = level_db * math.sqrt(20) / 10.0
    assert select_frames(f, 60.0, 20).shape[0] == 2
    assert select_frames(f, None, 20).shape[0] == 4


def _voiced(rng: np.random.Generator, sec: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(sec * sr)) / sr
    f0 = rng.uniform(100, 200) * (1 + 0.02 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(h * phase) / h for h in range(1, 30))
    return (0.1 * x + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def _buzz(rng: np.random.Generator, sec: float = 1.0, sr: int = 16000) -> np.ndarray:
    # band-limited noise: a different spectral shape from the voiced class
    from scipy.signal import butter, sosfilt

    sos = butter(4, [300, 3000], btype="band", fs=sr, output="sos")
    return (0.3 * sosfilt(sos, rng.normal(size=int(sec * sr)))).astype(np.float32)


def test_train_gmm_writes_loadable_model_that_separates(tmp_path) -> None:
    rng = np.random.default_rng(0)
    items = [(_voiced(rng), 0) for _ in range(6)] + [(_buzz(rng), 1) for _ in range(6)]
    fields = train_gmm(items, tmp_path, seed=0, n_components=4, max_iter=10)
    assert fields["kind"] == "lfcc-gmm" and (tmp_path / fields["file"]).is_file()
    json.dumps(fields)  # card fields must be JSON-serialisable
    b = GmmBackend.load(fields, tmp_path)
    s = b.score_windows([_voiced(rng), _buzz(rng), _voiced(rng, 0.5)])
    assert s.shape == (3,)
    assert s[1] > 0 > s[0] and s[2] < 0
    # a tampered weights file is refused
    (tmp_path / fields["file"]).write_bytes(b"not a zip")
    with pytest.raises(ValueError):
        GmmBackend.load(fields, tmp_path)
    with pytest.raises(ValueError):
        GmmBackend.load({**fields, "sha256": None}, tmp_path)


@pytest.mark.parametrize("cfg", [LfccConfig(statics=False), LfccConfig(cms=True), LfccConfig(f_min=2000.0)])
def test_train_gmm_feature_options_round_trip(tmp_path, cfg: LfccConfig) -> None:
    rng = np.random.default_rng(2)
    items = [(_voiced(rng), 0) for _ in range(6)] + [(_buzz(rng), 1) for _ in range(6)]
    fields = train_gmm(items, tmp_path, seed=0, n_components=4, max_iter=10, features=cfg)
    fields = json.loads(json.dumps(fields))  # as read back from card.json
    b = GmmBackend.load(fields, tmp_path)
    assert b.features == cfg and b.bonafide.dim == cfg.dim
    x = _voiced(rng)
    # silent-frame dropping reads c0 before the statics are centred or dropped
    quiet = np.concatenate([np.zeros(8000, dtype=np.float32), x])
    assert b.frames_of(quiet).shape[0] == b.frames_of(x).shape[0] + 1  # one frame straddles the edge
    s = b.score_windows([x, _buzz(rng)])
    assert s[1] > 0 > s[0]


def test_train_gmm_needs_both_labels(tmp_path) -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="spoof"):
        train_gmm([(_voiced(rng), 0)], tmp_path, n_components=2)
    with pytest.raises(ValueError, match="label"):
        train_gmm([(_voiced(rng), 2)], tmp_path, n_components=2)


def test_too_short_window_raises() -> None:
    g = DiagGmm(np.ones(1), np.zeros((1, 60)), np.ones((1, 60)))
    b = GmmBackend(g, g)
    with pytest.raises(ValueError, match="no frames"):
        b.score_windows([np.zeros(100, dtype=np.float32)])


def test_digital_silence_frames_are_dropped_in_scoring() -> None:
    g = DiagGmm(np.ones(1), np.zeros((1, 60)), np.ones((1, 60)))
    b = GmmBackend(g, g)
    t = np.arange(16000) / 16000
    x = np.concatenate([0.3 * np.sin(2 * np.pi * 440 * t), np.zeros(16000)]).astype(np.float32)
    n_all = GmmBackend(g, g, drop_below_db=None).frames_of(x).shape[0]
    n_kept = b.frames_of(x).shape[0]
    assert n_all == 199 and 95 <= n_kept <= 102  # the silent second (~100 frames) is gone
