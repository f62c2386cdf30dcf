"""recipes/lfcc_logo.py: leave-one-generator-out folds of the classic countermeasure, end to end on a toy
corpus (the LCNN's folds are tested in tests/detect/test_neural.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import istft, resample_poly, stft

from _recipes import load_recipe

SR = 16000
TEXTS = ["please call me back when you get this message", "we will meet at the station at seven tonight",
         "my account number has changed since last week"]
VOICES = ["en+m1", "en+m3", "en+f2", "en+f4", "en-us+m2", "en-us+f3", "en-gb+m4", "en+m5"]


def _phase_vocode(x: np.ndarray, rng: np.random.Generator, nperseg: int) -> np.ndarray:
    """A crude copy-synthesis 'generator': STFT magnitude kept, phases drawn at random."""
    _, _, z = stft(x, SR, nperseg=nperseg, noverlap=3 * nperseg // 4)
    _, y = istft(np.abs(z) * np.exp(2j * np.pi * rng.random(z.shape)), SR, nperseg=nperseg,
                 noverlap=3 * nperseg // 4)
    y = y[: len(x)]
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 espeak-ng 'speakers' as stand-in bona fide (6 train, 2 val), two phase-vocoder spoof systems."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    root = tmp_path_factory.mktemp("lfcc-logo")
    (root / "audio").mkdir()
    rng = np.random.default_rng(3)
    lines = ["file\tlabel\tsystem\tspeaker\tsplit"]
    for s, voice in enumerate(VOICES):
        split = "val" if s >= 6 else "train"
        for k, text in enumerate(TEXTS):
            wav = root / "t.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(30 + 6 * s), "-w", str(wav), text],
                           check=True, capture_output=True, timeout=30)
            x, sr = sf.read(wav, dtype="float32")
            x = resample_poly(x, SR, sr).astype(np.float32)
            for system, y in (("bonafide", x), ("pv512", _phase_vocode(x, rng, 512)),
                              ("pv128", _phase_vocode(x, rng, 128))):
                name = f"s{s}_{k}_{system}.flac"
                sf.write(root / "audio" / name, y, SR)
                label = "bonafide" if system == "bonafide" else "spoof"
                lines.append(f"{name}\t{label}\t{system}\tspk{s}\t{split}")
    (root / "protocol.tsv").write_text("\n".join(lines) + "\n")
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
