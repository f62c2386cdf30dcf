"""Bona fide (real human speech) sources that can be installed here, and how to read them.

Why: the detector needs real speech from many speakers, languages and channels, so that "real" is not
learned as one microphone or one codec. Sources, each optional (missing ones are skipped and reported):

- Debian ``asterisk-core-sounds-{en,es,fr,it,ru}`` (+ ``-wav``/``-g722``/``-gsm``): studio IVR prompts by
  four professional voices, with transcripts; ``.wav`` is 8 kHz PCM, ``.gsm`` 8 kHz GSM 06.10, ``.g722``
  decodes to 16 kHz. One coding per prompt is used. CC-BY-SA-3.0.
- Debian ``klettres-data``: letters and syllables spoken in ~20 languages, 44.1 kHz Ogg Vorbis. GPL-2+.
- Debian ``alsa-utils``: the speaker-test channel names ("Front left"...), 48 kHz WAV. GPL-2.
- ``shared/data/train`` (project data, optional): 479 real clips, 262 speakers, 16 kHz FLAC, with a
  ``protocol.tsv`` giving speaker, language and licence. Users of the package do not have it.

Each item carries `channel`: a degrade spec that mimics how the source was captured/coded. Spoofs made
from or paired with an item get the same channel, so codec and bandwidth cannot tell the classes apart.
"""

from __future__ import annotations

import csv
import gzip
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxwarden.audio.errors import CorruptMediaError, NotMediaError, UnreadableError

SR = 16000

ASTERISK_ROOT = Path("/usr/share/asterisk/sounds")
ASTERISK_DOC = Path("/usr/share/doc")
KLETTRES_ROOT = Path("/usr/share/klettres")
ALSA_ROOT = Path("/usr/share/sounds/alsa")

ASTERISK_LICENCE = "CC-BY-SA-3.0 (asterisk-core-sounds, Digium; voices Allison Smith, June Wallack, et al.)"
KLETTRES_LICENCE = "GPL-2+ (klettres-data, KDE Education)"
ALSA_LICENCE = "GPL-2 (alsa-utils speaker-test sounds)"

__all__ = [
    "SourceItem",
    "alsa_items",
    "asterisk_items",
    "klettres_items",
    "load_item",
    "shared_train_items",
]


@dataclass(frozen=True)
class SourceItem:
    """One real recording (or a time range of one) usable as bona fide speech."""

    key: str
    source: str
    path: Path
    speaker: str
    language: str
    licence: str
    native_sr: int
    channel: str = ""
    text: str | None = None
    start: float | None = None
    end: float | None = None


# ------------------------------------------------------------------------------------------ asterisk

_AST_LANGS = {"en": "en", "es": "es", "fr": "fr", "it": "it", "ru": "ru"}


