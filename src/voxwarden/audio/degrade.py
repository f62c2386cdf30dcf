"""Codec and channel degradations: pure functions on float32 mono arrays.

Why: a deepfake detector must not learn "clean = fake" or "telephone = real". The training corpus applies
the same degradations to both classes, `voxwarden eval --degrade` measures robustness with them, and the
watermark benchmark uses them as attacks. One spec language serves all three:

    mp3:64k  aac:32k  opus:16k  amr:12.2k  gsm  mulaw  g722  resample:8k  lowpass:4k
    noise:10db  reverb:0.3  gain:0.5  gain:-6db  clip:0.5  crop:1-6  crop:3

Specs chain with ``+`` (``opus:16k+noise:20db``), applied left to right. Every degradation keeps the
sample rate and the length of its input, except ``crop`` (which shortens). Randomness (noise, reverb
impulse response, crop position) comes only from the ``rng``/``seed`` argument, so results are
deterministic. Codec round trips run in memory through PyAV (FFmpeg); GSM needs the ``ffmpeg`` binary
(libgsm), since PyAV's bundled FFmpeg lacks it.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CODEC_KINDS",
    "DegradeError",
    "DegradeSpec",
    "KINDS",
    "degrade",
    "degrade_chain",
    "parse_spec",
]

CODEC_KINDS = ("mp3", "aac", "opus", "amr", "gsm", "mulaw", "g722")
KINDS = CODEC_KINDS + ("resample", "lowpass", "noise", "reverb", "gain", "clip", "crop")

# Modes that AMR-NB (libopencore) accepts, in bit/s.
_AMR_RATES = (4750, 5150, 5900, 6700, 7400, 7950, 10200, 12200)
_MAX_SPEC_LEN = 500


class DegradeError(ValueError):
    """A degradation spec is malformed, or a degradation could not be applied to this input."""


@dataclass(frozen=True)
class DegradeSpec:
    """One parsed degradation: `kind` plus its numeric value(s) in SI units (bit/s, Hz, dB, s)."""

    kind: str
    value: float | None = None
    value2: float | None = None
    text: str = ""


_NUM = r"(-?\d+(?:\.\d+)?)"


def _parse_rate(text: str, unit_hint: str) -> float:
    m = re.fullmatch(_NUM + r"([kK]?)(?:" + unit_hint + r")?", text)
    if not m:
        raise DegradeError(f"bad number {text!r}")
    v = float(m.group(1))
    return v * 1000.0 if m.group(2) else v


def parse_spec(spec: str) -> list[DegradeSpec]:
    """Parse ``kind[:value]`` terms joined by ``+`` into specs; raise `DegradeError` with the reason."""
    if not isinstance(spec, str):
        raise DegradeError(f"spec must be a string, got {type(spec).__name__}")
    spec = spec.strip()
    if not spec:
        raise DegradeError("empty degradation spec")
    if len(spec) > _MAX_SPEC_LEN:
        raise DegradeError(f"spec longer than {_MAX_SPEC_LEN} characters")
    out: list[DegradeSpec] = []
    for term in spec.split("+"):
        term = term.strip().lower()
        if not term:
            raise DegradeError(f"empty term in spec {spec!r}")
        kind, _, arg = term.partition(":")
        if kind not in KINDS:
            raise DegradeError(f"unknown degradation {kind!r} in {term!r}; known: {', '.join(KINDS)}")
        try:
            out.append(_parse_term(kind, arg, term))
        except DegradeError as e:
            raise DegradeError(f"{term!r}: {e}") from None
    return out


def _parse_term(kind: str, arg: str, term: str) -> DegradeSpec:
    if kind in ("gsm", "mulaw", "g722"):
        if arg:
            raise DegradeError(f"{kind} takes no value")
        return DegradeSpec(kind, text=term)
    if not arg:
        raise DegradeError(f"{kind} needs a value, e.g. {_EXAMPLES[kind]}")
    if kind in ("mp3", "aac", "opus", "amr"):
        br = _parse_rate(arg, "b|bps")
        lo, hi = _BITRATE_RANGE[kind]
        if not lo <= br <= hi:
            raise DegradeError(f"bitrate {br:g} bit/s outside {lo:g}..{hi:g} for {kind}")
        if kind == "amr":
            br = float(min(_AMR_RATES, key=lambda r: abs(r - br)))
        return DegradeSpec(kind, br, text=term)
    if kind in ("resample", "lowpass"):
        hz = _parse_rate(arg, "hz")
        if not 1000 <= hz <= 96000:
            raise DegradeError(f"frequency {hz:g} Hz outside 1000..96000")
        return DegradeSpec(kind, hz, text=term)
    if kind == "noise":
        m = re.fullmatch(_NUM + r"(?:db)?", arg)
        if not m:
            raise DegradeError("noise needs an SNR like 10db")
        snr = float(m.group(1))
        if not -20 <= snr <= 100:
            raise DegradeError(f"SNR {snr:g} dB outside -20..100")
        return DegradeSpec(kind, snr, text=term)
    if kind == "reverb":
        m = re.fullmatch(_NUM + r"s?", arg)
        if not m or not 0.0 < float(m.group(1)) <= 5.0:
            raise DegradeError("reverb needs an RT60 in seconds in (0, 5], e.g. reverb:0.3")
        return DegradeSpec(kind, float(m.group(1)), text=term)
    if kind == "gain":
        m = re.fullmatch(_NUM + r"(db)?", arg)
        if not m:
            raise DegradeError("gain needs a factor (gain:0.5) or decibels (gain:-6db)")
        v = float(m.group(1))
        factor = 10.0 ** (v / 20.0) if m.group(2) else v
        if not 0.0 <= factor <= 100.0:
            raise DegradeError(f"gain factor {factor:g} outside 0..100")
        return DegradeSpec(kind, factor, text=term)
    if kind == "clip":
        m = re.fullmatch(_NUM, arg)
        if not m or not 0.0 < float(m.group(1)) <= 1.0:
            raise DegradeError("clip needs a fraction of the peak in (0, 1], e.g. clip:0.5")
        return DegradeSpec(kind, float(m.group(1)), text=term)
    # crop
    m = re.fullmatch(_NUM + r"s?(?:-" + _NUM + r"s?)?", arg)
    if not m:
        raise DegradeError("crop needs seconds: crop:3 or a range crop:1-6")
    lo = float(m.group(1))
    hi = float(m.group(2)) if m.group(2) else lo
    if not 0.05 <= lo <= hi <= 3600:
        raise DegradeError(f"crop range {lo:g}-{hi:g} s invalid")
    return DegradeSpec(kind, lo, hi, text=term)


_EXAMPLES = {
    "mp3": "mp3:64k", "aac": "aac:32k", "opus": "opus:16k", "amr": "amr:12.2k", "resample": "resample:8k",
    "lowpass": "lowpass:4k", "noise": "noise:10db", "reverb": "reverb:0.3", "gain": "gain:0.5",
    "clip": "clip:0.5", "crop": "crop:1-6",
}
_BITRATE_RANGE = {"mp3": (8e3, 320e3), "aac": (8e3, 320e3), "opus": (6e3, 256e3), "amr": (4.75e3, 12.2e3)}


# ---------------------------------------------------------------------------------------------- helpers


def _as_mono(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim != 1:
        raise DegradeError(f"expected mono 1-D samples, got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise DegradeError(f"samples must be numeric, got {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise DegradeError("samples contain NaN or infinity")
    return x


def _resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    if sr_from == sr_to:
        return x.astype(np.float32, copy=False)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sr_from), int(sr_to))
    return resample_poly(x, sr_to // g, sr_from // g).astype(np.float32)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    if len(y) >= n:
        return y[:n]
    return np.pad(y, (0, n - len(y)))


def _align(ref: np.ndarray, y: np.ndarray, max_lag: int) -> np.ndarray:
    """Remove codec delay: shift `y` by the lag (0..max_lag) that best matches `ref`, same length."""
    n = len(ref)
    if n == 0:
        return y[:0]
    m = min(len(y), n + max_lag)
    size = 1 << int(np.ceil(np.log2(max(2, n + m))))
    c = np.fft.irfft(np.fft.rfft(y[:m], size) * np.conj(np.fft.rfft(ref, size)), size)
    lag = int(np.argmax(c[: max_lag + 1])) if np.any(ref) else 0
    return _fit_length(y[lag:], n)


def _codec_roundtrip(x: np.ndarray, sr: int, codec: str, fmt: str, bitrate: int, codec_sr: int) -> np.ndarray:
    """Encode `x` with FFmpeg's `codec` at `bitrate` in memory, decode, and return it at `sr`."""
    import av

    y = _resample(x, sr, codec_sr)
    pcm = np.clip(y, -1.0, 1.0)
    buf = io.BytesIO()
    try:
        with av.open(buf, "w", format=fmt) as out:
            st = out.add_stream(codec, rate=codec_sr)
            st.bit_rate = int(bitrate)
            st.layout = "mono"
            cc = st.codec_context
            fs = cc.frame_size or 1024
            pts = 0
            for i in range(0, len(pcm), fs):
                chunk = (pcm[i : i + fs] * 32767.0).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
                frame.sample_rate = codec_sr
                frame.pts = pts
                pts += len(chunk)
                for pkt in st.encode(frame):
                    out.mux(pkt)
            for pkt in st.encode(None):
                out.mux(pkt)
        buf.seek(0)
        decoded: list[np.ndarray] = []
        with av.open(buf, "r", format=fmt if fmt in ("g722", "amr") else None) as inp:
            rs = av.AudioResampler(format="flt", layout="mono", rate=codec_sr)
            for frame in inp.decode(audio=0):
                for f in rs.resample(frame):
                    decoded.append(f.to_ndarray().reshape(-1))
            for f in rs.resample(None):
                decoded.append(f.to_ndarray().reshape(-1))
    except (av.FFmpegError, ValueError) as e:
        raise DegradeError(f"{codec} round trip failed: {e}") from e
    z = np.concatenate(decoded) if decoded else np.zeros(0, np.float32)
    z = _align(y, z.astype(np.float32), max_lag=int(0.15 * codec_sr))
    return _fit_length(_resample(z, codec_sr, sr), len(x))


