"""Silero VAD via onnxruntime: finds espeak-ng speech, not noise or silence; speech checks."""

from __future__ import annotations

import numpy as np
import pytest

from voxwarden import audio
from voxwarden.audio import vad


def _speech_seconds(regions: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in regions)


def test_finds_speech_between_silences(speech16k):
    regions = audio.speech_regions(speech16k, 16000)
    dur = len(speech16k) / 16000
    assert regions, "no speech found in espeak-ng speech"
    assert regions[0][0] > 0.6 and regions[-1][1] < dur - 0.6  # 1 s of silence each side
    assert _speech_seconds(regions) > 0.6 * (dur - 2.0)
    assert all(b > a for a, b in regions)
    assert all(r1[1] < r2[0] for r1, r2 in zip(regions, regions[1:], strict=False))


def test_no_speech_in_noise_silence_or_tone():
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32)
    assert audio.speech_regions(noise) == []
    assert audio.speech_regions(np.zeros(3 * 16000, np.float32)) == []
    assert audio.speech_regions(np.zeros(0, np.float32)) == []


def test_other_input_rates(speech16k):
    x8 = audio.resample(speech16k, 16000, 8000)
    r16 = audio.speech_regions(speech16k, 16000)
    r8 = audio.speech_regions(x8, 8000)
    assert r8 and abs(_speech_seconds(r8) - _speech_seconds(r16)) < 0.5


