#!/usr/bin/env python3
"""Train the small HiFi-GAN-style neural vocoder used for copy-synthesis spoofs in the corpus.

Why: modern deepfakes are made by neural vocoders; the detector must see their artefacts. No pretrained
vocoder can be downloaded here, so we train one on bona fide speech only (never on data/dev/).

    nice python recipes/corpus/train_vocoder.py --out /work/data/vocoders/hifigan-s.pt \
        --data /work/shared/data/train/audio --data /usr/share/klettres --minutes 30

--arch hifigan (default: V3-like, 0.4 M params; --channels 256 --upsample 8,8,2,2 --kernels 3,7,11 for a
larger V2-like one) or --arch vocos (ConvNeXt blocks at the frame rate + iSTFT head, a different artefact
family). Without --adv it trains the generator with mel-L1 + multi-resolution STFT losses only (fast, CPU-friendly,
buzzy/smeared artefacts); with --adv it adds HiFi-GAN's multi-period and multi-scale discriminators and
feature matching (use on a GPU, or for longer CPU runs). It writes the checkpoint every few minutes and at
the end, so a run cut short still leaves a usable model. Reads .flac/.wav/.ogg via soundfile.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from voxwarden.corpus.vocoders import HOP, SR, build_from_meta, torch_log_mel

SEG = 8192


def load_corpus(paths: list[Path], max_minutes: float, seed: int) -> list[np.ndarray]:
    from scipy.signal import resample_poly

    files: list[Path] = []
    out: list[np.ndarray] = []
    for p in paths:
        if p.suffix == ".npz":  # pre-decoded 16 kHz int16 clips (see --pack), for machines without soundfile
            with np.load(p) as z:
                out += [z[k].astype(np.float32) / 32768.0 for k in z.files]
        elif p.is_dir():
            files += [f for f in sorted(p.rglob("*")) if f.suffix.lower() in (".flac", ".wav", ".ogg")]
        elif p.is_file():
            files.append(p)
    rng = np.random.default_rng(seed)
    rng.shuffle(files)
    total = sum(len(x) for x in out) / SR / 60
    for f in files:
        import soundfile as sf

        try:
            x, sr = sf.read(str(f), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError):
            continue
        x = x.mean(axis=1)
        if sr < 16000:
            continue  # narrowband audio would teach the vocoder to drop the upper band
        if sr != SR:
            g = math.gcd(sr, SR)
            x = resample_poly(x, SR // g, sr // g).astype(np.float32)
        peak = float(np.abs(x).max(initial=0))
        if peak < 1e-3 or len(x) < SEG // 2:
            continue
        x = x / peak * 0.9
        out.append(x)
        total += len(x) / SR / 60
        if total >= max_minutes:
            break
    print(f"loaded {len(out)} files, {total:.1f} min", file=sys.stderr)
    return out


def batch(clips: list[np.ndarray], n: int, rng: np.random.Generator) -> torch.Tensor:
    segs = []
    for _ in range(n):
        x = clips[int(rng.integers(len(clips)))]
        if len(x) <= SEG:
            x = np.pad(x, (0, SEG - len(x) + 1))
        s = int(rng.integers(0, len(x) - SEG))
        seg = x[s : s + SEG] * float(rng.uniform(0.3, 1.0))
        segs.append(seg)
    return torch.from_numpy(np.stack(segs).astype(np.float32))


def stft_loss(y: torch.Tensor, yh: torch.Tensor) -> torch.Tensor:
    loss = y.new_zeros(())
    for n_fft, hop in ((512, 128), (1024, 256), (2048, 512), (256, 64)):
        w = torch.hann_window(n_fft, device=y.device)
        s = torch.stft(y, n_fft, hop, window=w, return_complex=True).abs() + 1e-6
        sh = torch.stft(yh, n_fft, hop, window=w, return_complex=True).abs() + 1e-6
        loss = loss + torch.norm(s - sh) / torch.norm(s) + F.l1_loss(s.log(), sh.log())
    return loss / 4


class PeriodD(nn.Module):
    def __init__(self, period: int, ch: int = 32) -> None:
        super().__init__()
        self.period = period
        self.convs = nn.ModuleList([
            nn.Conv2d(1, ch, (5, 1), (3, 1), (2, 0)),
            nn.Conv2d(ch, ch * 2, (5, 1), (3, 1), (2, 0)),
            nn.Conv2d(ch * 2, ch * 4, (5, 1), (3, 1), (2, 0)),
            nn.Conv2d(ch * 4, ch * 4, (5, 1), 1, (2, 0)),
        ])
        self.post = nn.Conv2d(ch * 4, 1, (3, 1), 1, (1, 0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        x = x.view(b, 1, -1, self.period)
        feats = []
        for c in self.convs:
            x = F.leaky_relu(c(x), 0.1)
            feats.append(x)
        x = self.post(x)
        feats.append(x)
        return x.flatten(1), feats


class ScaleD(nn.Module):
    def __init__(self, ch: int = 32) -> None:
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Conv1d(1, ch, 15, 1, 7),
            nn.Conv1d(ch, ch * 2, 41, 4, 20, groups=4),
            nn.Conv1d(ch * 2, ch * 4, 41, 4, 20, groups=16),
            nn.Conv1d(ch * 4, ch * 4, 5, 1, 2),
        ])
        self.post = nn.Conv1d(ch * 4, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = x.unsqueeze(1)
        feats = []
        for c in self.convs:
            x = F.leaky_relu(c(x), 0.1)
            feats.append(x)
        x = self.post(x)
        feats.append(x)
        return x.flatten(1), feats


class Discriminators(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ds = nn.ModuleList([PeriodD(p) for p in (2, 3, 5, 7, 11)] + [ScaleD(), ScaleD()])
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        outs = [d(x) for d in self.ds[:-1]]
        outs.append(self.ds[-1](self.pool(x.unsqueeze(1)).squeeze(1)))
        return outs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--data", type=Path, action="append", required=True, help="audio dir/file (repeat)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--name", default="hifigan-s")
    ap.add_argument("--minutes", type=float, default=30.0, help="wall-clock training budget")
    ap.add_argument("--max-steps", type=int, default=1_000_000)
    ap.add_argument("--data-minutes", type=float, default=90.0, help="how much audio to load")
    ap.add_argument("--batch", type=int, default=0, help="0: 8 on CPU, 32 on GPU")
    ap.add_argument("--adv", action="store_true", help="add HiFi-GAN discriminators (GPU or long runs)")
    ap.add_argument("--adv-after", type=int, default=0, help="start adversarial loss after N steps")
    ap.add_argument("--arch", choices=("hifigan", "vocos"), default="hifigan",
                    help="hifigan: transposed-conv upsampling; vocos: ConvNeXt at frame rate + iSTFT head")
    ap.add_argument("--channels", type=int, default=128, help="hifigan: channels after the input conv")
    ap.add_argument("--upsample", default="8,8,4", help="hifigan: upsampling factors (product 256)")
    ap.add_argument("--kernels", default="3,7", help="hifigan: residual-block kernel sizes per stage")
    ap.add_argument("--dim", type=int, default=256, help="vocos: model width")
    ap.add_argument("--layers", type=int, default=8, help="vocos: ConvNeXt blocks")
    ap.add_argument("--intermediate", type=int, default=768, help="vocos: ConvNeXt hidden width")
    ap.add_argument("--init", type=Path, help="start from this checkpoint's generator (same architecture)")
    ap.add_argument("--half", action="store_true", help="store weights as float16 (half the file size)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--pack", action="store_true", help="only write the loaded audio to --out as .npz")
    args = ap.parse_args()
    if args.pack:
        clips = load_corpus(args.data, args.data_minutes, args.seed)
        np.savez(args.out, *[np.round(np.clip(c, -1, 1) * 32767).astype(np.int16) for c in clips])
        print(f"packed {len(clips)} clips into {args.out}", file=sys.stderr)
        return 0

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bs = args.batch or (32 if dev.type == "cuda" else 8)
    clips = load_corpus(args.data, args.data_minutes, args.seed)
    if not clips:
        print("no usable audio found", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    arch_meta: dict = {"arch": args.arch}
    if args.arch == "hifigan":
        arch_meta |= {"channels": args.channels, "upsample": [int(v) for v in args.upsample.split(",")],
                      "kernels": [int(v) for v in args.kernels.split(",")]}
    else:
        arch_meta |= {"dim": args.dim, "layers": args.layers, "intermediate": args.intermediate}
    gen = build_from_meta(arch_meta).to(dev)
    print(f"{args.name}: {args.arch}, {sum(p.numel() for p in gen.parameters()) / 1e6:.2f} M params",
          file=sys.stderr)
    opt_g = torch.optim.AdamW(gen.parameters(), 2e-4 if args.adv else 5e-4, betas=(0.8, 0.99))
    disc = Discriminators().to(dev) if args.adv else None
    opt_d = torch.optim.AdamW(disc.parameters(), 2e-4, betas=(0.8, 0.99)) if disc else None
    step = 0
    start = args.init or (args.out if args.resume and args.out.exists() else None)
    if start is not None:
        ck = torch.load(start, map_location=dev, weights_only=True)
        gen.load_state_dict({k: v.float() for k, v in ck["generator"].items()})
        step = int(ck["meta"].get("steps", 0))
        print(f"resumed from {start} at step {step}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        meta = {"name": args.name, **arch_meta, "sr": SR, "hop": HOP, "steps": step,
                "params": sum(p.numel() for p in gen.parameters()),
                "seconds": round(time.time() - t0), "adversarial": bool(args.adv), "device": dev.type,
                "trained_on": [str(p) for p in args.data], "minutes_budget": args.minutes,
                "loss_mel_l1": round(float(last_mel), 4)}
        tmp = args.out.with_suffix(".tmp")
        state = {k: (v.half() if args.half and v.is_floating_point() else v).cpu()
                 for k, v in gen.state_dict().items()}
        torch.save({"generator": state, "meta": meta}, tmp)
        tmp.replace(args.out)
        args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2))

    t0 = time.time()
    last_save = t0
    last_mel = float("nan")
    while step < args.max_steps and time.time() - t0 < args.minutes * 60:
        y = batch(clips, bs, rng).to(dev)
        mel = torch_log_mel(y)
        yh = gen(mel)[:, : y.shape[1]]
        mel_l1 = F.l1_loss(torch_log_mel(yh), mel)
        use_adv = disc is not None and step >= args.adv_after
        if use_adv:
            assert opt_d is not None
            d_loss = y.new_zeros(())
            for (r, _), (f, _) in zip(disc(y), disc(yh.detach()), strict=True):
                d_loss = d_loss + torch.mean((1 - r) ** 2) + torch.mean(f**2)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_adv, fm = y.new_zeros(()), y.new_zeros(())
            real = disc(y)
            for (f, ff), (_, rf) in zip(disc(yh), real, strict=True):
                g_adv = g_adv + torch.mean((1 - f) ** 2)
                fm = fm + sum(F.l1_loss(a, b.detach()) for a, b in zip(ff, rf, strict=True))
            g_loss = g_adv + 2 * fm + 45 * mel_l1
        else:
            g_loss = 10 * mel_l1 + 2.5 * stft_loss(y, yh)
        opt_g.zero_grad()
        g_loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 10.0)
        opt_g.step()
        last_mel = float(mel_l1.detach())
        step += 1
        if step % 100 == 0:
            g = float(g_loss.detach())
            print(f"{args.name} step {step} mel_l1 {last_mel:.3f} g {g:.3f} {time.time() - t0:.0f}s",
                  file=sys.stderr, flush=True)
        if time.time() - last_save > 180:
            save()
            last_save = time.time()
    save()
    print(f"saved {args.out} after {step} steps, mel_l1 {last_mel:.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
