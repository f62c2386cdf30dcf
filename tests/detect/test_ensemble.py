"""Seed ensembles: merged ONNX graph = mean of its members; refusals; the CLI makes a calibrated model."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from _toy_corpus import espeak_corpus  # noqa: E402
from voxwarden.detect.card import ModelError  # noqa: E402
from voxwarden.detect.ensemble import ensemble_fields, main, merge_onnx  # noqa: E402
from voxwarden.detect.neural import NeuralConfig, build_model, export_onnx  # noqa: E402
from voxwarden.detect.onnx_backend import OnnxBackend  # noqa: E402

SR = 16000


def _member(root: Path, seed: int) -> Path:
    """An exported LCNN with its own random weights (untrained: members must merely differ)."""
    torch.manual_seed(seed)
    net = build_model(NeuralConfig(channels=(4, 8))).eval()
    root.mkdir(parents=True, exist_ok=True)
    export_onnx(net, root / "model.onnx")
    return root


def _windows(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(int(rng.integers(4000, 40000))) * 0.1).astype(np.float32) for _ in range(n)]


def test_merged_graph_outputs_the_members_mean(tmp_path: Path) -> None:
    a, b, c = (_member(tmp_path / f"m{s}", s) for s in (0, 1, 2))
    res = merge_onnx([a, b, c / "model.onnx"], tmp_path / "ens" / "model.onnx")
    assert res["max_abs_diff"] <= 1e-4 and len(res["members"]) == 3 and len(res["sha256"]) == 64
    w = _windows(6, 0)
    parts = [OnnxBackend.load({"file": "model.onnx"}, m).score_windows(w) for m in (a, b, c)]
    got = OnnxBackend.load({"file": "model.onnx"}, tmp_path / "ens").score_windows(w)
    assert not np.allclose(parts[0], parts[1])  # the members differ, so the mean is a real test
    np.testing.assert_allclose(got, np.mean(parts, axis=0), atol=1e-4)


def test_bad_members_are_refused_and_leave_no_file(tmp_path: Path) -> None:
    a = _member(tmp_path / "a", 0)
    out = tmp_path / "out" / "model.onnx"
    with pytest.raises(ValueError, match="at least two"):
        merge_onnx([a], out)
    with pytest.raises(ModelError, match="no model.onnx"):
        merge_onnx([a, tmp_path / "missing"], out)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "model.onnx").write_bytes(b"\x00not a model" * 50)
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        merge_onnx([a, junk], out)
    # a member from another opset cannot share the graph
    other = tmp_path / "other"
    other.mkdir()
    m = onnx.load(str(a / "model.onnx"))
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 13
    onnx.save(m, str(other / "model.onnx"))
    with pytest.raises(ModelError, match="opset"):
        merge_onnx([a, other], out)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # no half-written file


def test_a_merge_that_fails_its_check_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from voxwarden.detect import ensemble

    a, b = _member(tmp_path / "a", 0), _member(tmp_path / "b", 1)
    out = tmp_path / "e" / "model.onnx"
    out.parent.mkdir()
    out.write_bytes(b"previous model")
    monkeypatch.setattr(ensemble, "_check", lambda *_: 0.5)
    with pytest.raises(RuntimeError, match="differs from its members' mean"):
        merge_onnx([a, b], out)
    assert out.read_bytes() == b"previous model" and sorted(p.name for p in out.parent.iterdir()) == ["model.onnx"]


def test_fields_record_each_member(tmp_path: Path) -> None:
    a, b = _member(tmp_path / "a", 0), _member(tmp_path / "b", 1)
    (a / "card.json").write_text(json.dumps({"version": "0.9", "architecture": {"model": "lcnn", "parameters": 10},
                                             "training": {"seed": 0, "steps": 5}}))
    (b / "training.json").write_text(json.dumps({"architecture": {"model": "lcnn", "parameters": 12},
                                                 "training": {"seed": 1, "steps": 5}}))
    fields = ensemble_fields([a, b], tmp_path / "e")
    assert fields["training"]["seed"] == [0, 1]
    assert fields["architecture"]["parameters"] == 22 and fields["architecture"]["ensemble"]["members"] == 2
    assert [m["sha256"] for m in fields["training"]["ensemble_members"]] == [
        m["sha256"] for m in merge_onnx([a, b], tmp_path / "again.onnx")["members"]]
    on_disk = json.loads((tmp_path / "e" / "training.json").read_text())
    assert on_disk["sha256"] == fields["sha256"]


def test_cli_writes_a_calibrated_model_the_detector_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _member(tmp_path / "a", 0), _member(tmp_path / "b", 1)
    proto = espeak_corpus(tmp_path / "corpus", ["please call me back when you get this"], n_speakers=4, n_val=2,
                          systems={"pv512": 512})
    before = (a / "model.onnx").read_bytes()
    assert main([str(a), str(a), str(b)]) == 2  # OUT_DIR may not be a member
    assert main([str(a), str(a / "model.onnx"), str(b)]) == 2  # nor hold a member given as a file
    assert "must not hold a member's model.onnx" in capsys.readouterr().err
    assert (a / "model.onnx").read_bytes() == before
    assert main([str(tmp_path / "bad"), str(a)]) == 2  # one member is no ensemble
    assert main([str(tmp_path / "plain"), str(a), str(b)]) == 0
    assert (tmp_path / "plain" / "training.json").is_file() and not (tmp_path / "plain" / "card.json").exists()

    assert main([str(tmp_path / "model"), str(a), str(b), "--protocol", str(proto)]) == 0
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    assert card["architecture"]["ensemble"]["members"] == 2
    assert card["training"]["pretrained_from"] and card["training"]["seed"] == [None, None]
    assert "voxwarden.detect.ensemble" in card["training"]["command"]
    assert not (tmp_path / "model" / "training.json").exists()
    from voxwarden.detect import Detector

    res = Detector.load(tmp_path / "model").score(next((proto.parent / "audio").iterdir()))
    assert res.ok and res.decision in ("synthetic", "bonafide")
    cal = card["calibration"]
    assert res.probability == pytest.approx(1.0 / (1.0 + np.exp(-(cal["a"] * res.score + cal["b"]))), abs=1e-4)


def test_ensemble_logo_recipe_scores_members_and_merge_on_the_same_trials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from _recipes import load_recipe
    from voxwarden.detect.neural import left_out_eer, read_protocol, train_heldout

    rec = load_recipe("ensemble_logo")
    corpus = tmp_path / "corpus"
    espeak_corpus(corpus, ["please call me back when you get this"], n_speakers=4, n_val=2,
                  systems={"pv512": 512, "pv128": 128})
    for k in (0, 1):
        for s in ("pv512", "pv128"):
            _member(tmp_path / f"s{k}" / s, 10 * k + len(s))
    out = tmp_path / "ens.json"
    assert rec.main([str(corpus), str(out), "--folds", str(tmp_path / "s0"), str(tmp_path / "s1"),
                     "--systems", "pv512,pv128"]) == 0
    res = json.loads(out.read_text())
    items = read_protocol(corpus / "protocol.tsv")
    _, ho, _ = train_heldout(items, 0.2, 0)
    for s in ("pv512", "pv128"):
        row = res["systems"][s]
        assert row["members"] == [left_out_eer(tmp_path / f"s{k}" / s, items, ho, [s])[s] for k in (0, 1)]
        assert row["baseline"] == pytest.approx(sum(row["members"]) / 2, abs=1e-4)
        assert 0.0 <= row["ensemble"] <= 1.0
    assert "rule:" in capsys.readouterr().out
    # bad input: a missing fold, an unknown system, a corpus without protocol
    assert rec.main([str(corpus), str(out), "--folds", str(tmp_path / "s0"), str(tmp_path / "nope"),
                     "--systems", "pv512"]) == 2
    assert rec.main([str(corpus), str(out), "--folds", str(tmp_path / "s0"), str(tmp_path / "s1"),
                     "--systems", "pv999"]) == 2
    assert rec.main([str(tmp_path), str(out), "--folds", str(tmp_path / "s0"), str(tmp_path / "s1")]) == 2


def test_ensemble_logo_verdict_follows_the_rule() -> None:
    from _recipes import load_recipe

    verdict = load_recipe("ensemble_logo").verdict
    row = lambda b, e: {"baseline": b, "ensemble": e}  # noqa: E731
    assert verdict({"a": row(0.30, 0.27), "b": row(0.46, 0.45)})[0]  # mean 2 points lower, none worse
    assert not verdict({"a": row(0.30, 0.29), "b": row(0.46, 0.45)})[0]  # only 1 point lower
    ok, text = verdict({"a": row(0.30, 0.20), "b": row(0.46, 0.47)})
    assert not ok and "b" in text  # 5.5 points lower on average, but b is worse