def _gsm_roundtrip(x: np.ndarray, sr: int) -> np.ndarray:
    """GSM 06.10 full rate (13 kbit/s, 8 kHz) through the ffmpeg binary's libgsm."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise DegradeError("gsm needs the ffmpeg binary (with libgsm) on PATH")
    y = _resample(x, sr, 8000)
    pcm = (np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()
    base = [exe, "-hide_banner", "-loglevel", "error", "-nostdin"]
    try:
        enc = subprocess.run(
            base + ["-f", "s16le", "-ar", "8000", "-ac", "1", "-i", "pipe:0", "-c:a", "libgsm", "-f", "gsm",
                    "pipe:1"], input=pcm, capture_output=True, timeout=120, check=True)
        dec = subprocess.run(
            base + ["-f", "gsm", "-i", "pipe:0", "-f", "s16le", "-ar", "8000", "-ac", "1", "pipe:1"],
            input=enc.stdout, capture_output=True, timeout=120, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        raise DegradeError(f"gsm round trip failed: {e}") from e
    z = np.frombuffer(dec.stdout, dtype="<i2").astype(np.float32) / 32768.0
    z = _align(y, z, max_lag=400)
    return _fit_length(_resample(z, 8000, sr), len(x))


def _mulaw(x: np.ndarray, sr: int) -> np.ndarray:
    """G.711 mu-law telephone channel: 8 kHz, 8-bit companded."""
    y = np.clip(_resample(x, sr, 8000), -1, 1)
    mu = 255.0
    comp = np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu)
    q = np.round((comp + 1) * 127.5) / 127.5 - 1
    y = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu
    return _fit_length(_resample(y.astype(np.float32), 8000, sr), len(x))


def _lowpass(x: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    if cutoff >= sr / 2 * 0.98 or len(x) < 64:
        return x
    sos = butter(8, cutoff / (sr / 2), btype="low", output="sos")
    return sosfiltfilt(sos, x).astype(np.float32)


def _colored_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise (chosen by rng), unit RMS."""
    w = rng.standard_normal(n)
    colour = rng.integers(0, 3)
    if colour and n > 1:
        spec = np.fft.rfft(w)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        spec /= f ** (0.5 * colour)
        w = np.fft.irfft(spec, n)
    rms = float(np.sqrt(np.mean(w**2))) or 1.0
    return (w / rms).astype(np.float32)


