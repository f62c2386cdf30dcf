"""A held-out test set of TTS systems a model never trained on, beside a corpus's held-back bona fide clips.

Why: leave-one-generator-out folds cost one training each; a set of *unseen* generators (systems left out
of the training corpus on purpose) measures generalisation with no training at all, and it is not the
validation set, so it may be used to choose between models. The spoof clips get exactly the corpus's
label-blind treatment (trim, 1-6 s crop, a bona fide partner's native channel, padding, level, random
codec/channel degradation), so only the generator differs from the bona fide side.

Layout written to `out_dir`: ``audio/*.flac`` (new spoofs; bona fide clips are hard-linked or copied from the
corpus), ``protocol.tsv`` (the corpus's columns) and ``manifest.json``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxwarden.audio.degrade import DegradeError
from voxwarden.corpus.augment import finish_clip, random_crop, trim_silence
from voxwarden.corpus.build import SR, CorpusError, text_pools, write_flac, write_protocol

_ENGINE_KEYS = ("label", "system", "speaker", "language", "source", "licence", "split", "voice", "pair",
                "channel", "augment")


@dataclass
class HeldoutSummary:
    """What `build_heldout_tts` wrote."""

    out_dir: Path
    protocol: Path
    bonafide: int
    spoof: dict[str, int]
    warnings: list[str]


def _read_protocol(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise CorpusError(f"cannot read corpus protocol {path}: {e}") from e


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_heldout_tts(
    out_dir: Path,
    corpus_dir: Path,
    systems: Sequence[str],
    *,
    per_system: int = 60,
    seed: int = 0,
    split: str = "val",
    crop_max: float = 6.0,
) -> HeldoutSummary:
    """Synthesise `per_system` clips for each TTS `system` and pair them with `corpus_dir`'s `split` bona fide.

    Every system must be installed (`voxwarden.corpus.tts.available_voices`); texts come from the installed
    prompt packages and the built-in English sentences, in the languages the system speaks.
    """
    from voxwarden.corpus.sources import to_corpus_rate
    from voxwarden.corpus.tts import PiperWorker, TTSError, available_voices, synthesize

    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    rows = _read_protocol(corpus_dir / "protocol.tsv")
    bona = [r for r in rows if r.get("label") == "bonafide" and r.get("split") == split]
    if not bona:
        raise CorpusError(f"{corpus_dir} has no bona fide clips in split {split!r}")
    voices = [v for v in available_voices() if v.system in set(systems)]
    missing = sorted(set(systems) - {v.system for v in voices})
    if missing:
        raise CorpusError(f"TTS system(s) not installed: {', '.join(missing)}")
    if per_system < 1:
        raise CorpusError("per_system must be >= 1")

    audio = out_dir / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    # a previous set's protocol/manifest go first: a run that dies midway leaves no protocol naming clips
    # that are gone (the new protocol is written only at the end)
    for stale in (out_dir / "protocol.tsv", out_dir / "manifest.json"):
        stale.unlink(missing_ok=True)
    for old in audio.glob("*.flac"):
        old.unlink()
    out_rows: list[dict[str, str]] = []
    for r in bona:
        src = corpus_dir / "audio" / r["file"]
        if not src.is_file():
            raise CorpusError(f"corpus clip missing: {src}")
        _link_or_copy(src, audio / r["file"])
        out_rows.append({k: r.get(k, "") for k in ["file", *_ENGINE_KEYS]})

    # sentences, not the letters and syllables of the prompt packages: a clip must hold speech after trimming
    texts = {k: [t for t in v if len(t) >= 24] for k, v in text_pools([], True).items()}
    warnings: list[str] = []
    made: Counter[str] = Counter()
    piper = None
    try:
        if any(v.engine == "piper" for v in voices):
            piper = PiperWorker(seed)
        for system in systems:
            sv = [v for v in voices if v.system == system]
            tries = 0
            while made[system] < per_system and tries < 5 * per_system:
                r = np.random.default_rng(zlib.crc32(f"{seed}:heldout:{system}:{tries}".encode()))
                tries += 1
                voice = sv[int(r.integers(len(sv)))]
                lang = voice.languages[int(r.integers(len(voice.languages)))]
                if not texts.get(lang):
                    lang = "en" if "en" in voice.languages or not voice.languages else lang
                pool = texts.get(lang) or texts["en"]
                text = pool[int(r.integers(len(pool)))]
                partner = bona[int(r.integers(len(bona)))]
                try:
                    y, vsr, detail = synthesize(voice, text, r, piper=piper)
                    y = trim_silence(to_corpus_rate(y, vsr))
                    if len(y) < int(0.6 * SR):
                        continue
                    y = random_crop(y, r, crop_max)
                    y, aug = finish_clip(y, r, partner.get("channel", ""))
                except (TTSError, DegradeError, ValueError) as e:
                    warnings.append(f"{system} failed: {e}")
                    continue
                name = f"sp_{zlib.crc32((system + detail + text).encode()):08x}_{len(out_rows):05d}.flac"
                write_flac(audio / name, y)
                made[system] += 1
                out_rows.append({"file": name, "label": "spoof", "system": system, "speaker": voice.speaker,
                                 "language": lang, "source": f"tts:{voice.engine}", "licence": voice.licence,
                                 "split": "heldout", "voice": detail, "pair": partner["file"],
                                 "channel": partner.get("channel", ""), "augment": aug})
            if made[system] < per_system:
                warnings.append(f"{system}: only {made[system]} of {per_system} clips could be made")
    finally:
        if piper is not None:
            piper.close()

    protocol = out_dir / "protocol.tsv"
    write_protocol(protocol, out_rows)
    manifest = {"name": out_dir.name, "corpus": str(corpus_dir), "split": split, "seed": seed,
                "systems": list(systems), "per_system": per_system, "bonafide": len(bona),
                "spoof": dict(made), "sample_rate": SR,
                "licences": {v.system: v.licence for v in voices}, "warnings": warnings[:200]}
    tmp = out_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    tmp.replace(out_dir / "manifest.json")
    return HeldoutSummary(out_dir, protocol, len(bona), dict(made), warnings)
