"""OnnxBackend: loading a card directory, grouping by length, bad inputs, bad models (no torch needed)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from voxwarden.detect.card import ModelError, load_card, packaged_models, sha256_file
from voxwarden.detect.onnx_backend import OnnxBackend

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def _toy_model(path: Path, factor: float = 100.0) -> None:
    """logit = mean(x^2) * 100 + length/1e5: depends on content and on length (catches padding)."""
    x = helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])
    y = helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch"])
    nodes = [
        helper.make_node("Mul", ["waveform", "waveform"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["ms", "hundred"], ["e"]),
        helper.make_node("Shape", ["waveform"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["n"], axis=0),
        helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["nf", "scale"], ["lenterm"]),
        helper.make_node("Add", ["e", "lenterm"], ["logit"]),
    ]
    inits = [
        helper.make_tensor("hundred", TensorProto.FLOAT, [], [factor]),
        helper.make_tensor("one", TensorProto.INT64, [], [1]),
        helper.make_tensor("scale", TensorProto.FLOAT, [], [1e5]),
    ]
    graph = helper.make_graph(nodes, "toy", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _expected(w: np.ndarray) -> float:
    return float(np.mean(w.astype(np.float64) ** 2) * 100 + len(w) / 1e5)


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    _toy_model(tmp_path / "model.onnx")
    card = {
        "name": "toy",
        "version": "0",
        "kind": "onnx",
        "file": "model.onnx",
        "sha256": sha256_file(tmp_path / "model.onnx"),
        "sample_rate": 16000,
        "window": 4.0,
        "hop": 2.0,
        "calibration": {"a": 1.0, "b": 0.0},
        "threshold": 0.5,
        "aggregation": "mean",
    }
    (tmp_path / "card.json").write_text(json.dumps(card))
    return tmp_path


def test_scores_group_by_length_without_padding(model_dir: Path) -> None:
    be = OnnxBackend.load(json.loads((model_dir / "card.json").read_text()), model_dir)
    rng = np.random.default_rng(0)
    lens = [8000, 32000, 64000, 8000, 64000, 12345, 32000]
    wins = [(rng.standard_normal(n) * rng.uniform(0.01, 0.5)).astype(np.float32) for n in lens]
    got = be.score_windows(wins)
    assert got.dtype == np.float32 and got.shape == (len(wins),)
    for g, w in zip(got, wins, strict=True):
        assert g == pytest.approx(_expected(w), rel=1e-4)


def test_empty_list(model_dir: Path) -> None:
    be = OnnxBackend.load({"file": "model.onnx"}, model_dir)
    assert be.score_windows([]).shape == (0,)


def test_session_is_shared_per_process(model_dir: Path) -> None:
    a = OnnxBackend.load({"file": "model.onnx"}, model_dir)
    b = OnnxBackend.load({"file": "model.onnx"}, model_dir)
    assert a.session is b.session
    c = OnnxBackend.load({"file": "model.onnx"}, model_dir, threads=2)
    assert c.session is not a.session


def test_model_rewritten_at_the_same_path_gets_a_new_session(model_dir: Path) -> None:
    w = [np.full(8000, 0.5, np.float32)]
    before = OnnxBackend.load({"file": "model.onnx"}, model_dir).score_windows(w)[0]
    st = (model_dir / "model.onnx").stat()
    _toy_model(model_dir / "model.onnx", factor=300.0)  # a retrain into the same folder
    os.utime(model_dir / "model.onnx", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    after = OnnxBackend.load({"file": "model.onnx"}, model_dir).score_windows(w)[0]
    assert before == pytest.approx(25.0 + 0.08, rel=1e-4)
    assert after == pytest.approx(75.0 + 0.08, rel=1e-4)
    from voxwarden.detect import onnx_backend

    path = str((model_dir / "model.onnx").resolve())
    assert sum(1 for k in onnx_backend._SESSIONS if k[0] == path) == 1  # the stale session was dropped


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 8000), np.float32), np.zeros(100, np.float32), np.full(8000, np.nan, np.float32)],
)
def test_bad_windows_raise_value_error(model_dir: Path, bad: np.ndarray) -> None:
    be = OnnxBackend.load({"file": "model.onnx"}, model_dir)
    with pytest.raises(ValueError):
        be.score_windows([np.zeros(8000, np.float32), bad])


def test_missing_and_garbage_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        OnnxBackend.load({"file": "model.onnx"}, tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"\x00not an onnx graph" * 10)
    with pytest.raises(ModelError):
        OnnxBackend.load({"file": "model.onnx"}, tmp_path)
    with pytest.raises(ModelError):
        OnnxBackend.load({"file": "../model.onnx"}, tmp_path)


def test_loads_through_card_registry(model_dir: Path) -> None:
    from voxwarden.detect.backends import load_backend

    be = load_backend(load_card(model_dir))
    w = np.full(16000, 0.1, np.float32)
    assert be.score_windows([w])[0] == pytest.approx(_expected(w), rel=1e-4)


@pytest.mark.skipif("default" not in packaged_models(), reason="default model not packaged yet")
def test_packaged_default_model_scores_variable_lengths() -> None:
    from voxwarden.detect.backends import load_backend

    card = load_card("default")
    assert card.kind == "onnx"
    assert card.weights_path.stat().st_size <= 10 * 1024 * 1024
    be = load_backend(card)
    rng = np.random.default_rng(1)
    wins = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (8000, 32000, 64000)]
    s = be.score_windows(wins)
    assert s.shape == (3,) and np.all(np.isfinite(s))
    # level does not matter: the graph normalises each window
    s2 = be.score_windows([w * 0.01 for w in wins])
    np.testing.assert_allclose(s, s2, atol=1e-3)


def _espeak_clip() -> np.ndarray:
    """~5 s of espeak-ng speech at 16 kHz with silence around it (made on the fly)."""
    import io
    import shutil
    import subprocess

    import soundfile as sf

    from voxwarden.audio import resample

    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed")
    text = "The quick brown fox jumps over the lazy dog, and then it runs far away into the woods."
    wav = subprocess.run([exe, "--stdout", text], check=True, capture_output=True, timeout=60).stdout
    x, sr = sf.read(io.BytesIO(wav), dtype="float32")
    z = np.zeros(8000, np.float32)
    return np.concatenate([z, resample(x, int(sr), 16000), z])


@pytest.mark.skipif("default" not in packaged_models(), reason="default model not packaged yet")
def test_default_model_scores_pinned_to_one_batch_run() -> None:
    """Detector.load().score(espeak clip) equals scoring all its windows in ONE session run (the old
    batching) within 1e-5: the per-run batch size is a speed knob, never a change of scores."""
    from voxwarden import audio
    from voxwarden.detect import Detector

    x = _espeak_clip()
    det = Detector.load()
    res = det.score(x, sr=16000)
    assert len(res.segments) >= 2  # several 4 s / 2 s windows, so batching matters
    wins = audio.windows(x, 16000, audio.speech_regions(x, 16000), win=det.card.window, hop=det.card.hop)
    np.testing.assert_allclose([(w.start, w.end) for w in wins], [(s.start, s.end) for s in res.segments],
                               atol=1e-6)
    be = det.backend
    groups: dict[int, list[int]] = {}
    for i, w in enumerate(wins):
        groups.setdefault(len(w.samples), []).append(i)
    ref = np.empty(len(wins), np.float64)
    for idx in groups.values():
        batch = np.stack([np.asarray(wins[i].samples, np.float32) for i in idx])
        ref[idx] = be.session.run(None, {be.input_name: batch})[0].reshape(-1)
    np.testing.assert_allclose([s.score for s in res.segments], ref, atol=1e-5)
    from voxwarden.detect.aggregate import aggregate

    lengths = np.array([w.end - w.start for w in wins])
    assert res.score == pytest.approx(float(aggregate(ref, det.aggregation, weights=lengths)), abs=1e-5)
