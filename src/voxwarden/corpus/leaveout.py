"""Leave generators out of a corpus: a training protocol without them, and an unseen set made of them.

Why: the way to measure generalisation without a training per fold is to keep some generators out of training
on purpose and test on them. Default 0.4 trains on corpus-v9 without `hifigan-ljspeech` and was chosen partly
by its EER on those clips. This module makes both files in one step, so the recipe can be repeated exactly
(``recipes/train_default.sh``):

- ``OUT/protocol.tsv``: every row of the corpus except the left-out systems' rows (all splits);
- ``OUT/unseen.tsv``: the left-out systems' rows (all splits) plus the corpus's held-back (`val`) bona fide rows.
  Score it with ``recipes/compare_models.py OUT/unseen.tsv A B --all-rows``;
- ``OUT/audio``: a link to the corpus's audio folder (nothing is copied);
- ``OUT/leave-out.json``: what was left out, the row counts, and the source protocol's sha256.

Row order and values are the corpus's own, so the files are the same for the same corpus. Both protocols are
written to temporary files first and then renamed, so a failure never leaves half a protocol behind.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from voxwarden.corpus.build import CorpusError, read_protocol, write_protocol
from voxwarden.detect.card import sha256_file

__all__ = ["LeaveOutSummary", "leave_out"]


@dataclass
class LeaveOutSummary:
    """What `leave_out` wrote, with its row counts."""

    out_dir: Path
    protocol: Path
    unseen: Path
    kept: int
    left_out: int
    unseen_bonafide: int
    systems: list[str]


def _write_atomic(path: Path, rows: Sequence[dict[str, str]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        write_protocol(tmp, rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def leave_out(corpus: Path, systems: Sequence[str], out_dir: Path, *, split: str = "val") -> LeaveOutSummary:
    """Write a protocol of `corpus` without `systems` and an unseen set made of them (see the module docstring).

    Raises `CorpusError` for a missing or unreadable protocol, an empty or unknown system name, `bonafide` as a
    system, an `out_dir` that is the corpus itself, an `audio` entry in `out_dir` that is not a link to the
    corpus's audio, or a result with no bona fide or no spoof row left.
    """
    corpus, out_dir = Path(corpus), Path(out_dir)
    names = list(dict.fromkeys(str(s).strip() for s in systems))  # a system named twice is left out once
    if not names or any(not s for s in names):
        raise CorpusError("name at least one system to leave out (an empty name is not a system)")
    if "bonafide" in names:
        raise CorpusError("'bonafide' is the real-speech label, not a generator that can be left out")
    protocol = corpus / "protocol.tsv"
    if not protocol.is_file():
        raise CorpusError(f"{corpus}: no protocol.tsv (build the corpus first)")
    rows = read_protocol(protocol)
    if rows and not {"system", "split"} <= set(rows[0]):
        raise CorpusError(f"{protocol}: needs 'system' and 'split' columns (a corpus built by voxwarden)")
    short = next((i for i, r in enumerate(rows, 2) if None in (r.get("file"), r.get("label"), r.get("system"),
                                                                 r.get("split"))), None)
    if short is not None:
        raise CorpusError(f"{protocol}: line {short} has fewer columns than the header")
    present = Counter(r["system"] for r in rows if r["label"] != "bonafide")
    unknown = sorted(set(names) - set(present))
    if unknown:
        raise CorpusError(f"systems not in {protocol}: {', '.join(unknown)}; it has {', '.join(sorted(present))}")
    audio = (corpus / "audio").resolve()
    if not audio.is_dir():
        raise CorpusError(f"{corpus}: no audio folder")
    if out_dir.resolve() == corpus.resolve():
        raise CorpusError("the output folder must not be the corpus itself (its protocol would be replaced)")

    drop = set(names)
    kept = [r for r in rows if r["system"] not in drop]
    held = [r for r in rows if r["system"] in drop]
    bona_held = [r for r in rows if r["label"] == "bonafide" and r["split"] == split]
    labels = Counter(r["label"] for r in kept)
    if not labels.get("bonafide") or len(kept) == labels["bonafide"]:
        raise CorpusError(f"leaving out {', '.join(names)} leaves no bona fide or no spoof row to train on")
    if not bona_held:
        raise CorpusError(f"{protocol}: no bona fide row in split {split!r} to put beside the unseen clips")

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        link = out_dir / "audio"
        if link.is_symlink() or link.exists():
            if link.resolve() != audio:
                raise CorpusError(f"{link} exists and is not a link to {audio}; remove it or choose another --out")
        else:
            os.symlink(audio, link, target_is_directory=True)
        _write_atomic(out_dir / "protocol.tsv", kept)
        _write_atomic(out_dir / "unseen.tsv", held + bona_held)
        info = {"corpus": str(corpus), "corpus_protocol_sha256": sha256_file(protocol), "left_out": names,
                "split_of_unseen_bonafide": split, "rows": len(rows), "kept": len(kept), "left_out_rows": len(held),
                "left_out_by_system": {s: present[s] for s in names}, "unseen_bonafide": len(bona_held)}
        tmp = out_dir / "leave-out.json.tmp"
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out_dir / "leave-out.json")
    except OSError as e:
        raise CorpusError(f"cannot write {out_dir}: {e}") from e
    return LeaveOutSummary(out_dir=out_dir, protocol=out_dir / "protocol.tsv", unseen=out_dir / "unseen.tsv",
                           kept=len(kept), left_out=len(held), unseen_bonafide=len(bona_held), systems=names)
