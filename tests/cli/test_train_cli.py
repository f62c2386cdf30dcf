"""`voxwarden train` in a subprocess: `--split` trains on one split's rows only; bad splits are usage errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import istft, resample_poly, stft

from voxwarden.commands._common import EXIT_USAGE

SR = 16000


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "voxwarden", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def _protocol(tmp_path: Path) -> tuple[Path, Path]:
    """6 espeak-ng 'speakers' (stand-in bona fide) and their phase-vocoded copies (spoof); spk4, spk5: val."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    lines = ["file\tlabel\tsystem\tspeaker\tsplit"]
    for s, voice in enumerate(["en+m1", "en+f2", "en+m3", "en-us+f3", "en-gb+m4", "en+f4"]):
        for k, text in enumerate(["please call me back when you get this", "we will meet at seven tonight"]):
            wav = tmp_path / "t.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(30 + 6 * s), "-w", str(wav), text],
                           check=True, capture_output=True, timeout=30)
            x, sr = sf.read(wav, dtype="float32")
            x = resample_poly(x, SR, sr).astype(np.float32)
            _, _, z = stft(x, SR, nperseg=512, noverlap=384)
            _, y = istft(np.abs(z) * np.exp(2j * np.pi * rng.random(z.shape)), SR, nperseg=512, noverlap=384)
            y = (0.5 * y[: len(x)] / np.max(np.abs(y))).astype(np.float32)
            split = "val" if s >= 4 else "train"
            for name, sig, lab in ((f"b{s}{k}.wav", x, "bonafide"), (f"s{s}{k}.wav", y, "spoof")):
                sf.write(audio / name, sig, SR)
                lines.append(f"{name}\t{lab}\t{'bonafide' if lab == 'bonafide' else 'pv'}\tspk{s}\t{split}")
    proto = tmp_path / "protocol.tsv"
    proto.write_text("\n".join(lines) + "\n")
    return proto, audio


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
