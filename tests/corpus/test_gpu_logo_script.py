"""recipes/gpu_logo.sh: what it asks the trainer for, one fold per system (a stand-in interpreter records the
calls, so nothing trains here; the trainer's own leave-out code is tested in tests/detect/test_neural.py)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, systems: str = "", **env: str) -> list[list[str]]:
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "protocol.tsv").write_text(
        "file\tlabel\tsystem\tspeaker\tsplit\n"
        "a.flac\tbonafide\tbonafide\ts1\ttrain\nb.flac\tspoof\tkokoro\ts1\ttrain\n"
        "c.flac\tspoof\tworld\ts2\ttrain\nd.flac\tspoof\tlpc\ts3\tval\n"
    )
    log = tmp_path / "calls.txt"
    fake = tmp_path / "fakepy"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    out = tmp_path / "out"
    p = subprocess.run(["bash", str(ROOT / "recipes" / "gpu_logo.sh"), str(corpus), str(out), systems, "v3", "32", "0"],
                       env={**os.environ, "PY": str(fake), "JOBS": "1", **env}, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    for fold in (systems or "kokoro,world").split(","):
        assert f"fold {fold} done" in p.stdout
    return sorted(line.split() for line in log.read_text().splitlines())


def test_one_fold_per_train_spoof_system_with_the_recipe_options(tmp_path: Path) -> None:
    calls = _run(tmp_path)
    assert len(calls) == 2  # kokoro and world; lpc has no train rows
    for call, system in zip(calls, ("kokoro", "world"), strict=True):
        assert call[call.index("--logo-systems") + 1] == system
        assert call[call.index("--epochs") + 1] == "32" and call[call.index("--augment") + 1] == "0"
        assert call[call.index("--logo-only") + 1].endswith(f"logo-v3-{system}.json")
        assert "--logo-keep" not in call


def test_keep_models_keeps_each_folds_model(tmp_path: Path) -> None:
    calls = _run(tmp_path, KEEP_MODELS="1")
    for call in calls:
        assert call[call.index("--logo-keep") + 1] == str(tmp_path / "out" / "models-v3")


def test_a_plus_fold_leaves_the_family_out_together(tmp_path: Path) -> None:
    calls = {c[c.index("--logo-only") + 1].rsplit("/", 1)[1]: c for c in _run(tmp_path, "kokoro+world,lpc")}
    fam, one = calls["logo-v3-kokoro+world.json"], calls["logo-v3-lpc.json"]
    assert fam[fam.index("--logo-systems") + 1] == "kokoro,world" and "--logo-group" in fam
    assert one[one.index("--logo-systems") + 1] == "lpc" and "--logo-group" not in one
