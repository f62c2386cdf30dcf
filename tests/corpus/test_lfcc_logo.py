"""recipes/lfcc_logo.py: leave-one-generator-out folds of the classic countermeasure, end to end on a toy
corpus (the LCNN's folds are tested in tests/detect/test_neural.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _recipes import load_recipe
from _toy_corpus import espeak_corpus

TEXTS = ["please call me back when you get this message", "we will meet at the station at seven tonight",
         "my account number has changed since last week"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 espeak-ng 'speakers' as stand-in bona fide (6 train, 2 val), two phase-vocoder spoof systems."""
    root = tmp_path_factory.mktemp("lfcc-logo")
    espeak_corpus(root, TEXTS, n_speakers=8, n_val=2, systems={"pv512": 512, "pv128": 128})
    return root


def test_one_fold_trains_without_the_system_and_scores_it(corpus: Path) -> None:
    res = load_recipe("lfcc_logo").fold(corpus, "pv128")
    assert res["system"] == "pv128"
    assert res["n_spoof"] == 24 and res["n_bonafide"] == 6  # every pv128 clip vs the val bona fide
    # phase-vocoded speech is far from espeak's clean pulses, even for a fold that never saw pv128
    assert res["eer"] < 0.35


def test_cli_writes_the_folds_and_rejects_bad_input(corpus: Path, tmp_path: Path) -> None:
    lfcc_logo = load_recipe("lfcc_logo")
    out = tmp_path / "logo.json"
    assert lfcc_logo.main([str(corpus), str(out), "--systems", "pv512"]) == 0
    data = json.loads(out.read_text())
    assert [f["system"] for f in data["folds"]] == ["pv512"] and data["model"] == "lfcc-gmm"
    assert lfcc_logo.main([str(corpus), str(out), "--systems", "kokor"]) == 2  # not a system of the corpus
    assert lfcc_logo.main([str(tmp_path / "none"), str(out)]) == 2  # no protocol
    assert lfcc_logo.main([str(corpus), str(out), "--opt", "lfcc.n_filter=30"]) == 2  # typo: no fold trains
    assert lfcc_logo.main([str(corpus), str(out), "--opt", "n_components"]) == 2  # not KEY=VALUE
    assert lfcc_logo.main([str(corpus), str(out), "--opt", "lfcc.n_filters=many"]) == 2  # text for a number


def test_a_variant_of_the_recipe_runs_through_the_folds(corpus: Path, tmp_path: Path) -> None:
    lfcc_logo = load_recipe("lfcc_logo")
    assert lfcc_logo.parse_opts(["n_components=16", "lfcc.n_filters=30", "lfcc.deltas=false", "max_iter=5"]) == {
        "n_components": 16, "features": {"n_filters": 30, "deltas": False}, "max_iter": 5}
    out = tmp_path / "v.json"
    assert lfcc_logo.main([str(corpus), str(out), "--systems", "pv512", "--opt", "n_components=16",
                           "--opt", "lfcc.n_coefs=12", "--keep", str(tmp_path / "folds")]) == 0
    data = json.loads(out.read_text())
    assert data["options"] == {"n_components": 16, "features": {"n_coefs": 12}}
    assert data["folds"][0]["n_spoof"] == 24 and 0.0 <= data["folds"][0]["eer"] <= 1.0
    # the kept fold model is a model folder like any other: it loads and carries the variant's features
    from voxwarden.detect.detector import Detector

    det = Detector.load(tmp_path / "folds" / "pv512")
    assert det.card.kind == "lfcc-gmm" and det.card.raw["features"]["n_coefs"] == 12



_REAL_FOLD = None


def _fold_failing_on_pv128(corpus: Path, system: str, seed: int = 0, opts: dict | None = None,
                           keep: Path | None = None) -> dict:
    if system == "pv128":
        raise RuntimeError("this fold cannot train")
    return _REAL_FOLD(corpus, system, seed, opts, keep)


def test_a_fold_that_cannot_train_is_recorded_and_the_others_still_run(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    global _REAL_FOLD
    lfcc_logo = load_recipe("lfcc_logo")
    _REAL_FOLD = lfcc_logo.fold
    monkeypatch.setattr(lfcc_logo, "fold", _fold_failing_on_pv128)
    out = tmp_path / "logo.json"
    assert lfcc_logo.main([str(corpus), str(out), "--systems", "pv128,pv512", "--jobs", "2"]) == 2
    folds = {f["system"]: f for f in json.loads(out.read_text())["folds"]}
    assert folds["pv128"]["error"] == "RuntimeError: this fold cannot train"
    assert folds["pv512"]["n_spoof"] == 24 and "eer" in folds["pv512"]
