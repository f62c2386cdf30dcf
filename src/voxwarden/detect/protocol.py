"""Evaluation/training protocols: which file is bona fide or spoof, from which system and speaker.

``read_protocol`` auto-detects four layouts:

* **voxwarden TSV** (``shared/data/*/protocol.tsv``): tab-separated with a header naming at least
  ``file`` and ``label`` (``bonafide``/``spoof``); ``system``, ``speaker``, ``language`` optional, other
  columns go to ``extra``. ``file`` is relative to the audio directory.
* **ASVspoof 2019 LA/PA CM protocol** (``ASVspoof2019.LA.cm.*.trl.txt``), 5 space-separated columns:
  ``SPEAKER FILE_ID ENV SYSTEM KEY``, e.g. ``LA_0079 LA_T_1138215 - - bonafide`` or
  ``LA_0079 LA_T_1271820 - A01 spoof``; audio ``<FILE_ID>.flac``.
* **ASVspoof 2021 LA/DF keys** (``keys/{LA,DF}/CM/trial_metadata.txt``), 8 or more space-separated
  columns: ``SPEAKER FILE_ID CODEC TRANSMISSION|SOURCE ATTACK KEY TRIM SUBSET [VOCODER ...]``, e.g.
  ``LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval`` or
  ``LA_0023 DF_E_2000011 nocodec asvspoof A14 spoof notrim progress traditional_vocoder - - - -``.
  Columns 3, 4, 7, 8 and the rest go to ``extra`` (``codec``, ``transmission``, ``trim``, ``subset``,
  ``vocoder``, ``extra_<n>``). Assumed from the published key files' layout.
* **ASVspoof 5** (``ASVspoof5.{train,dev.track_1}.tsv``, whitespace-separated despite the name),
  10 columns: ``SPEAKER FILE_ID GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP``;
  system is ATTACK_LABEL (e.g. ``A05``); audio ``<FILE_ID>.flac``.
* **In-the-Wild** ``meta.csv``: comma-separated, header ``file,speaker,label`` with label ``spoof`` or
  ``bona-fide``; system is ``in-the-wild`` for spoofs (the corpus does not name generators).

Bona fide rows always get system ``bonafide``. Malformed lines raise ``ProtocolError`` naming the line.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

LABELS = ("bonafide", "spoof")
_LABEL_ALIASES = {
    "bonafide": "bonafide",
    "bona-fide": "bonafide",
    "bona_fide": "bonafide",
    "bona fide": "bonafide",
    "genuine": "bonafide",
    "real": "bonafide",
    "spoof": "spoof",
    "fake": "spoof",
    "synthetic": "spoof",
}
MAX_PROTOCOL_BYTES = 512 * 1024 * 1024
AUDIO_SUFFIXES = (".flac", ".wav")


class ProtocolError(ValueError):
    """A protocol file that cannot be read or has a malformed line (message names the line)."""


@dataclass
class ProtocolRow:
    """One trial: audio file (relative to the audio dir), label, generating system, speaker, language."""

    file: str
    label: str
    system: str
    speaker: str | None = None
    language: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_spoof(self) -> bool:
        return self.label == "spoof"


def _norm_label(raw: str, path: Path, lineno: int) -> str:
    lab = _LABEL_ALIASES.get(raw.strip().lower())
    if lab is None:
        raise ProtocolError(f"{path}:{lineno}: unknown label {raw!r} (expected bonafide or spoof)")
    return lab


def _read_text(path: Path) -> str:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_PROTOCOL_BYTES:
            raise ProtocolError(f"{path}: protocol is {size} bytes, larger than {MAX_PROTOCOL_BYTES}")
        data = path.read_bytes()
    except OSError as e:
        raise ProtocolError(f"{path}: cannot read protocol ({e.strerror or e})") from e
    if b"\x00" in data[:65536]:
        raise ProtocolError(f"{path}: binary file, not a text protocol")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ProtocolError(f"{path}: not UTF-8 text ({e})") from e


def detect_format(text: str) -> str:
    """One of ``tsv``, ``csv``, ``asvspoof2019``, ``asvspoof2021``, ``asvspoof5``; else ProtocolError."""
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), None)
    if first is None:
        raise ProtocolError("empty protocol")
    low = first.lower()
    if "\t" in first:
        cols = [c.strip() for c in low.split("\t")]
        if "file" in cols and "label" in cols:
            return "tsv"
        raise ProtocolError("tab-separated protocol needs a header with 'file' and 'label' columns")
    if "," in first:
        cols = [c.strip() for c in low.split(",")]
        if "file" in cols and "label" in cols:
            return "csv"
        raise ProtocolError("comma-separated protocol needs a header with 'file' and 'label' columns")
    parts = first.split()
    if len(parts) == 5:
        return "asvspoof2019"
    if len(parts) == 10 and parts[8].lower() in _LABEL_ALIASES:
        return "asvspoof5"
    if len(parts) >= 8:
        return "asvspoof2021"
    raise ProtocolError(
        f"unrecognised protocol layout (first line has {len(parts)} space-separated columns; expected "
        "a TSV/CSV header, 5 columns (ASVspoof 2019), >= 8 (ASVspoof 2021 keys) or 10 (ASVspoof 5))"
    )


def _read_table(text: str, path: Path, delimiter: str) -> list[ProtocolRow]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[ProtocolRow] = []
    header: list[str] | None = None
    for lineno, rec in enumerate(reader, start=1):
        if not rec or all(not c.strip() for c in rec) or rec[0].lstrip().startswith("#"):
            continue
        rec = [c.strip() for c in rec]
        if header is None:
            header = [c.lower() for c in rec]
            continue
        if len(rec) != len(header):
            raise ProtocolError(f"{path}:{lineno}: {len(rec)} columns, header has {len(header)}")
        d = dict(zip(header, rec, strict=True))
        if not d["file"]:
            raise ProtocolError(f"{path}:{lineno}: empty file name")
        label = _norm_label(d["label"], path, lineno)
        if label == "bonafide":
            system = "bonafide"
        else:
            system = d.get("system") or ("in-the-wild" if delimiter == "," else "unknown")
        extra = {k: v for k, v in d.items() if k not in ("file", "label", "system", "speaker", "language")}
        rows.append(
            ProtocolRow(
                file=d["file"],
                label=label,
                system=system,
                speaker=d.get("speaker") or None,
                language=d.get("language") or None,
                extra=extra,
            )
        )
    return rows


def _read_asvspoof(text: str, path: Path, fmt: str) -> list[ProtocolRow]:
    rows: list[ProtocolRow] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        p = line.split()
        if fmt == "asvspoof2019":
            if len(p) != 5:
                raise ProtocolError(f"{path}:{lineno}: expected 5 columns (ASVspoof 2019), got {len(p)}")
            speaker, fid, env, system, key = p
            extra = {"environment": env} if env != "-" else {}
        elif fmt == "asvspoof5":
            if len(p) != 10:
                raise ProtocolError(f"{path}:{lineno}: expected 10 columns (ASVspoof 5), got {len(p)}")
            speaker, fid, gender, codec, codec_q, codec_seed, tag, system, key, _tmp = p
            extra = {k: v for k, v in (("gender", gender), ("codec", codec), ("codec_q", codec_q),
                                        ("codec_seed", codec_seed), ("attack_tag", tag)) if v != "-"}
        else:
            if len(p) < 8:
                raise ProtocolError(
                    f"{path}:{lineno}: expected >= 8 columns (ASVspoof 2021 keys), got {len(p)}"
                )
            speaker, fid, codec, trans, system, key, trim, subset = p[:8]
            extra = {"codec": codec, "transmission": trans, "trim": trim, "subset": subset}
            if len(p) > 8:
                extra["vocoder"] = p[8]
            for i, v in enumerate(p[9:], start=9):
                if v != "-":
                    extra[f"extra_{i}"] = v
        label = _norm_label(key, path, lineno)
        if label == "bonafide":
            system = "bonafide"
        elif system == "-":
            system = "unknown"
        rows.append(ProtocolRow(file=f"{fid}.flac", label=label, system=system, speaker=speaker, extra=extra))
    return rows


def read_protocol(path: Path | str) -> list[ProtocolRow]:
    """Read a protocol in any supported layout (see module doc); raises ProtocolError on bad input."""
    path = Path(path)
    text = _read_text(path)
    try:
        fmt = detect_format(text)
    except ProtocolError as e:
        raise ProtocolError(f"{path}: {e}") from None
    if fmt == "tsv":
        rows = _read_table(text, path, "\t")
    elif fmt == "csv":
        rows = _read_table(text, path, ",")
    else:
        rows = _read_asvspoof(text, path, fmt)
    if not rows:
        raise ProtocolError(f"{path}: no trials in protocol")
    return rows


def resolve_audio(row: ProtocolRow, audio_dir: Path | str) -> Path:
    """Path of a row's audio under ``audio_dir``; refuses names that escape it (``..``, absolute paths).

    Symlinks inside ``audio_dir`` are followed (a folder of links to a corpus is a normal setup); only
    the protocol's names are untrusted.

    Also looks in ``audio_dir/flac/`` (ASVspoof's layout) and tries ``.flac``/``.wav`` when the named
    file is missing. Returns the first existing candidate, else the plain join (the loader reports it).
    """
    base = Path(audio_dir)
    rel = Path(row.file)
    if rel.is_absolute() or ".." in rel.parts or not row.file.strip():
        raise ProtocolError(f"audio name {row.file!r} escapes the audio directory")
    candidates = [base / rel, base / "flac" / rel]
    stem_cands = [c.with_suffix(s) for c in candidates for s in AUDIO_SUFFIXES if c.suffix.lower() != s]
    for c in candidates + stem_cands:
        if c.is_file():
            return c
    return base / rel


def fold_dir(root: Path | str, name: str) -> Path:
    """``root/name`` for a folder named after a protocol's system(s) (a kept leave-out fold model).

    System names come from the protocol, which is untrusted: a name that is empty, ``.``/``..`` or holds a
    path separator would write outside ``root``, so it is refused.
    """
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ProtocolError(f"system name {name!r} cannot name a folder")
    return Path(root) / name
