"""A toy corpus for training tests: espeak-ng 'speakers' stand in for bona fide, phase-vocoded copies of
their clips are the spoof systems. Seconds to build; the tests that train a model on it share it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import istft, resample_poly, stft

SR = 16000
VOICES = ["en+m1", "en+m3", "en+f2", "en+f4", "en-us+m2", "en-us+f3", "en-gb+m4", "en+m5"]


def phase_vocode(x: np.ndarray, rng: np.random.Generator, nperseg: int) -> np.ndarray:
    """A crude copy-synthesis 'generator': STFT magnitude kept, phases drawn at random."""
    _, _, z = stft(x, SR, nperseg=nperseg, noverlap=3 * nperseg // 4)
    _, y = istft(np.abs(z) * np.exp(2j * np.pi * rng.random(z.shape)), SR, nperseg=nperseg,
                 noverlap=3 * nperseg // 4)
    y = y[: len(x)]
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def espeak_corpus(root: Path, texts: list[str], *, n_speakers: int, n_val: int, systems: dict[str, int],
                  seed: int = 3) -> Path:
    """root/audio + root/protocol.tsv (file, label, system, speaker, split): every speaker says every text;
    the last `n_val` speakers are `val`. `systems` maps a spoof system's name to its vocoder's frame size.
    Skips the test when espeak-ng is missing."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = ["file\tlabel\tsystem\tspeaker\tsplit"]
    for s in range(n_speakers):
        split = "val" if s >= n_speakers - n_val else "train"
        for k, text in enumerate(texts):
            wav = root / "t.wav"
            subprocess.run(["espeak-ng", "-v", VOICES[s % len(VOICES)], "-p", str(30 + 6 * s), "-w", str(wav), text],
                           check=True, capture_output=True, timeout=30)
            x, sr = sf.read(wav, dtype="float32")
            x = resample_poly(x, SR, sr).astype(np.float32)
            clips = [("bonafide", x)] + [(name, phase_vocode(x, rng, n)) for name, n in systems.items()]
            for system, y in clips:
                name = f"s{s}_{k}_{system}.flac"
                sf.write(root / "audio" / name, y, SR)
                label = "bonafide" if system == "bonafide" else "spoof"
                lines.append(f"{name}\t{label}\t{system}\tspk{s}\t{split}")
    (root / "protocol.tsv").write_text("\n".join(lines) + "\n")
    return root / "protocol.tsv"
