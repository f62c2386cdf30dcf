"""Neural countermeasure: a compact LCNN on a log-linear spectrogram computed *inside* the model.

Waveform ``[B, N]`` (16 kHz float32, any N >= one STFT frame) in, one logit per row out (higher = more
likely synthetic). The STFT is a strided ``Conv1d`` with fixed windowed-DFT kernels, so the whole
pipeline (normalisation, spectrogram, network, pooling) exports to one ONNX graph that onnxruntime runs
without torch. See ``docs/neural-countermeasure.md`` for why this design.

Training needs torch (the ``[train]`` extra); only ``voxwarden.detect.onnx_backend`` is used at runtime.
``train_neural`` trains and exports one model; ``build_default`` (also ``python -m
voxwarden.detect.neural``) reproduces the shipped default model from a corpus protocol.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

SR = 16000
Progress = Callable[[str, float], None]


# --------------------------------------------------------------------------------------------- model


@dataclass
class NeuralConfig:
    """Architecture hyper-parameters (stored in the card so a model can be rebuilt)."""

    model: str = "lcnn"
    n_fft: int = 320  # 20 ms frames
    hop: int = 160  # 10 ms hop
    fmax_bins: int | None = None  # keep only the lowest bins (None: all n_fft//2+1)
    channels: tuple[int, ...] = (8, 16, 32, 48)
    dropout: float = 0.3
    cmvn: bool = False  # per-bin mean normalisation over time (channel-robust, loses spectral tilt)
    # "logspec": the log power spectrogram (161 bins). "lfcc": linear-frequency cepstral coefficients with
    # their deltas (the ASVspoof 2021 LFCC-LCNN baseline's input): lfcc_filters triangles over 0-8 kHz,
    # the first lfcc_coeffs DCT-II coefficients, then delta and delta-delta: 3 x lfcc_coeffs rows
    frontend: str = "logspec"
    lfcc_filters: int = 20
    lfcc_coeffs: int = 20
    # "linear": one logit trained with binary cross-entropy. "ocsoftmax": one-class softmax (Zhang, Jiang &
    # Duan 2021): the pooled vector's cosine s with a learned unit direction; output -oc_alpha * s
    head: str = "linear"
    oc_alpha: float = 20.0
    oc_margins: tuple[float, float] = (0.9, 0.2)  # bona fide pulled above the first, spoof pushed below the second

    @property
    def bins(self) -> int:
        full = self.n_fft // 2 + 1
        return full if self.fmax_bins is None else min(full, self.fmax_bins)


def _dft_kernel(n_fft: int, bins: int) -> torch.Tensor:
    """Hann-windowed DFT as ``Conv1d`` weights ``[2 * bins, 1, n_fft]`` (cosines, then minus sines)."""
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(bins, dtype=torch.float64)
    win = 0.5 - 0.5 * torch.cos(2 * math.pi * n / n_fft)  # periodic Hann
    ang = 2 * math.pi * k[:, None] * n[None, :] / n_fft
    return torch.cat([torch.cos(ang) * win, -torch.sin(ang) * win], 0).float().unsqueeze(1)


def _power(wave: torch.Tensor, kernel: torch.Tensor, hop: int, bins: int) -> torch.Tensor:
    """``[B, N] -> [B, F, T]`` power spectrum of the DC-free, RMS-normalised window (gain never matters)."""
    x = wave - wave.mean(dim=1, keepdim=True)
    x = x / (x.pow(2).mean(dim=1, keepdim=True).sqrt() + 1e-6)
    spec = nn.functional.conv1d(x.unsqueeze(1), kernel, stride=hop)  # [B, 2F, T]
    re, im = spec[:, :bins], spec[:, bins:]
    return re * re + im * im


class LogSpectrogram(nn.Module):
    """Level-normalised log power spectrogram via a fixed DFT ``Conv1d``: ``[B, N] -> [B, 1, F, T]``."""

    def __init__(self, n_fft: int, hop: int, bins: int, cmvn: bool) -> None:
        super().__init__()
        self.n_fft, self.hop, self.bins, self.cmvn = n_fft, hop, bins, cmvn
        self.register_buffer("kernel", _dft_kernel(n_fft, bins), persistent=True)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        logp = torch.log(_power(wave, self.kernel, self.hop, self.bins) + 1e-5)
        if self.cmvn:
            logp = logp - logp.mean(dim=2, keepdim=True)
        else:
            logp = logp - logp.mean(dim=(1, 2), keepdim=True)
        return logp.unsqueeze(1)


def linear_filterbank(bins: int, filters: int) -> torch.Tensor:
    """``[filters, bins]`` triangles with centres equally spaced over 0..Nyquist (LFCC's filterbank).

    Bin ``k`` of ``bins`` sits at ``k / (bins - 1)`` of Nyquist; filter ``j`` rises from edge ``j`` to
    edge ``j + 1`` and falls to edge ``j + 2``, with ``filters + 2`` equally spaced edges.
    """
    if filters < 1 or bins < 2:
        raise ValueError("need at least one filter and two bins")
    pos = torch.arange(bins, dtype=torch.float64) / (bins - 1)
    edges = torch.linspace(0.0, 1.0, filters + 2, dtype=torch.float64)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (pos[None, :] - lo) / (mid - lo)
    fall = (hi - pos[None, :]) / (hi - mid)
    return torch.clamp(torch.minimum(rise, fall), min=0.0).float()


def dct_matrix(coeffs: int, size: int) -> torch.Tensor:
    """``[coeffs, size]`` orthonormal DCT-II rows (cepstra from log filterbank energies)."""
    n = torch.arange(size, dtype=torch.float64)
    k = torch.arange(coeffs, dtype=torch.float64)[:, None]
    m = torch.cos(math.pi * k * (2 * n[None, :] + 1) / (2 * size)) * math.sqrt(2.0 / size)
    m[0] /= math.sqrt(2.0)
    return m.float()


def _delta(c: torch.Tensor) -> torch.Tensor:
    """First-order regression over time with edge frames repeated: ``(c[t+1] - c[t-1]) / 2``."""
    padded = torch.cat([c[..., :1], c, c[..., -1:]], dim=-1)
    return 0.5 * (padded[..., 2:] - padded[..., :-2])


class LinearCepstrum(nn.Module):
    """LFCC with delta and delta-delta via a fixed DFT ``Conv1d``: ``[B, N] -> [B, 1, 3C, T]``.

    The input of the ASVspoof 2021 LFCC-LCNN baseline (Wang & Yamagishi 2021): a smooth spectral envelope
    and its dynamics instead of every bin's fine structure. ``cmvn`` subtracts each row's mean over time.
    """

    def __init__(self, n_fft: int, hop: int, bins: int, filters: int, coeffs: int, cmvn: bool) -> None:
        super().__init__()
        if not 1 <= coeffs <= filters:
            raise ValueError(f"lfcc_coeffs must be in 1..lfcc_filters ({filters}), got {coeffs}")
        self.n_fft, self.hop, self.bins, self.cmvn = n_fft, hop, bins, cmvn
        self.register_buffer("kernel", _dft_kernel(n_fft, bins), persistent=True)
        self.register_buffer("fbank", linear_filterbank(bins, filters), persistent=True)
        self.register_buffer("dct", dct_matrix(coeffs, filters), persistent=True)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        power = _power(wave, self.kernel, self.hop, self.bins)  # [B, F, T]
        logfb = torch.log(torch.matmul(self.fbank, power) + 1e-5)  # [B, filters, T]
        c = torch.matmul(self.dct, logfb)  # [B, C, T]
        d1 = _delta(c)
        feats = torch.cat([c, d1, _delta(d1)], dim=1)
        if self.cmvn:
            feats = feats - feats.mean(dim=2, keepdim=True)
        return feats.unsqueeze(1)


def build_frontend(cfg: NeuralConfig) -> nn.Module:
    """The fixed (untrained) front end a config names; it is part of the exported graph."""
    if cfg.frontend == "logspec":
        return LogSpectrogram(cfg.n_fft, cfg.hop, cfg.bins, cfg.cmvn)
    if cfg.frontend == "lfcc":
        return LinearCepstrum(cfg.n_fft, cfg.hop, cfg.bins, cfg.lfcc_filters, cfg.lfcc_coeffs, cfg.cmvn)
    raise ValueError(f"unknown front end {cfg.frontend!r} (known: logspec, lfcc)")


class MFM(nn.Module):
    """Max-feature-map (LCNN): split channels in two halves and keep the element-wise max."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.chunk(x, 2, dim=1)
        return torch.maximum(a, b)


class LCNNLite(nn.Module):
    """Light CNN (Lavrentyeva et al., ASVspoof 2019) cut down to a few MFLOPs per second of audio."""

    def __init__(self, cfg: NeuralConfig) -> None:
        super().__init__()
        self.front = build_frontend(cfg)
        layers: list[nn.Module] = [nn.BatchNorm2d(1)]
        c_in = 1
        for i, c in enumerate(cfg.channels):
            k = 3
            layers += [nn.Conv2d(c_in, 2 * c, k, padding=k // 2, bias=False), nn.BatchNorm2d(2 * c)]
            if i < len(cfg.channels) - 1:
                # max-pooling and MFM are both maxima, so they commute: pooling first is the same
                # function with 4x less work for the channel max (and fewer layout reorders in ORT)
                layers.append(nn.MaxPool2d(2, 2))
            layers.append(MFM())
            c_in = c
        self.body = nn.Sequential(*layers)
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.head == "linear":
            self.head = nn.Linear(2 * c_in, 1)
        elif cfg.head == "ocsoftmax":
            self.head = OCSoftmaxHead(2 * c_in, cfg.oc_alpha)
        else:
            raise ValueError(f"unknown head {cfg.head!r} (known: linear, ocsoftmax)")

    def forward(
        self, wave: torch.Tensor, spec_hook: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Logit per row. ``spec_hook`` (training only, never exported) rewrites the log spectrogram."""
        spec = self.front(wave)
        if spec_hook is not None:
            spec = spec_hook(spec)
        h = self.body(spec)  # [B, C, F', T']
        h = h.mean(dim=2)  # average over frequency -> [B, C, T']
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)  # time mean + max
        return self.head(self.drop(pooled)).squeeze(1)


class OCSoftmaxHead(nn.Module):
    """One-class head: ``-alpha * cos(x, w)``, shape ``[B, 1]``, for a learned direction ``w``.

    Higher = more likely synthetic, like the linear head's logit.
    Bona fide speech is pulled towards ``w`` and every spoof pushed away from it (``OCSoftmaxLoss``), so
    the spoofs need not share one region: the point is generators never seen in training.
    """

    def __init__(self, dim: int, alpha: float) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.center = nn.Parameter(torch.randn(dim) / math.sqrt(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = x * torch.rsqrt(x.pow(2).sum(dim=1, keepdim=True) + 1e-12)
        w = self.center * torch.rsqrt(self.center.pow(2).sum() + 1e-12)
        return -self.alpha * (xn @ w[:, None])  # [B, 1], like nn.Linear(dim, 1)


class OCSoftmaxLoss(nn.Module):
    """OC-softmax loss on ``-alpha * s`` outputs.

    softplus(alpha (m0 - s)) for label 0 (bona fide), softplus(alpha (s - m1)) for label 1 (spoof).
    """

    def __init__(self, alpha: float, margins: tuple[float, float]) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.m_real, self.m_fake = float(margins[0]), float(margins[1])

    def forward(self, out: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        s = -out / self.alpha
        real = nn.functional.softplus(self.alpha * (self.m_real - s))
        fake = nn.functional.softplus(self.alpha * (s - self.m_fake))
        return torch.where(label > 0.5, fake, real).mean()


MODELS: dict[str, type[nn.Module]] = {"lcnn": LCNNLite}


def build_model(cfg: NeuralConfig) -> nn.Module:
    """Instantiate the architecture a config names."""
    if cfg.model not in MODELS:
        raise ValueError(f"unknown neural model {cfg.model!r} (known: {', '.join(MODELS)})")
    return MODELS[cfg.model](cfg)


# ------------------------------------------------------------------------------------- augmentation


def _band_limit(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """Random low-pass (telephone .. wideband) and high-pass per row, as a brick-wall FFT mask."""
    b, n = x.shape
    spec = torch.fft.rfft(x, dim=1)
    freqs = torch.fft.rfftfreq(n, 1.0 / SR)
    apply = torch.rand(b, generator=gen) < p
    lo_cut = torch.empty(b).uniform_(3400.0, 7600.0, generator=gen)
    hi_cut = torch.empty(b).uniform_(0.0, 300.0, generator=gen)
    mask = (freqs[None, :] <= lo_cut[:, None]) & (freqs[None, :] >= hi_cut[:, None])
    mask = torch.where(apply[:, None], mask, torch.ones_like(mask))
    return torch.fft.irfft(spec * mask, n=n, dim=1)


def augment(x: torch.Tensor, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Label-blind augmentation (both classes alike): gain, polarity, band-limiting, additive noise."""
    b, n = x.shape
    if strength <= 0:
        return x
    x = _band_limit(x, gen, 0.35 * strength)
    # additive white or brown-ish noise at 5..40 dB SNR
    rms = x.pow(2).mean(dim=1, keepdim=True).sqrt() + 1e-6
    snr = torch.empty(b, 1).uniform_(5.0, 40.0, generator=gen)
    noise = torch.randn(b, n, generator=gen)
    brown = torch.rand(b, 1, generator=gen) < 0.5
    smooth = torch.cumsum(noise, dim=1)
    smooth = smooth - torch.linspace(0, 1, n)[None, :] * smooth[:, -1:]
    smooth = smooth / (smooth.pow(2).mean(dim=1, keepdim=True).sqrt() + 1e-6)
    noise = torch.where(brown, smooth, noise)
    use = (torch.rand(b, 1, generator=gen) < 0.4 * strength).float()
    x = x + use * noise * rms * torch.pow(10.0, -snr / 20.0)
    sign = torch.where(torch.rand(b, 1, generator=gen) < 0.5, -1.0, 1.0)
    gain = torch.pow(10.0, torch.empty(b, 1).uniform_(-1.5, 0.5, generator=gen))
    return (x * sign * gain).clamp(-1.0, 1.0)


def _keep_mask(b: int, n: int, gen: torch.Generator, width: int, count: int) -> torch.Tensor:
    """``[b, n]`` booleans: False on ``count`` runs per row, each of a width uniform in 0..``width``."""
    width, count = min(int(width), n), min(int(count), n)  # more runs than positions cannot mask more
    pos = torch.arange(n)
    keep = torch.ones(b, n, dtype=torch.bool)
    for _ in range(count):
        w = torch.randint(0, width + 1, (b,), generator=gen)
        start = (torch.rand(b, generator=gen) * (n - w + 1).float()).long()
        keep &= ~((pos[None, :] >= start[:, None]) & (pos[None, :] < (start + w)[:, None]))
    return keep


def freq_mask(spec: torch.Tensor, gen: torch.Generator, width: int, count: int) -> torch.Tensor:
    """Online frequency masking (SpecAugment / "SpecAverage"): ``count`` bands per row set to 0.

    ``spec`` is the front end's ``[B, 1, F, T]`` log spectrogram, whose window mean is already 0, so a
    masked band reads as the average. Each band's width is uniform in 0..``width`` bins, its start uniform
    over the bins that fit it. Label-blind; takes away any single band the network could lean on.
    """
    if width <= 0 or count <= 0:
        return spec
    keep = _keep_mask(spec.shape[0], spec.shape[2], gen, width, count)
    # the draws stay on the CPU generator (deterministic); the mask follows the spectrogram to its device
    return spec * keep[:, None, :, None].to(device=spec.device, dtype=spec.dtype)


def time_mask(spec: torch.Tensor, gen: torch.Generator, width: int, count: int) -> torch.Tensor:
    """Online time masking (SpecAugment): ``count`` runs of frames per row set to 0 (the window mean).

    Like ``freq_mask`` along the other axis: each run is uniform in 0..``width`` frames (10 ms each). It
    takes away any one moment (an onset, a pause) the network could lean on. Label-blind.
    """
    if width <= 0 or count <= 0:
        return spec
    keep = _keep_mask(spec.shape[0], spec.shape[3], gen, width, count)
    return spec * keep[:, None, None, :].to(device=spec.device, dtype=spec.dtype)


# ---------------------------------------------------------------------------------------- training


@dataclass
class TrainOptions:
    """Training hyper-parameters (all recorded in the card)."""

    epochs: int = 20
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    crop_min: float = 1.0  # seconds; each batch draws one crop length in [crop_min, crop_max]
    crop_max: float = 4.0
    augment: float = 1.0
    threads: int = 2
    steps_per_epoch: int | None = None  # default: items / batch
    device: str = "cpu"  # "cuda" trains on a GPU (not bit-identical to CPU); export is always on CPU
    max_seconds: float | None = None  # safety net: stop early (recorded in the card) after this long
    freq_mask: int = 0  # online frequency masking: widest band in bins (0 = off; see freq_mask())
    freq_masks: int = 2  # bands masked per example when freq_mask > 0
    time_mask: int = 0  # online time masking: longest masked run in frames (0 = off; see time_mask())
    time_masks: int = 2  # runs masked per example when time_mask > 0


def _sample_batch(
    items: Sequence[tuple[np.ndarray, int]],
    by_label: dict[int, tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    batch: int,
    crop_min: float,
    crop_max: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced batch of random crops, all of one random length (no padding, no tiling).

    The crop length is drawn first; each label then draws among its clips at least that long (if a
    label has none, the length shrinks to its longest clip), so long crops are actually seen.
    ``by_label[lab]`` is (indices sorted by length, their lengths).
    """
    labels = np.array([i % 2 for i in range(batch)])
    rng.shuffle(labels)
    length = int(rng.uniform(crop_min, crop_max) * SR)
    length = min(length, *(int(lens[-1]) for _, lens in by_label.values()))
    idx = []
    for lab in labels:
        order, lens = by_label[int(lab)]
        first = int(np.searchsorted(lens, length, side="left"))
        idx.append(int(order[rng.integers(first, len(order))]))
    out = np.empty((batch, length), dtype=np.float32)
    for j, i in enumerate(idx):
        a = items[i][0]
        s = int(rng.integers(0, len(a) - length + 1))
        out[j] = a[s : s + length]
    return out, labels.astype(np.float32)


def _check_items(items: Sequence[tuple[np.ndarray, int]], min_samples: int) -> list[tuple[np.ndarray, int]]:
    clean: list[tuple[np.ndarray, int]] = []
    for a, lab in items:
        a = np.asarray(a, dtype=np.float32).reshape(-1)
        if len(a) < min_samples or not np.all(np.isfinite(a)):
            continue
        if int(lab) not in (0, 1):
            raise ValueError(f"labels must be 0 (bona fide) or 1 (spoof), got {lab!r}")
        clean.append((a, int(lab)))
    labs = {lab for _, lab in clean}
    if labs != {0, 1}:
        raise ValueError(
            f"need usable clips (>= {min_samples / SR:.2f} s, finite) of both labels; got {labs}"
        )
    return clean


def export_onnx(model: nn.Module, path: Path, *, check: bool = True) -> float:
    """Export ``[B, N] -> [B]`` with dynamic batch and length; return max |torch - onnxruntime| (checked)."""
    model.eval()
    dummy = torch.zeros(2, SR)
    dummy[:, ::50] = 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            dynamo=False,
            input_names=["waveform"],
            output_names=["logit"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "logit": {0: "batch"}},
            opset_version=17,
        )
    if not check:
        return 0.0
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(1234)
    worst = 0.0
    for n in (SR // 2, 2 * SR, 4 * SR):
        x = torch.randn(3, n, generator=gen) * 0.1
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(None, {"waveform": x.numpy()})[0]
        worst = max(worst, float(np.max(np.abs(ref - got))))
    if worst > 1e-4:
        raise RuntimeError(f"ONNX export mismatch: max |torch - onnxruntime| = {worst:.3g} > 1e-4")
    return worst


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_neural(
    items: list[tuple[np.ndarray, int]],
    out_dir: Path,
    *,
    model: str = "lcnn",
    seed: int = 0,
    progress: Progress | None = None,
    epochs: int | None = None,
    **opts: Any,
) -> dict:
    """Train a neural countermeasure on ``(16 kHz audio, label)`` pairs and export ``model.onnx``.

    Label 1 = spoof, 0 = bona fide. Batches are class-balanced random crops with label-blind
    augmentation; training is deterministic for a seed. Returns card fields
    ``{"kind", "file", "sha256", "training", "architecture"}``; calibration is the caller's job.
    Extra ``opts`` set ``TrainOptions`` and ``NeuralConfig`` fields (e.g. ``batch=16``, ``cmvn=True``).
    """
    arch_keys = {f for f in NeuralConfig.__dataclass_fields__}
    train_keys = {f for f in TrainOptions.__dataclass_fields__}
    unknown = set(opts) - arch_keys - train_keys
    if unknown:
        raise ValueError(f"unknown training options: {sorted(unknown)}")
    arch_opts = {k: v for k, v in opts.items() if k in arch_keys}
    if "channels" in arch_opts:
        arch_opts["channels"] = tuple(int(c) for c in arch_opts["channels"])
    if "oc_margins" in arch_opts:
        arch_opts["oc_margins"] = tuple(float(m) for m in arch_opts["oc_margins"])
    cfg = NeuralConfig(model=model, **arch_opts)
    topt = TrainOptions(**{k: v for k, v in opts.items() if k in train_keys})
    if epochs is not None:
        topt.epochs = int(epochs)
    report = progress or (lambda msg, frac: None)

    torch.manual_seed(seed)
    torch.set_num_threads(max(1, int(topt.threads)))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)

    data = _check_items(items, int(topt.crop_min * SR) // 2)
    labels = np.array([lab for _, lab in data])
    lengths = np.array([len(a) for a, _ in data])
    by_label = {}
    for lab in (0, 1):
        idx = np.flatnonzero(labels == lab)
        idx = idx[np.argsort(lengths[idx], kind="stable")]
        by_label[lab] = (idx, lengths[idx])
    crop_min = topt.crop_min
    crop_max = max(topt.crop_max, crop_min)

    dev = torch.device(topt.device)
    net = build_model(cfg).to(dev)
    steps_per_epoch = topt.steps_per_epoch or max(1, math.ceil(len(data) / topt.batch))
    total = max(1, topt.epochs * steps_per_epoch)
    opt = torch.optim.AdamW(net.parameters(), lr=topt.lr, weight_decay=topt.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=topt.lr, total_steps=total, pct_start=0.15)
    loss_fn: nn.Module = (
        OCSoftmaxLoss(cfg.oc_alpha, cfg.oc_margins) if cfg.head == "ocsoftmax" else nn.BCEWithLogitsLoss()
    )
    hook: Callable[[torch.Tensor], torch.Tensor] | None = None
    if topt.freq_mask > 0 or topt.time_mask > 0:
        # their own generators, so the recipe without masks stays bit-identical (and the frequency masks
        # draw the same bands whether or not time masks are on)
        f_gen = torch.Generator().manual_seed(seed + 7919)
        t_gen = torch.Generator().manual_seed(seed + 104729)

        def masks(spec: torch.Tensor) -> torch.Tensor:
            spec = freq_mask(spec, f_gen, topt.freq_mask, topt.freq_masks)
            return time_mask(spec, t_gen, topt.time_mask, topt.time_masks)

        hook = masks
    t0 = time.time()
    losses: list[float] = []
    net.train()
    stopped_at: int | None = None
    for step in range(total):
        if topt.max_seconds is not None and time.time() - t0 > topt.max_seconds:
            stopped_at = step
            report(f"time budget of {topt.max_seconds:.0f} s reached after {step} steps", 1.0)
            break
        xb, yb = _sample_batch(data, by_label, rng, topt.batch, crop_min, crop_max)
        x = augment(torch.from_numpy(xb), gen, topt.augment)
        loss = loss_fn(net(x.to(dev), spec_hook=hook), torch.from_numpy(yb).to(dev))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if (step + 1) % steps_per_epoch == 0 or step + 1 == total:
            recent = float(np.mean(losses[-steps_per_epoch:]))
            report(
                f"epoch {(step + 1) // steps_per_epoch}/{topt.epochs} loss {recent:.4f}", (step + 1) / total
            )
    train_s = time.time() - t0

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "model.onnx"
    net = net.cpu()
    max_diff = export_onnx(net, onnx_path)
    n_params = sum(p.numel() for p in net.parameters())
    return {
        "kind": "onnx",
        "file": "model.onnx",
        "sha256": _sha256(onnx_path),
        "architecture": {**asdict(cfg), "parameters": int(n_params)},
        "training": {
            "seed": seed,
            "items": len(data),
            "bonafide": int((labels == 0).sum()),
            "spoof": int((labels == 1).sum()),
            "hours": round(sum(len(a) for a, _ in data) / SR / 3600.0, 3),
            "steps": total if stopped_at is None else stopped_at,
            "planned_steps": total,
            "hyper_parameters": asdict(topt),
            "final_loss": round(float(np.mean(losses[-steps_per_epoch:])), 5) if losses else None,
            "train_seconds": round(train_s, 1),
            "onnx_max_abs_diff": max_diff,
            "torch": torch.__version__,
        },
    }


# ------------------------------------------------------------------------------- scoring + metrics


def score_clips(
    model_dir: Path, clips: Sequence[np.ndarray], *, window: float = 4.0, hop: float = 2.0
) -> np.ndarray:
    """Mean window logit per clip with the exported ONNX model (as the detector windows it, no VAD)."""
    from voxwarden.detect.onnx_backend import OnnxBackend

    backend = OnnxBackend.load({"file": "model.onnx"}, Path(model_dir), threads=2)
    w, h = int(window * SR), int(hop * SR)
    out = np.empty(len(clips), dtype=np.float64)
    for i, a in enumerate(clips):
        if len(a) <= w:
            wins = [a]
        else:
            starts = list(range(0, len(a) - w + 1, h))
            if starts[-1] + w < len(a):
                starts.append(len(a) - w)
            wins = [a[s : s + w] for s in starts]
        out[i] = float(np.mean(backend.score_windows(wins)))
    return out


def eer(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its score threshold (labels 1 = spoof = higher score)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    thr = np.unique(scores)
    frr = np.array([(pos < t).mean() for t in thr])  # spoof missed
    far = np.array([(neg >= t).mean() for t in thr])  # bona fide flagged
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2.0), float(thr[i])


def fit_logistic(scores: np.ndarray, labels: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """(a, b) of p = sigmoid(a*s + b) by class-balanced Newton logistic regression (fallback calibrator)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    w = np.where(y == 1, 0.5 / max(1, y.sum()), 0.5 / max(1, (1 - y).sum()))
    a, b = 1.0, 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a * s + b)))
        g = np.array([np.sum(w * (p - y) * s), np.sum(w * (p - y))]) + 1e-6 * np.array([a, 0.0])
        r = w * p * (1 - p)
        hess = np.array([[np.sum(r * s * s) + 1e-6, np.sum(r * s)], [np.sum(r * s), np.sum(r) + 1e-9]])
        step = np.linalg.solve(hess, g)
        a, b = a - step[0], b - step[1]
        if np.max(np.abs(step)) < 1e-9:
            break
    return float(a), float(b)


def _calibrate(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float, str]:
    """(a, b, probability threshold at the EER, method) on held-back scores."""
    try:
        from voxwarden.detect.calibrate import eer_threshold, fit_platt
    except ImportError:
        a, b = fit_logistic(scores, labels)
        _, thr = eer(scores, labels)
        return a, b, float(1.0 / (1.0 + math.exp(-(a * thr + b)))), "voxwarden.detect.neural.fit_logistic"
    a, b = fit_platt(scores, labels)
    thr_p, _ = eer_threshold(a, b, scores[labels == 0], scores[labels == 1])
    return a, b, thr_p, "voxwarden.detect.calibrate.fit_platt (class-balanced), EER threshold"


def _detector_scorer(model_dir: Path) -> tuple[Callable[[np.ndarray], float], str]:
    """Clip scorer as the ``Detector`` runs it (VAD, card windows, aggregation); raw ONNX windows else."""
    try:
        from voxwarden.audio import Clip
        from voxwarden.detect.train import _clip_scorer

        scorer = _clip_scorer(Path(model_dir))
        return (
            lambda a: scorer(Clip(np.asarray(a, dtype=np.float32), SR))
        ), "detector (VAD, 4 s/2 s windows)"
    except ImportError:
        return (lambda a: float(score_clips(Path(model_dir), [a])[0])), "raw 4 s/2 s windows, no VAD"


def _score_all(
    scorer: Callable[[np.ndarray], float], items: Sequence[CorpusItem]
) -> tuple[np.ndarray, list[int]]:
    """Scores of the items that can be scored (too little speech etc. are skipped) and their indices."""
    scores, kept = [], []
    for i, it in enumerate(items):
        try:
            scores.append(scorer(it.audio))
            kept.append(i)
        except Exception:  # noqa: BLE001 - AudioError (silence, too little speech) or too short: skip
            continue
    return np.asarray(scores, dtype=np.float64), kept


# ------------------------------------------------------------------------------- default recipe


@dataclass
class CorpusItem:
    """One protocol row with its decoded audio."""

    file: str
    label: int
    system: str
    speaker: str
    audio: np.ndarray = field(repr=False)
    split: str = ""


def read_protocol(
    protocol: Path, audio_dir: Path | None = None, *, limit_s: float = 30.0
) -> list[CorpusItem]:
    """Read a protocol TSV (file, label, system, speaker, ...) and decode its audio to 16 kHz mono."""
    import soundfile as sf
    from scipy.signal import resample_poly

    protocol = Path(protocol)
    base = Path(audio_dir) if audio_dir else protocol.parent / "audio"
    out: list[CorpusItem] = []
    with open(protocol, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            path = base / row["file"]
            if not path.is_file():
                path = protocol.parent / row["file"]
            try:
                a, sr = sf.read(str(path), dtype="float32", always_2d=True)
            except Exception:  # noqa: BLE001 - skip unreadable files, counted by the caller
                continue
            a = a.mean(axis=1)
            if sr != SR:
                g = math.gcd(int(sr), SR)
                a = resample_poly(a, SR // g, int(sr) // g).astype(np.float32)
            a = a[: int(limit_s * SR)]
            lab = 1 if row["label"].strip().lower() in ("spoof", "1", "synthetic") else 0
            out.append(
                CorpusItem(
                    row["file"],
                    lab,
                    row.get("system") or ("spoof" if lab else "bonafide"),
                    row.get("speaker") or row["file"],
                    a,
                    (row.get("split") or "").strip().lower(),
                )
            )
    return out


def split_by_speaker(items: Sequence[CorpusItem], frac: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out ``frac`` of speakers (per label): held-back clips never share a speaker with training."""
    rng = np.random.default_rng(seed)
    held: set[str] = set()
    for lab in (0, 1):
        spk = sorted({it.speaker for it in items if it.label == lab})
        rng.shuffle(spk)
        held.update(spk[: max(1, int(round(frac * len(spk))))])
    tr = [i for i, it in enumerate(items) if it.speaker not in held]
    ho = [i for i, it in enumerate(items) if it.speaker in held]
    return tr, ho


def train_heldout(items: Sequence[CorpusItem], frac: float, seed: int) -> tuple[list[int], list[int], str]:
    """The corpus's own ``split`` column (train / val) when it has one, else a seeded speaker split."""
    splits = {it.split for it in items}
    if "train" in splits and "val" in splits:
        tr = [i for i, it in enumerate(items) if it.split == "train"]
        ho = [i for i, it in enumerate(items) if it.split == "val"]
        if {items[i].label for i in tr} == {0, 1} and {items[i].label for i in ho} == {0, 1}:
            return tr, ho, "protocol split column (train / val)"
    tr, ho = split_by_speaker(items, frac, seed)
    return tr, ho, f"seeded speaker split, {frac:.0%} of speakers held back"


def per_system_eer(scores: np.ndarray, items: Sequence[CorpusItem]) -> dict[str, float]:
    """EER of each spoof system against all bona fide clips of the set."""
    labels = np.array([it.label for it in items])
    out = {"overall": round(eer(scores, labels)[0], 4)}
    for sysname in sorted({it.system for it in items if it.label == 1}):
        m = np.array([(it.label == 0) or (it.system == sysname) for it in items])
        out[sysname] = round(eer(scores[m], labels[m])[0], 4)
    return out


def _logo_folds(
    items: Sequence[CorpusItem], tr: Sequence[int], systems: Sequence[str] | None, group: bool
) -> list[list[str]]:
    """Which systems each leave-out fold removes: one fold per system, or one fold for all of them."""
    present = sorted({items[i].system for i in tr if items[i].label == 1})
    chosen = present if systems is None else list(systems)
    unknown = sorted(set(chosen) - set(present))
    if unknown:
        raise ValueError(f"leave-out systems not among the training spoof systems: {unknown} (have {present})")
    if not chosen:
        raise ValueError("no spoof system to leave out")
    return [chosen] if group else [[s] for s in chosen]


def logo_eval(
    items: Sequence[CorpusItem],
    tr: Sequence[int],
    ho: Sequence[int],
    *,
    seed: int = 0,
    progress: Progress | None = None,
    systems: Sequence[str] | None = None,
    group: bool = False,
    keep_dir: Path | None = None,
    **train_opts: Any,
) -> dict[str, float]:
    """Leave-one-generator-out EER: for each spoof system, train without it (on ``tr``) and score it
    together with the held-back bona fide clips (``ho``).

    ``systems`` restricts the folds to those systems (e.g. the neural vocoders); ``group=True`` trains
    ONE model without all of them (stricter than one-out, and one training instead of many) and reports
    each left-out system's EER against the same held-back bona fide. ``keep_dir`` keeps each fold's trained
    model (``keep_dir/SYSTEM[+SYSTEM...]/``, scoreable like any model folder), so the folds can be scored
    again later on other trials, e.g. per clip beside another countermeasure's folds, without retraining."""
    import shutil
    import tempfile

    say = progress or (lambda msg, frac: None)
    out: dict[str, float] = {}
    folds = _logo_folds(items, tr, systems, group)
    for k, names in enumerate(folds):
        tr_k = [i for i in tr if items[i].system not in names]
        with tempfile.TemporaryDirectory() as td:
            train_neural([(items[i].audio, items[i].label) for i in tr_k], Path(td), seed=seed, **train_opts)
            out.update(left_out_eer(Path(td), items, ho, names))
            if keep_dir is not None:
                from voxwarden.detect.protocol import fold_dir

                dest = fold_dir(keep_dir, "+".join(names))
                shutil.rmtree(dest, ignore_errors=True)  # a rerun of the fold replaces it whole
                shutil.copytree(td, dest)
        say(f"LOGO {'+'.join(names)}: EER " + ", ".join(f"{out[n]:.3f}" for n in names), (k + 1) / len(folds))
    return out


def left_out_eer(
    model_dir: Path, items: Sequence[CorpusItem], ho: Sequence[int], systems: Sequence[str]
) -> dict[str, float]:
    """EER of a model on each of ``systems`` (all its clips) against the held-back bona fide (``ho``),
    scored as ``logo_eval`` scores (raw 4 s / 2 s windows). Also how a baseline model is compared on the
    same trials."""
    bona = [i for i in ho if items[i].label == 0]
    out: dict[str, float] = {}
    for name in systems:
        ev = bona + [i for i, it in enumerate(items) if it.system == name and it.label == 1]
        sc = score_clips(Path(model_dir), [items[i].audio for i in ev])
        out[name] = round(eer(sc, np.array([items[i].label for i in ev]))[0], 4)
    return out


def heldout_eer(model_dir: Path, items: Sequence[CorpusItem], ho: Sequence[int]) -> dict[str, Any]:
    """Per-system EER of a finished model (card + model.onnx) on the held-back clips, scored as the
    ``Detector`` scores files: how a candidate and the shipped default are compared on equal terms."""
    scorer, how = _detector_scorer(Path(model_dir))
    held = [items[i] for i in ho]
    scores, kept = _score_all(scorer, held)
    res: dict[str, Any] = per_system_eer(scores, [held[i] for i in kept])
    res["n"] = len(kept)
    res["scored_by"] = how
    return res


def build_default(
    protocol: Path,
    out_dir: Path,
    *,
    seed: int = 0,
    epochs: int = 20,
    holdout: float = 0.2,
    logo: bool = False,
    logo_epochs: int | None = None,
    logo_systems: Sequence[str] | None = None,
    logo_group: bool = False,
    baseline: Path | None = None,
    dev_protocol: Path | None = None,
    pretrained: Path | None = None,
    extra_metrics: Path | None = None,
    command: str | None = None,
    progress: Progress | None = None,
    **opts: Any,
) -> dict:
    """Train, calibrate and document the default model; writes ``card.json`` + ``model.onnx`` in out_dir.

    Speakers are split into train and held-back (calibration, threshold, held-out EER), by a seeded
    split that depends only on the protocol. ``pretrained`` (a folder with ``model.onnx`` and the
    ``training.json`` that ``train_neural`` returned) skips training, e.g. when the same recipe ran on
    a GPU machine. Optional leave-one-generator-out runs and a *validation-only* dev EER go into the
    card's metrics; the dev set never influences calibration or threshold.
    """
    import shutil

    say = progress or (lambda msg, frac: print(f"[{frac:5.1%}] {msg}", flush=True))
    protocol, out_dir = Path(protocol), Path(out_dir)
    items = read_protocol(protocol)
    tr, ho, split_how = train_heldout(items, holdout, seed)
    say(f"{len(items)} clips: {len(tr)} train / {len(ho)} held back ({split_how})", 0.0)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {}
    train_opts = dict(opts)

    if logo:
        metrics["logo_eer"] = logo_eval(
            items, tr, ho, seed=seed, progress=say, epochs=logo_epochs or max(1, epochs // 2),
            systems=logo_systems, group=logo_group, **train_opts
        )
        how_out = "the systems together" if logo_group else "the system"
        n_ep = logo_epochs or max(1, epochs // 2)
        metrics["logo_note"] = (
            f"leave-{'group' if logo_group else 'one-generator'}-out on the training corpus: trained without "
            f"{how_out} ({n_ep} epochs), scored on it plus held-back bona fide (raw windows, no VAD)"
        )
    if baseline is not None:
        # the model this one would replace, scored on the same held-back clips and left-out systems
        base: dict[str, Any] = {"model": str(baseline), "heldout_eer": heldout_eer(baseline, items, ho)}
        if logo:
            base["left_out_systems_eer"] = left_out_eer(baseline, items, ho, sorted(metrics["logo_eer"]))
        metrics["baseline"] = base

    if pretrained is not None:
        shutil.copyfile(Path(pretrained) / "model.onnx", out_dir / "model.onnx")
        fields = json.loads((Path(pretrained) / "training.json").read_text(encoding="utf-8"))
        if fields["sha256"] != _sha256(out_dir / "model.onnx"):
            raise ValueError(f"{pretrained}: model.onnx does not match training.json's sha256")
    else:
        fields = train_neural(
            [(items[i].audio, items[i].label) for i in tr],
            out_dir,
            seed=seed,
            epochs=epochs,
            progress=lambda m, f: say(m, f),
            **train_opts,
        )
        (out_dir / "training.json").write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
    if extra_metrics is not None and Path(extra_metrics).is_file():
        metrics.update(json.loads(Path(extra_metrics).read_text(encoding="utf-8")))

    card: dict[str, Any] = {
        "name": "default",
        "version": datetime.now(UTC).strftime("0.1.%Y%m%d"),
        "kind": "onnx",
        "file": "model.onnx",
        "sha256": fields["sha256"],
        "sample_rate": SR,
        "window": 4.0,
        "hop": 2.0,
        "calibration": {"a": 1.0, "b": 0.0},
        "threshold": 0.5,
        "aggregation": "mean",
    }
    (out_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")

    scorer, how = _detector_scorer(out_dir)
    held = [items[i] for i in ho]
    ho_scores, kept = _score_all(scorer, held)
    held = [held[i] for i in kept]
    ho_labels = np.array([it.label for it in held])
    a, b, threshold, cal_src = _calibrate(ho_scores, ho_labels)
    metrics["heldout_eer"] = per_system_eer(ho_scores, held)
    metrics["heldout_note"] = (
        f"{len(held)} clips ({len(ho) - len(held)} unscoreable) of speakers never seen in "
        f"training; the same clips fit calibration and threshold; scored by {how}"
    )

    if dev_protocol is not None and Path(dev_protocol).is_file():
        dev_items = read_protocol(Path(dev_protocol))
        dev_scores, kept = _score_all(scorer, dev_items)
        dev_items = [dev_items[i] for i in kept]
        dev_labels = np.array([it.label for it in dev_items])
        probs = 1.0 / (1.0 + np.exp(-(a * dev_scores + b)))
        metrics["dev_eer_validation_only"] = per_system_eer(dev_scores, dev_items)
        flagged = probs >= threshold
        metrics["dev_at_threshold_validation_only"] = {
            "bonafide_flagged": round(float(flagged[dev_labels == 0].mean()), 4),
            "spoof_missed": round(float((~flagged[dev_labels == 1]).mean()), 4),
            "n": len(dev_items),
        }
        metrics["dev_note"] = (
            "shared/data/dev: VALIDATION ONLY, computed after every choice was made; never "
            "used for training, hyper-parameters, calibration or threshold"
        )

    card.update(
        {
            "calibration": {"a": round(a, 6), "b": round(b, 6)},
            "calibration_method": cal_src,
            "threshold": round(float(threshold), 4),
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "architecture": fields["architecture"],
            "training": {
                **fields["training"],
                "data": {
                    "protocol": str(protocol),
                    "protocol_sha256": _sha256(protocol),
                    "train_clips": len(tr),
                    "heldback_clips": len(ho),
                    "systems": sorted({it.system for it in items}),
                },
                "recipe": "recipes/train_default.sh",
                "command": command
                or f"python -m voxwarden.detect.neural {protocol} {out_dir} --seed {seed} --epochs {epochs}",
                "split": split_how,
                "pretrained_from": str(pretrained) if pretrained is not None else None,
            },
            "metrics": metrics,
        }
    )
    (out_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (out_dir / "training.json").unlink(missing_ok=True)
    say("done", 1.0)
    return card


def logo_only(
    protocol: Path,
    *,
    seed: int = 0,
    epochs: int = 8,
    holdout: float = 0.2,
    systems: Sequence[str] | None = None,
    group: bool = False,
    baseline: Path | None = None,
    progress: Progress | None = None,
    keep_dir: Path | None = None,
    **opts: Any,
) -> dict[str, Any]:
    """Leave-out folds alone (to run beside the main training): the ``logo_eer`` / ``logo_note`` card
    metrics, plus ``baseline_left_out_eer`` (``baseline`` model on the same trials) when given."""
    say = progress or (lambda msg, frac: print(f"[{frac:5.1%}] {msg}", flush=True))
    items = read_protocol(Path(protocol))
    tr, ho, split_how = train_heldout(items, holdout, seed)
    res: dict[str, Any] = {
        "logo_eer": logo_eval(items, tr, ho, seed=seed, progress=say, epochs=epochs, systems=systems,
                              group=group, keep_dir=keep_dir, **opts),
        "logo_group": group,
        "logo_note": (
            f"leave-{'group' if group else 'one-generator'}-out on the training corpus ({split_how}): trained "
            f"({epochs} epochs) without {'the systems together' if group else 'the system'}, scored on it "
            "plus held-back bona fide (raw 4 s / 2 s windows, no VAD)"
        ),
    }
    if baseline is not None:
        res["baseline_left_out_eer"] = {"model": str(baseline),
                                        **left_out_eer(Path(baseline), items, ho, sorted(res["logo_eer"]))}
    return res


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m voxwarden.detect.neural PROTOCOL OUT_DIR [--seed S] [--epochs E] [--logo] ...``."""
    p = argparse.ArgumentParser(description="Train, calibrate and document the default neural model.")
    p.add_argument("protocol", type=Path, help="corpus protocol.tsv (audio/ beside it)")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--logo", action="store_true", help="also run leave-one-generator-out (slow)")
    p.add_argument("--logo-epochs", type=int, default=None)
    p.add_argument("--logo-systems", default=None, help="comma-separated spoof systems to leave out (default all)")
    p.add_argument("--logo-group", action="store_true", help="leave the --logo-systems out together (1 training)")
    p.add_argument("--logo-only", type=Path, default=None, metavar="JSON",
                   help="only run the leave-out folds (+ --baseline on the same trials), write JSON, exit; "
                   "merge it into a card with --extra-metrics")
    p.add_argument("--logo-keep", type=Path, default=None, metavar="DIR",
                   help="keep each leave-out fold's trained model in DIR/SYSTEM/ (to score the folds again later)")
    p.add_argument("--baseline", type=Path, default=None,
                   help="a model folder (card.json + model.onnx) to score on the same held-back/left-out trials")
    p.add_argument("--dev", type=Path, default=None, help="validation protocol: reported only, never fitted")
    p.add_argument("--pretrained", type=Path, default=None, help="folder with model.onnx + training.json")
    p.add_argument("--extra-metrics", type=Path, default=None, help="JSON merged into the card's metrics")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--cmvn", action="store_true")
    p.add_argument("--frontend", choices=("logspec", "lfcc"), default="logspec",
                   help="logspec (log power spectrogram, the default recipe) or lfcc (20 LFCC + deltas)")
    p.add_argument("--head", choices=("linear", "ocsoftmax"), default="linear",
                   help="linear (binary cross-entropy) or ocsoftmax (one-class softmax, alpha 20, margins 0.9/0.2)")
    p.add_argument("--augment", type=float, default=1.0)
    p.add_argument("--max-seconds", type=float, default=None, help="stop training early after this long")
    p.add_argument("--freq-mask", type=int, default=0, metavar="BINS",
                   help="online frequency masking while training: widest masked band in bins (0 = off)")
    p.add_argument("--freq-masks", type=int, default=2, help="bands masked per example (with --freq-mask)")
    p.add_argument("--time-mask", type=int, default=0, metavar="FRAMES",
                   help="online time masking while training: longest masked run in 10 ms frames (0 = off)")
    p.add_argument("--time-masks", type=int, default=2, help="runs masked per example (with --time-mask)")
    args = p.parse_args(argv)
    opts: dict[str, Any] = dict(
        threads=args.threads, batch=args.batch, device=args.device, cmvn=args.cmvn, augment=args.augment,
        head=args.head,
    )
    if args.frontend != "logspec":
        opts["frontend"] = args.frontend
    if min(args.freq_mask, args.freq_masks, args.time_mask, args.time_masks) < 0:
        p.error("--freq-mask, --freq-masks, --time-mask and --time-masks must be >= 0")
    if args.freq_mask:
        opts.update(freq_mask=args.freq_mask, freq_masks=args.freq_masks)
    if args.time_mask:
        opts.update(time_mask=args.time_mask, time_masks=args.time_masks)
    if args.max_seconds:
        opts["max_seconds"] = args.max_seconds
    if args.steps_per_epoch:
        opts["steps_per_epoch"] = args.steps_per_epoch
    systems = [x for x in args.logo_systems.split(",") if x] if args.logo_systems else None
    if args.logo_only is not None:
        res = logo_only(args.protocol, seed=args.seed, epochs=args.logo_epochs or max(1, args.epochs // 2),
                        holdout=args.holdout, systems=systems, group=args.logo_group, baseline=args.baseline,
                        keep_dir=args.logo_keep, **opts)
        args.logo_only.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
        return 0
    build_default(
        args.protocol,
        args.out_dir,
        seed=args.seed,
        epochs=args.epochs,
        holdout=args.holdout,
        logo=args.logo,
        logo_epochs=args.logo_epochs,
        logo_systems=systems,
        logo_group=args.logo_group,
        baseline=args.baseline,
        dev_protocol=args.dev,
        pretrained=args.pretrained,
        extra_metrics=args.extra_metrics,
        command="python -m voxwarden.detect.neural " + " ".join(sys.argv[1:] if argv is None else argv),
        **opts,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