def _asterisk_transcripts(lang: str, doc_root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    path = doc_root / f"asterisk-core-sounds-{lang}" / f"core-sounds-{lang}.txt.gz"
    if not path.is_file():
        return out
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if ":" not in line or line.startswith(";"):
                continue
            k, _, v = line.partition(":")
            v = v.strip()
            if k.strip() and v:
                out[k.strip()] = v
    return out


def asterisk_items(root: Path = ASTERISK_ROOT, doc_root: Path = ASTERISK_DOC) -> list[SourceItem]:
    """Spoken asterisk prompts with a transcript (tones, beeps and silences are skipped)."""
    items: list[SourceItem] = []
    for lang in _AST_LANGS:
        d = root / lang
        if not d.is_dir():
            continue
        voice = d.resolve().name  # e.g. en_US_f_Allison
        speaker = "asterisk-" + voice.split("_")[-1].lower()
        texts = _asterisk_transcripts(lang, doc_root)
        for stem, text in sorted(texts.items()):
            if text.startswith("[") or "silence/" in stem or "beep" in stem or "tone" in stem:
                continue
            codings = ((".g722", 16000, "g722"), (".wav", 8000, "resample:8k"), (".gsm", 8000, "gsm"))
            for ext, sr, channel in codings:
                p = d / (stem + ext)
                if p.is_file():
                    items.append(SourceItem(
                        key=f"ast-{lang}-{ext[1:]}-{stem}", source=f"asterisk-{lang}-{ext[1:]}", path=p,
                        speaker=speaker, language=lang, licence=ASTERISK_LICENCE, native_sr=sr,
                        channel=channel, text=text))
    return items


# ------------------------------------------------------------------------------------------ klettres


def klettres_items(root: Path = KLETTRES_ROOT) -> list[SourceItem]:
    """Letters and syllables from klettres-data (one speaker per language folder)."""
    items: list[SourceItem] = []
    if not root.is_dir():
        return items
    for xml in sorted(root.glob("*/sounds.xml")):
        try:
            tree = ET.parse(xml)
        except ET.ParseError:
            continue
        for lang_el in tree.getroot().iter("language"):
            code = lang_el.get("code") or xml.parent.name
            for snd in lang_el.iter("sound"):
                rel, name = snd.get("file"), snd.get("name")
                if not rel:
                    continue
                p = root / rel
                if not p.is_file():
                    continue
                items.append(SourceItem(
                    key=f"klettres-{rel.replace('/', '-')}", source="klettres", path=p,
                    speaker=f"klettres-{code}", language=code.split("_")[0], licence=KLETTRES_LICENCE,
                    native_sr=44100, channel="", text=name))
    return items


def alsa_items(root: Path = ALSA_ROOT) -> list[SourceItem]:
    """speaker-test's spoken channel names (one speaker); Noise.wav is skipped."""
    if not root.is_dir():
        return []
    return [
        SourceItem(key=f"alsa-{p.stem}", source="alsa-utils", path=p, speaker="alsa-speaker-test",
                   language="en", licence=ALSA_LICENCE, native_sr=48000, text=p.stem.replace("_", " "))
        for p in sorted(root.glob("*.wav")) if p.stem.lower() != "noise"
    ]


# -------------------------------------------------------------------------------------- shared/train


def shared_train_items(train_dir: Path) -> list[SourceItem]:
    """Rows of shared/data/train/protocol.tsv whose audio exists; clips > 6 s split into ~4 s pieces."""
    proto = Path(train_dir) / "protocol.tsv"
    if not proto.is_file():
        return []
    items: list[SourceItem] = []
    with proto.open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            p = Path(train_dir) / "audio" / row["file"]
            if row.get("label") != "bonafide" or not p.is_file():
                continue
            try:
                import soundfile as sf

                dur = float(sf.info(str(p)).duration)
            except Exception:  # noqa: BLE001 - unreadable files are skipped
                continue
            src = row.get("source_repo", "")
            native = 24000 if "athena" in src else 16000
            channel = "mp3:64k" if "librispeech" in row.get("source_path", "").lower() else ""
            pieces = max(1, int(dur // 4.0)) if dur > 6.0 else 1
            step = dur / pieces
            for i in range(pieces):
                items.append(SourceItem(
                    key=f"train-{Path(row['file']).stem}-{i}", source="shared-train", path=p,
                    speaker=row.get("speaker") or "unknown", language=row.get("language") or "en",
                    licence=row.get("licence") or "see shared/data/train/README.md", native_sr=native,
                    channel=channel, start=i * step if pieces > 1 else None,
                    end=(i + 1) * step if pieces > 1 else None))
    return items


# ------------------------------------------------------------------------------------------- reading


def to_corpus_rate(x: np.ndarray, sr: int, target: int = SR) -> np.ndarray:
    """Resample to the corpus rate (16 kHz) with a polyphase filter; float32 out."""
    if sr == target:
        return x.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = math.gcd(int(sr), target)
    return resample_poly(x, target // g, int(sr) // g).astype(np.float32)


def _read_av(path: Path, fmt: str | None) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path), format=fmt) as c:
            if not c.streams.audio:
                raise NotMediaError(f"{path}: no audio stream")
            rate = c.streams.audio[0].rate or 16000
            rs = av.AudioResampler(format="flt", layout="mono", rate=rate)
            parts = [f.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for f in rs.resample(fr)]
            parts += [f.to_ndarray().reshape(-1) for f in rs.resample(None)]
    except av.FFmpegError as e:
        raise CorruptMediaError(f"{path}: {e}") from e
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), int(rate)


def load_item(item: SourceItem) -> np.ndarray:
    """Decode `item` to float32 mono at 16 kHz (its time range only). Raises `AudioError` subclasses."""
    p = item.path
    if not p.is_file():
        raise UnreadableError(f"{p}: not a file")
    if p.suffix in (".g722", ".gsm"):
        x, sr = _read_av(p, p.suffix[1:])
    else:
        import soundfile as sf

        try:
            data, sr = sf.read(str(p), dtype="float32", always_2d=True)
            x = data.mean(axis=1)
        except (RuntimeError, sf.LibsndfileError):
            x, sr = _read_av(p, None)
    if item.start is not None and item.end is not None:
        x = x[int(item.start * sr) : int(item.end * sr)]
    return to_corpus_rate(np.asarray(x, dtype=np.float32), sr)


def summarise(items: Iterable[SourceItem]) -> dict[str, dict[str, object]]:
    """Per-source counts, speakers, languages and licence (for manifest.json)."""
    out: dict[str, dict[str, object]] = {}
    for it in items:
        d = out.setdefault(
            it.source, {"items": 0, "speakers": set(), "languages": set(), "licence": it.licence})
        d["items"] = int(d["items"]) + 1  # type: ignore[call-overload]
        d["speakers"].add(it.speaker)  # type: ignore[union-attr]
        d["languages"].add(it.language)  # type: ignore[union-attr]
    return {k: {**v, "speakers": len(v["speakers"]), "languages": sorted(v["languages"])}  # type: ignore[arg-type]
            for k, v in out.items()}


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """File-name-safe slug."""
    return _SAFE.sub("-", text).strip("-")[:80] or "x"
