"""recipes/fusion_logo.py: the two countermeasures' fold models fused on the same trials, on a toy corpus.

The LCNN fold here is the shipped default's bare model.onnx (a stand-in: what matters is that a card-less fold
is scored as the recipe's card would, and that both scores meet on the same clips)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from _recipes import load_recipe
from _toy_corpus import espeak_corpus

TEXTS = ["please call me back when you get this message", "we will meet at the station at seven tonight",
         "my account number has changed since last week"]
DEFAULT = Path(__file__).resolve().parents[2] / "src" / "voxwarden" / "models" / "default"


@pytest.fixture(scope="module")
def folds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("fusion-logo")
    corpus = root / "corpus"
    espeak_corpus(corpus, TEXTS, n_speakers=8, n_val=2, systems={"pv512": 512, "pv128": 128})
    lfcc, lcnn = root / "lfcc", root / "lcnn"
    assert load_recipe("lfcc_logo").main([str(corpus), str(root / "l.json"), "--systems", "pv128",
                                          "--opt", "n_components=16", "--keep", str(lfcc)]) == 0
    (lcnn / "pv128").mkdir(parents=True)
    shutil.copyfile(DEFAULT / "model.onnx", lcnn / "pv128" / "model.onnx")  # a bare fold, no card
    return corpus, lcnn, lfcc


def _with_calibration(src: Path, dest: Path, a: float, b: float) -> Path:
    shutil.copytree(src, dest)
    card = json.loads((dest / "card.json").read_text())
    card["calibration"] = {"a": a, "b": b}
    (dest / "card.json").write_text(json.dumps(card))
    return dest


def test_fold_scores_both_models_on_the_same_trials(folds: tuple[Path, Path, Path], tmp_path: Path) -> None:
    corpus, lcnn, lfcc = folds
    fusion = load_recipe("fusion_logo")
    res = fusion.fold(corpus, "pv128", lcnn / "pv128", lfcc / "pv128")
    assert res["n_spoof"] == 24 and res["n_bonafide"] == 6  # every pv128 clip vs the val bona fide
    assert all(0.0 <= res[k] <= 1.0 for k in ("lcnn", "lfcc", "fused"))
    # the LFCC score enters as its Platt log-odds: scaled far up it decides alone, scaled far down the LCNN does
    loud = fusion.fold(corpus, "pv128", lcnn / "pv128", _with_calibration(lfcc / "pv128", tmp_path / "a", 1e6, 0))
    assert loud["fused"] == loud["lfcc"] == res["lfcc"]
    quiet = fusion.fold(corpus, "pv128", lcnn / "pv128", _with_calibration(lfcc / "pv128", tmp_path / "b", 1e-9, 5))
    assert quiet["fused"] == quiet["lcnn"] == res["lcnn"]


def test_cli_writes_the_table_and_rejects_bad_input(folds: tuple[Path, Path, Path], tmp_path: Path) -> None:
    corpus, lcnn, lfcc = folds
    fusion = load_recipe("fusion_logo")
    out = tmp_path / "fusion.json"
    assert fusion.main([str(corpus), str(lcnn), str(lfcc), str(out)]) == 0
    data = json.loads(out.read_text())
    assert [f["system"] for f in data["folds"]] == ["pv128"] and data["summary"]["fused"] == data["folds"][0]["fused"]
    assert fusion.main([str(corpus), str(lcnn), str(lfcc), str(out), "--systems", "pv512"]) == 2  # no fold kept
    assert fusion.main([str(corpus), str(lcnn), str(lfcc), str(out), "--systems", "kokor"]) == 2  # unknown
    assert fusion.main([str(corpus), str(lcnn), str(lfcc), str(out), "--systems", "../x"]) == 2  # hostile name
    assert fusion.main([str(tmp_path / "none"), str(lcnn), str(lfcc), str(out)]) == 2  # no protocol
    (lcnn / "pv512").mkdir()  # a fold folder with neither card nor model: that fold fails, the table is written
    (lfcc / "pv512").mkdir()
    try:
        assert fusion.main([str(corpus), str(lcnn), str(lfcc), str(out)]) == 2
        data = json.loads(out.read_text())
        assert data["failed"] == ["pv512"] and [f["system"] for f in data["folds"] if "error" not in f] == ["pv128"]
    finally:
        (lcnn / "pv512").rmdir()
        (lfcc / "pv512").rmdir()


def test_the_rule_needs_three_points_and_no_worse_tts_folds() -> None:
    verdict = load_recipe("fusion_logo").verdict

    def folds(lcnn: list[float], fused: list[float]) -> list[dict]:
        names = ["kokoro", "piper-vits", "espeak-ng", "vocos"]
        return [{"system": n, "lcnn": a, "lfcc": 0.3, "fused": b} for n, a, b in zip(names, lcnn, fused, strict=True)]

    assert verdict(folds([0.4, 0.2, 0.4, 0.1], [0.36, 0.17, 0.37, 0.06]))["candidate"]  # 3.5 points, TTS lower
    assert not verdict(folds([0.4, 0.2, 0.4, 0.1], [0.38, 0.19, 0.39, 0.09]))["candidate"]  # 1.5 points only
    assert not verdict(folds([0.4, 0.2, 0.4, 0.1], [0.42, 0.21, 0.41, 0.0]))["candidate"]  # TTS folds worse
