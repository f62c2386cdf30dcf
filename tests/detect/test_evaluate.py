"""evaluate(): pooled and per-system metrics, failures, threshold rates, written artefacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voxwarden.detect.evaluate import EvalRecord, evaluate


def _records() -> list[EvalRecord]:
    recs = [EvalRecord(f"b{i}", "bonafide", "bonafide", s) for i, s in enumerate([0.1, 0.2, 0.3, 0.6])]
    recs += [EvalRecord("a1", "spoof", "A", 0.7), EvalRecord("a2", "spoof", "A", 0.8)]  # A beats all bona
    recs += [EvalRecord("c1", "spoof", "C", 0.4), EvalRecord("c2", "spoof", "C", 0.5)]
    recs += [EvalRecord("bad", "spoof", "C", None, error="corrupt_media: x"),
             EvalRecord("nan", "bonafide", "bonafide", float("nan"))]
    return recs


def test_summary_numbers(tmp_path: Path) -> None:
    s = evaluate(_records(), tmp_path, threshold=0.45, title="toy model · clean")
    # pooled = the hand-computed case of test_metrics: EER .25 at .5, minDCF .475
    assert s.eer == pytest.approx(0.25) and s.min_dcf == pytest.approx(0.475)
    assert (s.n_total, s.n_bonafide, s.n_spoof, s.n_failed) == (10, 4, 4, 2)
    assert {f["file"] for f in s.failed} == {"bad", "nan"}
    # system A (0.7, 0.8) vs bona (max 0.6): perfectly separated
    assert s.per_system["A"]["eer"] == 0.0 and s.per_system["A"]["n"] == 2
    # system C (0.4, 0.5) vs bona: t=.4: miss 0, fa .25; t=.5: miss .5, fa .25 -> |diff| smallest at .4
    assert s.per_system["C"]["eer"] == pytest.approx(0.125)
    assert s.miss_rate == pytest.approx(0.25) and s.fa_rate == pytest.approx(0.25)
    assert s.per_system["C"]["miss_rate"] == pytest.approx(0.5) and s.per_system["A"]["miss_rate"] == 0.0
    d = json.loads((tmp_path / "summary.json").read_text())
    assert d["eer"] == pytest.approx(0.25) and d["per_system"]["C"]["n"] == 2
    lines = (tmp_path / "scores.tsv").read_text().splitlines()
    assert lines[0] == "file\tlabel\tsystem\tscore\terror" and len(lines) == 11
    assert lines[9].split("\t") == ["bad", "spoof", "C", "", "corrupt_media: x"]
    for png in ("det.png", "hist.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_one_class_only_does_not_crash(tmp_path: Path) -> None:
    recs = [EvalRecord("b", "bonafide", "bonafide", 0.1), EvalRecord("c", "bonafide", "bonafide", 0.9)]
    s = evaluate(recs, tmp_path, threshold=0.5)
    assert s.eer is None and s.fa_rate == 0.5 and s.notes
    assert (tmp_path / "summary.json").is_file() and not (tmp_path / "det.png").exists()
    assert evaluate([]).n_total == 0


def test_bad_label_raises() -> None:
    with pytest.raises(ValueError, match="label"):
        evaluate([EvalRecord("x", "maybe", "s", 0.1)])
