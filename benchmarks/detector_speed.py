"""ONNX countermeasure speed: x real time on ONE core (onnxruntime intra_op 1), and peak RSS.

    python benchmarks/detector_speed.py [MODEL_DIR] [--seconds 600] [--threads 1]

Scores `--seconds` of audio cut into the detector's 4 s windows (2 s hop) plus short tail windows, the
way a file scan feeds the back end. Uses the packaged default model unless a model directory is given.
Real speech from ../shared/data/dev is used when present (so VAD-free timing matches real input);
otherwise noise-modulated synthetic signals (the graph's cost does not depend on content).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from voxwarden.detect.card import load_card
from voxwarden.detect.onnx_backend import OnnxBackend

SR = 16000


def _audio(seconds: float) -> tuple[np.ndarray, str]:
    dev = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "audio"
    if dev.is_dir():
        import soundfile as sf

        parts, total = [], 0
        for f in sorted(dev.glob("*.flac")):
            a, sr = sf.read(str(f), dtype="float32")
            if sr == SR and a.ndim == 1:
                parts.append(a)
                total += len(a)
            if total >= seconds * SR:
                break
        a = np.concatenate(parts)
        reps = int(np.ceil(seconds * SR / len(a)))
        return np.tile(a, reps)[: int(seconds * SR)], f"shared/data/dev speech ({dev})"
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * np.arange(n) / SR)
    return (rng.standard_normal(n) * 0.1 * env).astype(np.float32), "synthetic noise (shared/ absent)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model", nargs="?", default="default")
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    card = load_card(args.model)
    t0 = time.perf_counter()
    be = OnnxBackend.load(card.raw, card.directory, threads=args.threads)
    load_s = time.perf_counter() - t0
    audio, what = _audio(args.seconds)
    w, h = int(card.window * SR), int(card.hop * SR)
    windows = [audio[s : s + w] for s in range(0, len(audio) - w + 1, h)]
    # a realistic mix: every 10th clip ends in a short tail window
    windows += [
        audio[i * SR : i * SR + int(SR * (0.5 + (i % 7) * 0.5))] for i in range(0, len(windows) // 10)
    ]
    be.score_windows(windows[:4])  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    scores = be.score_windows(windows)
    el, cpu = time.perf_counter() - t0, time.process_time() - c0
    # x real time counts the audio duration scanned, as a file scan would (4 s windows, 2 s hop)
    scanned = len(audio) / SR
    window_audio = sum(len(x) for x in windows) / SR
    size_mb = card.weights_path.stat().st_size / 1e6
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model          {card.model_id} ({card.weights_path}, {size_mb:.2f} MB)")
    print(f"audio          {args.seconds:.0f} s of {what}")
    print(f"windows        {len(windows)} ({window_audio:.0f} s of window audio, overlap included)")
    print(f"threads        intra_op {args.threads}")
    print(f"session load   {load_s * 1000:.0f} ms")
    print(
        f"scoring        {el:.3f} s  -> {scanned / el:.0f}x real time (clip audio), "
        f"{window_audio / el:.0f}x (window audio)"
    )
    print(
        f"CPU time       {cpu:.3f} s  -> {scanned / cpu:.0f}x real time per CPU-second "
        "(robust to other load on the machine)"
    )
    print(f"peak RSS       {rss_mb:.0f} MB")
    print(f"scores         mean {float(np.mean(scores)):.3f}, finite {bool(np.all(np.isfinite(scores)))}")


if __name__ == "__main__":
    main()
