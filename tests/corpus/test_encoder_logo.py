"""recipes/encoder_logo.py: the frozen-encoder probe (pooling, logistic regression, folds, eval, bad input), end
to end on a toy corpus with a stand-in encoder (the real encoders are recipe-only installs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _recipes import load_recipe
from _toy_corpus import espeak_corpus

TEXTS = ["please call me back when you get this message", "we will meet at the station at seven tonight",
         "my account number has changed since last week"]

enc = load_recipe("encoder_logo")


def _band_frames() -> object:
    """Stand-in encoder: log energies of 16 linear bands per 32 ms frame (what a phase vocoder smears)."""

    def frames(wav: np.ndarray) -> np.ndarray:
        n = len(wav) // 512
        spec = np.abs(np.fft.rfft(wav[: n * 512].reshape(n, 512) * np.hanning(512), axis=1)) ** 2
        return np.log(spec[:, :256].reshape(n, 16, 16).sum(axis=2) + 1e-9)

    return frames


@pytest.fixture(autouse=True)
def fake_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(enc.ENCODERS, "bands", _band_frames)  # worker processes fork with it


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("encoder-logo")
    espeak_corpus(root, TEXTS, n_speakers=8, n_val=2, systems={"pv512": 512, "pv128": 128})
    return root


def test_pool_is_mean_and_std_over_time() -> None:
    f = np.array([[1.0, 2.0], [3.0, 6.0]])
    assert np.allclose(enc.pool(f), [2.0, 4.0, 1.0, 2.0])
    assert enc.pool(np.array([5.0, 7.0])).shape == (4,)  # one frame: std 0, no error


def test_logreg_separates_what_is_separable_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x[:, 2] + 0.1 * rng.normal(size=200) > 0).astype(float)
    score = enc.fit_logreg(x[:100], y[:100])
    acc = np.mean((score(x[100:]) > 0) == (y[100:] == 1))
    assert acc > 0.9
    noise = enc.fit_logreg(rng.normal(size=(100, 5)), rng.integers(0, 2, 100).astype(float))
    assert np.mean((noise(x[100:]) > 0) == (y[100:] == 1)) < 0.75  # labels unrelated to x: no skill
    with pytest.raises(ValueError):
        enc.fit_logreg(x[:10], np.zeros(10))


def test_folds_score_the_left_out_system(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "logo.json"
    cache = tmp_path / "feats.npz"
    assert enc.main([str(corpus), str(out), "--encoder", "bands", "--jobs", "2", "--cache", str(cache)]) == 0
    data = json.loads(out.read_text())
    folds = {f["system"]: f for f in data["folds"]}
    assert set(folds) == {"pv128", "pv512"}
    assert folds["pv128"]["n_spoof"] == 24 and folds["pv128"]["n_bonafide"] == 6
    assert all(f["eer"] < 0.35 for f in folds.values())  # random phases are far from espeak's clean pulses
    assert cache.exists()
    # a second run reads every vector from the cache: the same figures
    assert enc.main([str(corpus), str(out), "--encoder", "bands", "--cache", str(cache)]) == 0
    again = json.loads(out.read_text())["folds"]
    cache.write_bytes(b"damaged")  # a broken cache is recomputed, not a crash
    assert enc.main([str(corpus), str(out), "--encoder", "bands", "--cache", str(cache)]) == 0
    assert json.loads(out.read_text())["folds"][0]["eer"] == data["folds"][0]["eer"]
    assert [(f["system"], f["eer"], f["n_spoof"]) for f in again] == [
        (f["system"], f["eer"], f["n_spoof"]) for f in data["folds"]]


def test_eval_trains_on_train_and_scores_another_protocol(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    assert enc.main([str(corpus), str(out), "--encoder", "bands", "--eval", str(corpus / "protocol.tsv"),
                     "--eval-audio", str(corpus / "audio")]) == 0
    data = json.loads(out.read_text())
    assert set(data["eer"]) == {"overall", "pv128", "pv512"} and data["eer"]["overall"] < 0.2
    assert enc.main([str(corpus), str(out), "--encoder", "bands", "--eval", str(corpus / "protocol.tsv"),
                     "--eval-audio", str(tmp_path / "empty")]) == 2  # nothing to score: a clear error
    scores = out.with_suffix(".scores.tsv").read_text().splitlines()
    assert scores[0] == "file\tlabel\tsystem\tscore" and len(scores) == 1 + data["n_scored"]


def test_bad_clips_are_skipped_and_bad_input_is_refused(corpus: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    (bad / "audio").mkdir(parents=True)
    for p in (corpus / "audio").iterdir():
        (bad / "audio" / p.name).write_bytes(p.read_bytes())
    (bad / "protocol.tsv").write_text((corpus / "protocol.tsv").read_text())
    victim = sorted((bad / "audio").iterdir())[0]
    victim.write_bytes(b"not audio at all")
    feats = enc.features(sorted((bad / "audio").iterdir()), "bands")
    assert str(victim) not in feats and len(feats) == len(list((bad / "audio").iterdir())) - 1
    out = tmp_path / "o.json"
    assert enc.main([str(bad), str(out), "--encoder", "bands"]) == 0  # the run goes on without it
    assert enc.main([str(corpus), str(out), "--encoder", "bands", "--systems", "kokor"]) == 2
    assert enc.main([str(tmp_path / "none"), str(out), "--encoder", "bands"]) == 2
    nosplit = tmp_path / "nosplit"
    nosplit.mkdir()
    (nosplit / "audio").symlink_to(corpus / "audio")
    lines = (corpus / "protocol.tsv").read_text().splitlines()
    (nosplit / "protocol.tsv").write_text("\n".join(line.replace("\tval", "\ttrain") for line in lines) + "\n")
    assert enc.main([str(nosplit), str(out), "--encoder", "bands"]) == 2  # no val bona fide to score against
    with pytest.raises(SystemExit):
        enc.main([str(corpus), str(out), "--encoder", "wav2vec2"])  # not an encoder
