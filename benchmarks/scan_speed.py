"""Detector speed on one core: × real time for the whole pipeline (decode, VAD, windows, model), the wall time
of `voxwarden scan one.wav` including start-up, and peak memory.

    python benchmarks/scan_speed.py [--model default] [--minutes 10]

Speech: ../shared/data/train clips when present (real human speech), else espeak-ng speech.
Targets (issue 2): >= 300x real time per core; `scan one.wav` <= 2 s; peak RSS <= 500 MB.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_TRAIN = ROOT.parent / "shared" / "data" / "train" / "audio"


def speech_files(tmp: Path, minutes: float) -> tuple[list[Path], float]:
    files: list[Path] = []
    total = 0.0
    if SHARED_TRAIN.is_dir():
        for p in sorted(SHARED_TRAIN.glob("*.flac")):
            files.append(p)
            total += sf.info(str(p)).duration
            if total >= minutes * 60:
                break
        return files, total
    text = "The quick brown fox jumps over the lazy dog while the band plays on in the square. " * 6
    i = 0
    while total < minutes * 60:
        out = tmp / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-s", str(140 + 10 * (i % 5)), "-w", str(out), text], check=True)
        files.append(out)
        total += sf.info(str(out)).duration
        i += 1
    return files, total


def stage_cpu(det, files: list[Path]) -> dict[str, float]:
    """CPU seconds of each stage alone over the same files: decode, VAD, model (windows as scan makes them)."""
    from voxwarden import audio

    clips, regions, wins = [], [], []
    c0 = time.process_time()
    for p in files:
        clips.append(audio.load(str(p), sr=det.card.sample_rate))
    t_dec = time.process_time() - c0
    c0 = time.process_time()
    for c in clips:
        regions.append(audio.speech_regions(c.samples, c.sr))
    t_vad = time.process_time() - c0
    for c, r in zip(clips, regions, strict=True):
        wins.append([w.samples for w in audio.windows(c.samples, c.sr, r, win=det.card.window, hop=det.card.hop)])
    c0 = time.process_time()
    for w in wins:
        if w:
            det.score_windows(w)
    t_model = time.process_time() - c0
    return {"decode": t_dec, "VAD": t_vad, "model": t_model}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    from voxwarden.detect import Detector

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        files, total = speech_files(tmp, args.minutes)
        src = "shared/data/train (real speech)" if SHARED_TRAIN.is_dir() else "espeak-ng speech"
        t0 = time.perf_counter()
        det = Detector.load(args.model)
        t_load = time.perf_counter() - t0
        det.score(str(files[0]))  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        results = [det.scan(str(p)) for p in files]
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        stages = stage_cpu(det, files)
        n_err = sum(r.error is not None for r in results)
        print(f"model            {det.model_id}")
        print(f"audio            {len(files)} files, {total / 60:.1f} min of {src}; {n_err} errors")
        print(f"load             {t_load * 1000:.0f} ms")
        print(f"pipeline speed   {total / dt:.0f}x real time on one core (decode+VAD+windows+model); "
              f"1 h of speech in {3600 / (total / dt):.1f} s")
        print(f"pipeline CPU     {total / cpu:.0f}x real time by process time ({cpu:.2f} s CPU; "
              f"steadier than wall on a shared machine)")
        print("stages (CPU)     " + ", ".join(f"{k} {total / v:.0f}x" for k, v in stages.items()))
        # end-to-end CLI wall time on one short file, including interpreter start-up
        one = tmp / "one.wav"
        x, sr = sf.read(str(files[0]), dtype="float32")
        sf.write(str(one), x[: sr * 8], sr)
        exe = shutil.which("voxwarden") or str(Path(sys.executable).with_name("voxwarden"))
        walls = []
        for _ in range(3):
            t0 = time.perf_counter()
            cmd = [exe, "scan", str(one), "--format", "jsonl"] + (["--model", args.model] if args.model else [])
            proc = subprocess.run(cmd, capture_output=True, check=False)
            walls.append(time.perf_counter() - t0)
            if proc.returncode not in (0, 1):
                sys.exit(f"scan failed (exit {proc.returncode}): {proc.stderr.decode(errors='replace')}")
        print(f"scan one.wav     {min(walls):.2f} s wall (best of 3, includes start-up)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS         {peak:.0f} MB (this process, after scoring {total / 60:.1f} min)")
        print(f"mean P(synthetic) on this real speech: {np.mean([r.probability for r in results if r.ok]):.3f}")


if __name__ == "__main__":
    main()
