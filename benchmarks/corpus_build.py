#!/usr/bin/env python3
"""Corpus build speed: per-clip cost of each stage, and the extrapolated `default` build time.

Target: a `default` corpus (SIZES["default"]) builds in <= 1 h on 2 cores. Prints seconds per clip for
each degradation, each copy-synthesis vocoder and each TTS engine on a 3.5 s clip, then the estimate.

    python benchmarks/corpus_build.py [--vocoder path.pt]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def _voice(seconds: float = 3.5) -> np.ndarray:
    sr = 16000
    t = np.arange(int(seconds * sr)) / sr
    ph = 2 * np.pi * np.cumsum(130 * (1 + 0.1 * np.sin(2 * np.pi * 2 * t))) / sr
    x = sum(np.exp(-k / 6) * np.sin(k * ph) for k in range(1, 40)) * (0.55 + 0.45 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _time(fn, reps: int = 3) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocoder", type=Path, action="append", default=[])
    args = ap.parse_args()
    from voxwarden.audio.degrade import degrade
    from voxwarden.corpus.build import AUGMENTATIONS, SIZES
    from voxwarden.corpus.tts import PiperWorker, available_voices, synthesize
    from voxwarden.corpus.vocoders import CLASSIC_VOCODERS, NeuralVocoder, copy_synthesize

    x = _voice()
    rng = np.random.default_rng(0)
    aug = {s: _time(lambda s=s: degrade(x, 16000, s, rng=rng)) for s in AUGMENTATIONS}
    for s, v in aug.items():
        print(f"degrade {s:24s} {v * 1000:8.1f} ms/clip")
    vocs: dict[str, float] = {}
    for name in CLASSIC_VOCODERS:
        vocs[name] = _time(lambda name=name: copy_synthesize(x, name, rng=rng), reps=1)
    for p in args.vocoder:
        nv = NeuralVocoder.load(p)
        vocs[nv.name] = _time(lambda nv=nv: copy_synthesize(x, nv), reps=1)
    for k, v in vocs.items():
        print(f"vocoder {k:24s} {v:8.2f} s/clip")
    tts: dict[str, float] = {}
    seen: set[str] = set()
    text = "Please enter your account number now."
    piper = None
    for v in available_voices():
        if v.system in seen or "en" not in v.languages:
            continue
        seen.add(v.system)
        if v.engine == "piper":
            piper = PiperWorker()
        tts[v.system] = _time(lambda v=v, pw=piper: synthesize(v, text, rng, piper=pw), reps=2)
        print(f"tts     {v.system:24s} {tts[v.system]:8.2f} s/clip")
    if piper is not None:
        piper.close()
    plan = SIZES["default"]
    est = (plan.bonafide * 0.05 + plan.copy * float(np.mean(list(vocs.values())))
           + plan.tts * float(np.mean(list(tts.values()) or [0.0]))
           + (plan.bonafide + plan.copy + plan.tts) * 0.5 * float(np.mean(list(aug.values()))))
    print(f"estimated default build (one core, this load): {est / 60:.1f} min; target <= 60 min")


if __name__ == "__main__":
    main()
