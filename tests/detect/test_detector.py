"""The Detector with the packaged default model: files, arrays, errors, batches, calibration."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxwarden import Detector
from voxwarden.audio.errors import AudioError, EmptyFileError, NotMediaError, SilenceError, TooLongError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "audio"


@pytest.fixture(scope="module")
def det() -> Detector:
    return Detector.load()


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sp") / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(out),
                    "Please confirm the transfer of three thousand dollars to the new account today."],
                   check=True, capture_output=True)
    return out


def test_default_model_card_is_complete(det):
    raw = det.card.raw
    for key in ("name", "version", "kind", "file", "sha256", "calibration", "threshold", "training", "metrics", "date"):
        assert key in raw, key
    assert det.card.weights_path.stat().st_size <= 10 * 1024 * 1024


def test_score_file_gives_segments_and_calibrated_probability(det, speech):
    res = det.score(speech)
    assert res.ok and res.decision in ("synthetic", "bonafide")
    assert 0.0 <= res.probability <= 1.0
    assert res.segments and all(s.end > s.start for s in res.segments)
    assert res.probability == pytest.approx(float(det.calibrate(res.score)))
    assert (res.decision == "synthetic") == (res.probability >= det.threshold)
    assert res.model == det.model_id and res.aggregation == det.aggregation


def test_array_and_file_agree(det, speech):
    x, sr = sf.read(speech, dtype="float32")
    a = det.score(x, sr=sr)
    b = det.score(str(speech))
    assert a.score == pytest.approx(b.score, abs=1e-3)
    stereo = np.stack([x, x], axis=1)
    assert det.score(stereo, sr=sr).score == pytest.approx(a.score, abs=1e-3)


def test_decode_then_score_decoded_equals_score(det, speech):
    clip = det.decode(speech)
    assert clip.sr == det.card.sample_rate and clip.samples.ndim == 1
    a, b = det.score(speech), det.score_decoded(clip)
    assert a.score == b.score and [s.score for s in a.segments] == [s.score for s in b.segments]
    assert b.source == a.source  # the decoded clip keeps the file's metadata (codec, rate, duration)
    noisy = Detector.load(degrade="noise:10db")  # score_decoded applies the degrade option as score does
    assert noisy.score_decoded(noisy.decode(speech)).score == pytest.approx(noisy.score(speech).score)
    assert noisy.score_decoded(clip).score != pytest.approx(a.score, abs=1e-6)


def test_array_needs_sr_and_finite_values(det):
    with pytest.raises(ValueError):
        det.score(np.zeros(16000, dtype=np.float32))
    bad = np.full(32000, np.nan, dtype=np.float32)
    with pytest.raises(AudioError):
        det.score(bad, sr=16000)


def test_bad_inputs_raise_typed_errors(det, tmp_path):
    empty = tmp_path / "e.wav"
    empty.write_bytes(b"")
    with pytest.raises(EmptyFileError):
        det.score(empty)
    text = tmp_path / "t.mp3"
    text.write_text("this is not audio at all " * 20)
    with pytest.raises(NotMediaError):
        det.score(text)
    silent = tmp_path / "s.wav"
    sf.write(silent, np.zeros(16000 * 3, dtype=np.float32), 16000)
    with pytest.raises(SilenceError):
        det.score(silent)
    short = Detector.load(max_duration=1.0)
    with pytest.raises(TooLongError):
        short.score(silent)


def test_score_many_keeps_order_and_goes_on_after_errors(det, speech, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    paths = [str(speech), str(bad), str(tmp_path / "missing.flac"), str(speech)]
    seen = []
    res = det.score_many(paths, progress=lambda done, total, r: seen.append((done, total)))
    assert [r.path for r in res] == paths
    assert res[0].ok and res[3].ok and res[0].score == pytest.approx(res[3].score)
    assert res[1].error["type"] in ("corrupt_media", "not_media")
    assert res[2].error["type"] == "unreadable"
    assert seen[-1] == (4, 4)
    json.dumps([r.to_dict() for r in res])  # the JSON contract serialises


def test_score_many_in_worker_processes_matches_serial(det, speech, tmp_path):
    paths = [str(speech), str(tmp_path / "missing.wav"), str(EXAMPLES / "human-allison-prompt.flac")]
    serial = det.score_many(paths, jobs=1)
    parallel = det.score_many(paths, jobs=2)
    assert [r.path for r in parallel] == paths
    for a, b in zip(serial, parallel, strict=True):
        assert (a.error is None) == (b.error is None)
        if a.ok:
            assert a.score == pytest.approx(b.score, abs=1e-6)


def test_threshold_option_changes_only_the_decision(speech):
    lo = Detector.load(threshold=0.001).score(speech)
    hi = Detector.load(threshold=0.999).score(speech)
    assert lo.score == pytest.approx(hi.score)
    assert lo.decision == "synthetic"
    assert (hi.decision == "synthetic") == (hi.probability >= 0.999)
