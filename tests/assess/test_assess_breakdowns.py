"""Detection breakdowns: per spoof system, per codec degradation and per clip length, miss/false alarm at
the deployed threshold plus EER, and DET curves per breakdown. Clips made here with espeak-ng."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from voxwarden.assess.config import AssessConfigError, DetectionConfig, load_config
from voxwarden.assess.measure import breakdown, bucket_labels, length_bucket, measure_detection, plot_det_groups
from voxwarden.detect.evaluate import EvalRecord


def test_length_buckets() -> None:
    edges = [2.0, 4.0, 8.0]
    assert bucket_labels(edges) == ["<2 s", "2-4 s", "4-8 s", ">=8 s"]
    assert [length_bucket(d, edges) for d in (0.5, 2.0, 3.99, 4.0, 7.9, 8.0, 60.0)] == [
        "<2 s", "2-4 s", "2-4 s", "4-8 s", "4-8 s", ">=8 s", ">=8 s"]
    assert bucket_labels([3.0]) == ["<3 s", ">=3 s"]


def test_breakdown_rates_at_threshold() -> None:
    recs = [EvalRecord("b1", "bonafide", "", 0.1), EvalRecord("b2", "bonafide", "", 0.7),
            EvalRecord("s1", "spoof", "x", 0.9), EvalRecord("s2", "spoof", "x", 0.4),
            EvalRecord("s3", "spoof", "x", 0.8), EvalRecord("bad", "spoof", "x", None, error="boom")]
    b = breakdown(recs, 0.5)
    assert (b["n_bonafide"], b["n_spoof"], b["n_failed"]) == (2, 3, 1)
    assert b["miss_rate"] == pytest.approx(1 / 3) and b["fa_rate"] == pytest.approx(1 / 2)
    assert 0.0 < b["eer"] < 0.6
    only_bona = breakdown(recs[:2], 0.5)
    assert only_bona["eer"] is None and only_bona["miss_rate"] is None and only_bona["fa_rate"] == 0.5


def test_det_groups_chart(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    groups = {"none": (rng.normal(0, 1, 50), rng.normal(2, 1, 50)), "mp3:64k": (rng.normal(0, 1, 50),
                                                                                 rng.normal(1, 1, 50))}
    assert plot_det_groups(groups, tmp_path / "d.png", "DET", {"none": (0.1, 0.2)})
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    assert not plot_det_groups({"x": (np.array([0.1]), np.array([]))}, tmp_path / "e.png", "DET")
    assert not (tmp_path / "e.png").exists()


def _espeak(path: Path, text: str, voice: str) -> None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed")
    subprocess.run([exe, "-v", voice, "-w", str(path), text], capture_output=True, timeout=30, check=True)


def test_measure_detection_breakdowns(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    audio = tmp_path / "clips"
    audio.mkdir()
    _espeak(audio / "short.wav", "Hello there, friend.", "en-us")  # ~1.5 s
    _espeak(audio / "long.wav", "This longer sentence is spoken so that the clip lasts well over five seconds, "
                                "which puts it into another length bucket.", "en-gb")
    shutil.copy(repo / "examples" / "audio" / "human-allison-prompt.flac", audio / "human.flac")
    (audio / "p.tsv").write_text("file\tlabel\tsystem\nhuman.flac\tbonafide\t\nshort.wav\tspoof\tespeak-a\n"
                                 "long.wav\tspoof\tespeak-b\n", encoding="utf-8")
    cfg = DetectionConfig(protocol=audio / "p.tsv", audio_dir=audio, threshold=0.5, eval_dataset="t",
                          degradations=["mp3:64k", "opus:16k"], length_buckets=[2.0, 4.0, 8.0])
    m = measure_detection(cfg, tmp_path / "out")
    f = m.figures
    assert set(f["per_system"]) == {"espeak-a", "espeak-b"}
    assert list(f["per_condition"]) == ["none", "mp3:64k", "opus:16k"]
    for c in f["per_condition"].values():
        assert c["n_bonafide"] + c["n_spoof"] + c["n_failed"] == 3
    assert f["per_condition"]["none"]["miss_rate"] == f["miss_rate"]
    assert f["per_condition"]["none"]["fa_rate"] == f["fa_rate"]
    lengths = f["per_length"]
    assert sum(b["n_bonafide"] + b["n_spoof"] + b["n_failed"] for b in lengths.values()) == 3
    assert set(lengths) <= set(bucket_labels([2.0, 4.0, 8.0])) and len(lengths) >= 2
    assert f["worst_degraded_eer"] is None or 0.0 <= f["worst_degraded_eer"] <= 1.0
    assert {"detection_det", "detection_det_codec"} <= set(m.charts)
    for p in m.charts.values():
        assert p.read_bytes()[:4] == b"\x89PNG"


def test_detection_breakdown_config(tmp_path: Path) -> None:
    (tmp_path / "p.tsv").write_text("file\tlabel\tsystem\na.wav\tbonafide\t\n", encoding="utf-8")
    base = "platform: {name: x, features: [any]}\ndetection: {protocol: p.tsv, %s}\n"
    p = tmp_path / "a.yaml"
    p.write_text(base % "degradations: [amr:12.2k, 'none'], length_buckets: [1, 3]", encoding="utf-8")
    c = load_config(p)
    assert c.detection is not None
    assert c.detection.degradations == ["amr:12.2k", "none"] and c.detection.length_buckets == [1.0, 3.0]
    p.write_text(base % "model: x", encoding="utf-8")
    c = load_config(p)
    assert c.detection is not None
    assert c.detection.degradations == ["mp3:64k", "opus:16k"] and c.detection.length_buckets == [2.0, 4.0, 8.0]
    for bad, needle in (("degradations: ['warp:9']", "detection.degradations"),
                        ("degradations: mp3", "detection.degradations"),
                        ("length_buckets: [4, 2]", "detection.length_buckets"),
                        ("length_buckets: [0]", "detection.length_buckets")):
        p.write_text(base % bad, encoding="utf-8")
        with pytest.raises(AssessConfigError, match=re.escape(needle)):
            load_config(p)
