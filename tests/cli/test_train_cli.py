"""`voxwarden train` in a subprocess: `--split` trains on one split's rows only; bad splits are usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _toy_corpus import espeak_corpus
from voxwarden.commands._common import EXIT_USAGE


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "voxwarden", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def _protocol(tmp_path: Path) -> tuple[Path, Path]:
    """6 espeak-ng 'speakers' (stand-in bona fide) and their phase-vocoded copies (spoof); spk4, spk5: val."""
    proto = espeak_corpus(tmp_path, ["please call me back when you get this", "we will meet at seven tonight"],
                          n_speakers=6, n_val=2, systems={"pv": 512}, seed=0)
    return proto, tmp_path / "audio"


def test_train_split_reads_only_that_split(tmp_path: Path) -> None:
    proto, audio = _protocol(tmp_path)
    out = tmp_path / "model"
    p = run("train", "--protocol", str(proto), "--audio-dir", str(audio), "--out", str(out), "--split", "train",
            "--holdout", "0.25")
    assert p.returncode == 0, p.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["split"] == "train"
    sizes = card["training"]["sizes"]
    total = sum(sizes[k] for k in ("train_bonafide", "train_spoof", "heldback_bonafide", "heldback_spoof",
                                   "heldback_unscoreable"))
    assert total == 16  # 4 train speakers x 2 clips x 2 labels; the 8 val rows are never used

    p = run("train", "--protocol", str(proto), "--audio-dir", str(audio), "--out", str(tmp_path / "m2"),
            "--split", "dev")
    assert p.returncode == EXIT_USAGE and "no rows of split 'dev'" in p.stderr
    assert not (tmp_path / "m2" / "card.json").exists()


def test_train_opt_sets_recipe_options(tmp_path: Path) -> None:
    proto, audio = _protocol(tmp_path)
    out = tmp_path / "model"
    p = run("train", "--protocol", str(proto), "--audio-dir", str(audio), "--out", str(out), "--split", "train",
            "--holdout", "0.25", "--opt", "lfcc.statics=false", "--opt", "lfcc.f_min=300", "--opt", "n_components=8")
    assert p.returncode == 0, p.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["features"]["statics"] is False and card["features"]["f_min"] == 300.0
    assert card["backend"]["n_components"] == 8
    for bad, msg in ((["--opt", "lfcc.nope=1"], "unknown LFCC fields"), (["--opt", "n_components"], "KEY=VALUE"),
                     (["--opt", "lfcc.f_min=9000"], "f_min"), (["--opt", "colour=red"], "unknown options")):
        p = run("train", "--protocol", str(proto), "--audio-dir", str(audio), "--out", str(tmp_path / "bad"),
                "--split", "train", *bad)
        assert p.returncode == EXIT_USAGE and msg in p.stderr, (bad, p.stderr)
        assert not (tmp_path / "bad" / "card.json").exists()