def _add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    p = float(np.mean(x.astype(np.float64) ** 2))
    if p <= 1e-12:
        p = 1e-6  # silent input: add noise at a quiet reference level instead of dividing by zero
    noise = _colored_noise(len(x), rng) * np.sqrt(p / (10.0 ** (snr_db / 10.0)))
    return (x + noise).astype(np.float32)


def _reverb(x: np.ndarray, sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room response (exponentially decaying noise, early reflections)."""
    from scipy.signal import fftconvolve

    n = max(16, int(sr * min(rt60 * 1.2, 3.0)))
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # -60 dB at rt60
    ir[0] = 1.0  # direct path
    ir[1:] *= 0.5 * float(rng.uniform(0.5, 1.5)) / np.sqrt(np.sum(ir[1:] ** 2) + 1e-9)
    y = fftconvolve(x, ir)[: len(x)]
    peak_in, peak_out = float(np.max(np.abs(x), initial=0)), float(np.max(np.abs(y), initial=0))
    if peak_out > 0 and peak_in > 0:
        y *= peak_in / peak_out
    return y.astype(np.float32)


def _clip(x: np.ndarray, frac: float) -> np.ndarray:
    peak = float(np.max(np.abs(x), initial=0.0))
    if peak == 0:
        return x
    return np.clip(x, -frac * peak, frac * peak).astype(np.float32)


def _crop(x: np.ndarray, sr: int, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    dur = float(rng.uniform(lo, hi)) if hi > lo else lo
    n = int(round(dur * sr))
    if n >= len(x):
        return x
    start = int(rng.integers(0, len(x) - n + 1))
    return x[start : start + n]


# ----------------------------------------------------------------------------------------------- public


def degrade_chain(
    samples: np.ndarray, sr: int, specs: list[DegradeSpec], rng: np.random.Generator
) -> np.ndarray:
    """Apply parsed `specs` in order; see `degrade`."""
    if not isinstance(sr, int | np.integer) or not 1000 <= int(sr) <= 384000:
        raise DegradeError(f"sample rate must be an integer in 1000..384000, got {sr!r}")
    sr = int(sr)
    x = _as_mono(samples)
    for s in specs:
        if len(x) == 0:
            break
        if s.kind == "mp3":
            codec_sr = sr if sr in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000) else 16000
            x = _codec_roundtrip(x, sr, "libmp3lame", "mp3", int(s.value), codec_sr)
        elif s.kind == "aac":
            x = _codec_roundtrip(x, sr, "aac", "adts", int(s.value), sr if sr <= 48000 else 48000)
        elif s.kind == "opus":
            x = _codec_roundtrip(x, sr, "libopus", "ogg", int(s.value), 48000 if sr > 24000 else
                                 (16000 if sr > 12000 else 8000))
        elif s.kind == "amr":
            x = _codec_roundtrip(x, sr, "libopencore_amrnb", "amr", int(s.value), 8000)
        elif s.kind == "gsm":
            x = _gsm_roundtrip(x, sr)
        elif s.kind == "g722":
            x = _codec_roundtrip(x, sr, "g722", "g722", 64000, 16000)
        elif s.kind == "mulaw":
            x = _mulaw(x, sr)
        elif s.kind == "resample":
            target = int(s.value)
            if target < sr:
                x = _fit_length(_resample(_resample(x, sr, target), target, sr), len(x))
        elif s.kind == "lowpass":
            x = _lowpass(x, sr, float(s.value))
        elif s.kind == "noise":
            x = _add_noise(x, float(s.value), rng)
        elif s.kind == "reverb":
            x = _reverb(x, sr, float(s.value), rng)
        elif s.kind == "gain":
            x = (x * float(s.value)).astype(np.float32)
        elif s.kind == "clip":
            x = _clip(x, float(s.value))
        elif s.kind == "crop":
            x = _crop(x, sr, float(s.value), float(s.value2), rng)
        else:  # pragma: no cover - parse_spec guards this
            raise DegradeError(f"unknown degradation {s.kind!r}")
    return np.ascontiguousarray(x, dtype=np.float32)


def degrade(
    samples: np.ndarray,
    sr: int,
    spec: str,
    *,
    rng: np.random.Generator | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Return a degraded copy of mono `samples` at rate `sr` per `spec` (e.g. ``"opus:16k+noise:20db"``).

    Output keeps `sr` and the input length except for ``crop``. Random parts draw from `rng` (or a fresh
    generator seeded with `seed`), so equal inputs give equal outputs. Values are not re-normalised:
    codecs and gain may push samples past +-1, as a real channel would before the final clamp.
    Raises `DegradeError` for a bad spec, bad samples, or a failed codec round trip.
    """
    specs = parse_spec(spec)
    return degrade_chain(samples, sr, specs, rng if rng is not None else np.random.default_rng(seed))
