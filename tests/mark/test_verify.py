"""Verifier: label + watermark + detector evidence → one verdict per file; CLI exit codes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxwarden.detect.result import ScanResult
from voxwarden.mark.metadata import AigcLabel, LabelKey, read_label, write_label
from voxwarden.mark.verify import Verdict, Verifier

SR = 16000


def _audio(path: Path, seed: int = 0, seconds: float = 1.0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    ph = 2 * np.pi * np.cumsum(130 + 15 * np.sin(2 * np.pi * 3 * t)) / SR
    x = 0.2 * sum(np.sin(k * ph) / k for k in range(1, 6)) + 0.005 * rng.standard_normal(len(t))
    sf.write(str(path), x.astype(np.float32), SR)
    return path


@dataclass
class FakeDetector:
    """Stands in for voxwarden.detect.Detector: a fixed decision per file name, recorded calls."""

    synthetic: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def scan(self, path: str) -> ScanResult:
        self.calls.append(path)
        syn = Path(path).name in self.synthetic
        return ScanResult(path=path, score=2.0 if syn else -2.0, probability=0.9 if syn else 0.1,
                          decision="synthetic" if syn else "bonafide", model="fake")


@dataclass
class FakeMark:
    present: bool
    payload: bytes | None
    confidence: float = 0.99
    spans: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class FakeMarker:
    """Stands in for voxwarden.mark.Marker: marks chosen by file name."""

    marks: dict[str, bytes] = field(default_factory=dict)

    def detect_file(self, path: str) -> FakeMark:
        p = self.marks.get(Path(path).name)
        return FakeMark(True, p, 0.99, [(0.0, 1.0)]) if p is not None else FakeMark(False, None, 0.1)


@pytest.fixture(scope="module")
def key() -> LabelKey:
    return LabelKey.generate()


def _label() -> AigcLabel:
    return AigcLabel(label="1", content_producer="acme", produce_id="clip-7")


def test_valid_signed_label_is_labelled_ai(tmp_path: Path, key: LabelKey) -> None:
    p = _audio(tmp_path / "a.wav")
    write_label(p, _label(), key=key)
    det = FakeDetector(synthetic={"a.wav"})
    v = Verifier(detector=det, marker=FakeMarker(), key=key.public_key()).verify(p)
    assert v.verdict == "labelled-ai" and v.signature_valid is True and not v.flagged
    assert v.label is not None and v.label["ProduceID"] == "clip-7"
    assert det.calls == []  # a valid label settles it; the detector is not needed


def test_label_copied_to_other_audio_is_mismatch(tmp_path: Path, key: LabelKey) -> None:
    a, b = _audio(tmp_path / "a.wav", 1), _audio(tmp_path / "b.wav", 2)
    write_label(a, _label(), key=key)
    lab = read_label(a).label
    assert lab is not None
    write_label(b, lab)
    v = Verifier(detector=FakeDetector(), marker=FakeMarker()).verify(b)
    assert v.verdict == "label-mismatch" and v.signature_valid is False and v.flagged
    assert any("audio differs" in r for r in v.reasons)


def test_untrusted_signer_is_mismatch_when_keys_given(tmp_path: Path, key: LabelKey) -> None:
    p = _audio(tmp_path / "a.wav")
    write_label(p, _label(), key=LabelKey.generate())  # someone else's key
    assert Verifier(marker=FakeMarker(), detector=FakeDetector()).verify(p).verdict == "labelled-ai"
    v = Verifier(marker=FakeMarker(), detector=FakeDetector(), key=key.public_key()).verify(p)
    assert v.verdict == "label-mismatch"


def test_unlabelled_synthetic_is_suspected(tmp_path: Path) -> None:
    p = _audio(tmp_path / "fake.wav")
    v = Verifier(detector=FakeDetector(synthetic={"fake.wav"}), marker=FakeMarker()).verify(p)
    assert v.verdict == "unlabelled-suspected-ai" and v.flagged
    assert v.detector is not None and v.detector["probability"] == 0.9


def test_unlabelled_bonafide_is_no_evidence(tmp_path: Path) -> None:
    p = _audio(tmp_path / "real.wav")
    v = Verifier(detector=FakeDetector(), marker=FakeMarker()).verify(p)
    assert v.verdict == "no-evidence" and not v.flagged and v.error is None
    assert v.watermark == {"present": False, "payload": None, "confidence": 0.1, "spans": []}


def test_watermark_alone_is_labelled_ai(tmp_path: Path) -> None:
    p = _audio(tmp_path / "wm.wav")
    v = Verifier(detector=FakeDetector(), marker=FakeMarker({"wm.wav": b"\x01\x02\x03\x04"})).verify(p)
    assert v.verdict == "labelled-ai" and v.watermark is not None and v.watermark["payload"] == "01020304"


def test_label_and_watermark_payload(tmp_path: Path, key: LabelKey) -> None:
    from voxwarden.mark.keys import payload_from_ids

    p = _audio(tmp_path / "a.wav")
    write_label(p, _label(), key=key)
    good = payload_from_ids("acme", "clip-7")
    v = Verifier(detector=FakeDetector(), marker=FakeMarker({"a.wav": good})).verify(p)
    assert v.verdict == "labelled-ai" and any("matches label ids" in r for r in v.reasons)
    v = Verifier(detector=FakeDetector(), marker=FakeMarker({"a.wav": b"\xde\xad\xbe\xef"})).verify(p)
    assert v.verdict == "label-mismatch" and any("does not match" in r for r in v.reasons)


def test_malformed_and_nonstandard_labels_are_mismatch(tmp_path: Path) -> None:
    from mutagen.flac import FLAC

    p = tmp_path / "a.flac"
    sf.write(str(p), np.zeros(SR, np.float32) + 0.01, SR)
    f = FLAC(str(p))
    f["AIGC"] = ["{broken"]
    f.save()
    assert Verifier(detector=FakeDetector(), marker=FakeMarker()).verify(p).verdict == "label-mismatch"
    write_label(p, AigcLabel(label="0", content_producer="x"))
    v = Verifier(detector=FakeDetector(), marker=FakeMarker()).verify(p)
    assert v.verdict == "label-mismatch" and "not one defined" in " ".join(v.reasons)


def test_unsigned_label_is_labelled_with_reason(tmp_path: Path) -> None:
    p = _audio(tmp_path / "a.wav")
    write_label(p, _label())
    v = Verifier(detector=FakeDetector(), marker=FakeMarker()).verify(p)
    assert v.verdict == "labelled-ai" and v.signature_valid is None
    assert any("not signed" in r for r in v.reasons)


def test_bad_inputs_do_not_stop_the_batch(tmp_path: Path) -> None:
    (tmp_path / "text.wav").write_text("not audio\n" * 30)
    (tmp_path / "empty.mp3").write_bytes(b"")
    good = _audio(tmp_path / "good.wav")
    vs = Verifier(detector=FakeDetector(), marker=FakeMarker()).verify_many(
        [tmp_path / "missing.wav", tmp_path / "text.wav", tmp_path / "empty.mp3", tmp_path, good])
    assert [v.verdict for v in vs] == ["error", "error", "error", "error", "no-evidence"]
    assert [v.error["type"] for v in vs[:4]] == ["unreadable", "not_media", "empty_file", "unreadable"]
    assert all(isinstance(v, Verdict) and v.reasons for v in vs)


def test_detector_and_marker_failures_are_reasons(tmp_path: Path) -> None:
    class Broken:
        def scan(self, path: str) -> ScanResult:
            raise RuntimeError("model exploded")

        def detect_file(self, path: str) -> None:
            raise RuntimeError("marker exploded")

    p = _audio(tmp_path / "a.wav")
    v = Verifier(detector=Broken(), marker=Broken()).verify(p)
    assert v.verdict == "no-evidence" and v.error is None
    text = " ".join(v.reasons)
    assert "model exploded" in text and "marker exploded" in text


def test_detector_unavailable_gives_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import voxwarden.detect as detect_pkg

    def no_model(*a: object, **k: object) -> None:
        raise detect_pkg.ModelError("no packaged model")

    monkeypatch.setattr(detect_pkg.Detector, "load", classmethod(lambda cls, *a, **k: no_model()))
    p = _audio(tmp_path / "a.wav")
    v = Verifier(marker=FakeMarker()).verify(p)
    assert v.verdict == "no-evidence" and any("detector unavailable" in r for r in v.reasons)
    v2 = Verifier(marker=FakeMarker(), use_detector=False).verify(p)
    assert any("switched off" in r for r in v2.reasons)


def test_real_watermark_when_available(tmp_path: Path, key: LabelKey) -> None:
    wm = pytest.importorskip("voxwarden.mark.watermark")
    from voxwarden.mark.keys import payload_from_ids

    marker = wm.Marker(key=b"k" * 32)
    rng = np.random.default_rng(3)
    t = np.arange(3 * SR) / SR
    x = 0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    x = x + 0.05 * rng.standard_normal(len(t))
    y = marker.embed(x.astype(np.float32), SR, payload=payload_from_ids("acme", "clip-7"))
    p = tmp_path / "marked.wav"
    sf.write(str(p), y, SR)
    try:
        marker.detect_file(p)
    except ImportError as e:  # the watermark's file I/O has not landed yet
        pytest.skip(f"watermark detect_file unavailable: {e}")
    v = Verifier(detector=FakeDetector(), marker=marker).verify(p)
    assert v.watermark is not None and v.watermark["present"], v.reasons
    assert v.verdict == "labelled-ai"
    write_label(p, AigcLabel(content_producer="acme", produce_id="other-id"), key=key)
    assert Verifier(detector=FakeDetector(), marker=marker).verify(p).verdict == "label-mismatch"
    plain = _audio(tmp_path / "plain.wav")
    assert Verifier(detector=FakeDetector(), marker=marker).verify(plain).verdict == "no-evidence"


# ------------------------------------------------------------------------------------------------ CLI


def _cli():
    import typer

    from voxwarden.commands.label import label_app
    from voxwarden.commands.verify import verify_cmd

    app = typer.Typer()
    app.command("verify")(verify_cmd)
    app.add_typer(label_app, name="label")
    return app


def test_cli_verify_exit_codes_and_jsonl(tmp_path: Path, key: LabelKey) -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    app = _cli()
    k = tmp_path / "k.pem"
    assert runner.invoke(app, ["label", "keygen", str(k)]).exit_code == 0
    assert (tmp_path / "k.pem.pub").exists()
    a, b = _audio(tmp_path / "a.wav", 1), _audio(tmp_path / "b.wav", 2)
    res = runner.invoke(app, ["label", "write", str(a), "--producer", "acme", "--produce-id", "7",
                              "--key", str(k)])
    assert res.exit_code == 0, res.output
    pub = str(tmp_path / "k.pem.pub")

    res = runner.invoke(app, ["verify", str(a), "--format", "jsonl", "--key", pub, "--no-detector"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert rows[0]["verdict"] == "labelled-ai" and rows[0]["signature_valid"] is True

    lab = read_label(a).label
    assert lab is not None
    write_label(b, lab)  # copied label
    res = runner.invoke(app, ["verify", str(a), str(b), "-f", "jsonl", "--key", pub, "--no-detector"])
    assert res.exit_code == 1
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [r["verdict"] for r in rows] == ["labelled-ai", "label-mismatch"]

    res = runner.invoke(app, ["verify", str(tmp_path), "-f", "jsonl", "--no-detector"])  # a folder
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert res.exit_code == 1 and sorted(Path(r["path"]).name for r in rows) == ["a.wav", "b.wav"]

    res = runner.invoke(app, ["verify", str(a), str(tmp_path / "missing.wav"), "--no-detector"])
    assert res.exit_code == 2 and "labelled-ai" in res.stdout

    (tmp_path / "bad.key").write_text("nope")
    res = runner.invoke(app, ["verify", str(a), "--key", str(tmp_path / "bad.key")])
    assert res.exit_code == 3

    res = runner.invoke(app, ["label", "read", str(a), str(b), "--format", "json", "--key", pub])
    assert res.exit_code == 1
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [r["signature_valid"] for r in rows] == [True, False]