def test_probs_shape_and_range(speech16k):
    p = audio.speech_probs(speech16k)
    assert p.shape == (-(-len(speech16k) // 512),)
    assert p.dtype == np.float32 and p.min() >= 0 and p.max() <= 1
    assert p[:20].max() < 0.5 and p.max() > 0.9  # leading second is silence


def test_stream_in_pieces_equals_whole_clip(speech16k):
    """A live stream fed in odd-sized pieces gets exactly the probabilities of a file scan."""
    rng = np.random.default_rng(3)
    x = np.concatenate([speech16k] * 3)  # ~18 s: more than one model block
    whole = audio.speech_probs(x)
    stream = vad.VadStream()
    parts, i = [], 0
    while i < x.size:
        k = int(rng.integers(1, 9000))
        parts.append(stream.push(x[i : i + k]))
        i += k
    parts.append(stream.flush())
    got = np.concatenate(parts)
    assert got.shape == whole.shape and stream.frames == whole.size
    np.testing.assert_allclose(got, whole, atol=1e-5)
    assert stream.push(np.zeros(100, np.float32)).size == 0  # under one chunk: nothing yet


def test_postprocessing_rules():
    fs = vad.FRAME_SECONDS
    p = np.zeros(200, np.float32)
    p[10:40] = 0.9  # ~0.96 s speech
    p[42:60] = 0.9  # after a 64 ms pause: bridged (< min_silence)
    p[100:104] = 0.9  # 128 ms: dropped (< min_speech)
    p[150:170] = 0.9
    regs = vad.regions_from_probs(p, 200 * fs, pad=0.0)
    assert len(regs) == 2
    assert regs[0] == pytest.approx((10 * fs, 60 * fs), abs=1e-3)
    assert regs[1] == pytest.approx((150 * fs, 170 * fs), abs=1e-3)
    padded = vad.regions_from_probs(p, 200 * fs, pad=0.05)
    assert padded[0][0] == pytest.approx(10 * fs - 0.05, abs=1e-3)


def test_session_is_created_once():
    assert vad._get_session() is vad._get_session()


def test_check_speech_errors(speech16k):
    silent = audio.Clip(np.zeros(16000, np.float32), 16000)
    with pytest.raises(audio.SilenceError):
        audio.check_speech(silent, [])
    dither = audio.Clip((1e-5 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32), 16000)
    with pytest.raises(audio.SilenceError, match="dBFS"):
        audio.check_speech(dither, [(0.0, 1.0)])
    noise = audio.Clip((0.1 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32), 16000)
    with pytest.raises(audio.TooLittleSpeechError):
        audio.check_speech(noise, audio.speech_regions(noise.samples))
    clip = audio.Clip(speech16k, 16000)
    audio.check_speech(clip, audio.speech_regions(speech16k))  # enough speech: no error
    with pytest.raises(audio.TooLittleSpeechError, match="need 60 s"):
        audio.check_speech(clip, audio.speech_regions(speech16k), min_speech=60)


def test_too_little_speech_in_short_word(espeak):
    x, sr = espeak("a")
    y = np.concatenate([np.zeros(sr, np.float32), x[: int(0.3 * sr)], np.zeros(sr, np.float32)])
    clip = audio.Clip(y, sr)
    with pytest.raises(audio.TooLittleSpeechError):
        audio.check_speech(clip, audio.speech_regions(y, sr), min_speech=0.5)


def test_end_to_end_file(tmp_path, mk, speech16k):
    p = mk.encode_audio(tmp_path / "s.mp3", speech16k, 16000, "libmp3lame")
    clip = audio.load(p)
    regions = audio.speech_regions(clip.samples, clip.sr)
    audio.check_speech(clip, regions)
    ws = audio.windows(clip.samples, clip.sr, regions)
    assert ws and ws[0].start >= regions[0][0] - 1e-6 and ws[-1].end <= regions[-1][1] + 1e-3


def test_vendored_model_matches_its_recorded_digest():
    import hashlib
    from importlib import resources

    data_dir = resources.files("voxwarden.audio").joinpath("data")
    model = data_dir.joinpath(vad.MODEL_FILE).read_bytes()
    assert hashlib.sha256(model).hexdigest() == vad.MODEL_SHA256
    readme = data_dir.joinpath("README.md").read_text()
    assert vad.MODEL_SHA256 in readme and vad.MODEL_FILE in readme
    assert "MIT License" in data_dir.joinpath("LICENSE-silero-vad").read_text()
    run_model = data_dir.joinpath(vad.RUN_MODEL_FILE).read_bytes()
    assert hashlib.sha256(run_model).hexdigest() == vad.RUN_MODEL_SHA256


def _original_session():
    """A session on the vendored export exactly as shipped (1-D convolutions), for comparisons."""
    from importlib import resources

    import onnxruntime as ort

    data = resources.files("voxwarden.audio").joinpath("data").joinpath(vad.MODEL_FILE).read_bytes()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def _original_probs(x: np.ndarray) -> np.ndarray:
    """Whole clip in one run of the original export (the pre-speed-up behaviour)."""
    n = -(-x.size // vad.FRAME)
    padded = np.zeros(vad.CONTEXT + n * vad.FRAME, np.float32)
    padded[vad.CONTEXT : vad.CONTEXT + x.size] = x
    rows = np.lib.stride_tricks.sliding_window_view(padded, vad.CONTEXT + vad.FRAME)[:: vad.FRAME][:n]
    h = np.zeros((1, 1, 128), np.float32)
    probs = _original_session().run(None, {"input": np.ascontiguousarray(rows), "h": h, "c": h})[0]
    return np.asarray(probs, np.float32).reshape(-1)


def test_run_model_equals_original_export(speech16k):
    """The 2-D-convolution model gives the shipped export's probabilities and the same regions."""
    rng = np.random.default_rng(5)
    noisy = np.concatenate([speech16k, 0.05 * rng.standard_normal(40000).astype(np.float32), speech16k])
    x = np.concatenate([noisy] * 2)  # > one BLOCK, so the LSTM state crosses session calls
    ref = _original_probs(x)
    got = audio.speech_probs(x)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-5)
    dur = x.size / 16000
    assert audio.speech_regions(x) == vad.regions_from_probs(ref, dur)
    assert audio.speech_regions(x)  # and there is speech to compare


def test_derived_model_is_reproducible():
    """The vendored run model is exactly `conv1d_as_conv2d` of the shipped export (needs onnx)."""
    import hashlib
    from importlib import resources

    pytest.importorskip("onnx")
    data_dir = resources.files("voxwarden.audio").joinpath("data")
    made = vad.conv1d_as_conv2d(data_dir.joinpath(vad.MODEL_FILE).read_bytes())
    assert hashlib.sha256(made).hexdigest() == vad.RUN_MODEL_SHA256


def test_conv1d_as_conv2d_on_a_toy_graph():
    """Stride, padding, bias and a 1-D conv feeding another: same outputs after the rewrite."""
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((6, 3, 5)).astype(np.float32)
    b1 = rng.standard_normal(6).astype(np.float32)
    w2 = rng.standard_normal((4, 6, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], kernel_shape=[5], strides=[2], pads=[2, 1]),
        helper.make_node("Relu", ["y1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["y"], kernel_shape=[3], dilations=[2]),
    ]
    graph = helper.make_graph(
        nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, "t"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4, "u"])],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
                     numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    before = model.SerializeToString()
    after = vad.conv1d_as_conv2d(before)
    assert [n.op_type for n in onnx.load_from_string(after).graph.node].count("Conv") == 2
    x = rng.standard_normal((7, 3, 40)).astype(np.float32)
    ya = ort.InferenceSession(before, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    yb = ort.InferenceSession(after, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert ya.shape == yb.shape == (7, 4, 16)
    np.testing.assert_allclose(yb, ya, rtol=1e-5, atol=1e-5)


def test_rms_dbfs_matches_float64_reference():
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(200_001)).astype(np.float32)
    ref = 10 * np.log10(np.mean(x.astype(np.float64) ** 2))
    assert vad.rms_dbfs(x) == pytest.approx(ref, abs=1e-4)
    assert vad.rms_dbfs(np.zeros(10, np.float32)) == float("-inf")
    assert vad.rms_dbfs(np.zeros(0, np.float32)) == float("-inf")
    assert vad.rms_dbfs(np.full((4, 2), 0.5, np.float32)) == pytest.approx(20 * np.log10(0.5))
