"""Evidence of flagged file scans: the audio a reviewer or auditor needs to hear, kept with the scan.

A scan whose decision is ``synthetic`` keeps, as content-addressed PCM16 WAV files (16 kHz mono, the
model's input) linked to the scan row:

* the whole upload when it is at most ``WHOLE_MAX_SECONDS`` long;
* otherwise its flagged segments (probability ≥ the threshold; when no single segment is, the most
  probable one), overlapping segments merged, up to ``MAX_SECONDS`` in all, earliest first.

The samples come from the detector's own decode (`Detector.decode`), so a flagged upload is decoded once;
a caller that has only the bytes or a path gets them decoded here. Files are written
and linked in the scan's own transaction and only when the scan row is new, so a replayed upload or a
retried job never adds evidence twice.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sqlalchemy.orm import Session

from voxwarden.audio.clip import Clip
from voxwarden.audio.errors import AudioError
from voxwarden.live.evidence import EvidenceClip, to_pcm16
from voxwarden.store import EvidenceError, EvidenceStore, InvalidInputError, StoreUnavailableError
from voxwarden.store.evidence import attach_evidence

log = logging.getLogger("voxwarden.api.evidence")

SAMPLE_RATE = 16000
WHOLE_MAX_SECONDS = 30.0  # a flagged upload up to this long is kept whole
MAX_SECONDS = 120.0  # at most this much flagged audio is kept of one longer upload


def flagged_spans(segments: list[Any], threshold: float) -> list[tuple[float, float]]:
    """Merged [start, end) spans of the segments at or above `threshold` (else of the most probable one)."""
    segs = [(float(s.start), float(s.end), float(s.probability)) for s in segments or ()]
    segs = [s for s in segs if s[1] > s[0]]
    if not segs:
        return []
    high = [s for s in segs if s[2] >= threshold] or [max(segs, key=lambda s: s[2])]
    spans: list[tuple[float, float]] = []
    for a, b, _ in sorted(high):
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        else:
            spans.append((a, b))
    return spans


def scan_evidence(result: Any, src: Clip | str | os.PathLike[str] | bytes) -> list[EvidenceClip]:
    """The clips to keep for a scan result of the upload `src` (its decoded `Clip`, or bytes or a path);
    [] unless it was flagged. An upload that no longer decodes (it just did) is logged and keeps no
    evidence rather than failing."""
    if getattr(result, "decision", None) != "synthetic":
        return []
    from voxwarden.audio import load, resample

    if isinstance(src, Clip):
        x = src.samples if src.sr == SAMPLE_RATE else resample(src.samples, src.sr, SAMPLE_RATE)
    else:
        try:
            x = load(src if isinstance(src, bytes) else str(src), sr=SAMPLE_RATE, max_duration=None).samples
        except AudioError as e:
            log.error("flagged upload could not be decoded again for its evidence: %s", e)
            return []
    total = x.size / SAMPLE_RATE
    if total <= 0:
        return []
    if total <= WHOLE_MAX_SECONDS:
        spans = [(0.0, total)]
    else:
        spans = flagged_spans(getattr(result, "segments", []), float(getattr(result, "threshold", 0.5)))
    clips: list[EvidenceClip] = []
    budget = MAX_SECONDS
    for a, b in spans:
        a, b = max(0.0, a), min(total, b)
        if b <= a or budget <= 0:
            continue
        kept_end = min(b, a + budget)
        i, j = int(round(a * SAMPLE_RATE)), int(round(kept_end * SAMPLE_RATE))
        if j <= i:
            continue
        clips.append(EvidenceClip(to_pcm16(x[i:j]), SAMPLE_RATE, i / SAMPLE_RATE, j / SAMPLE_RATE, a, b,
                                  truncated=kept_end < b))
        budget -= kept_end - a
    return clips


def evidence_store_of(store: Any) -> EvidenceStore | None:
    """The store's evidence directory, or None for a store configured without one."""
    try:
        return store.evidence
    except StoreUnavailableError:
        return None


def attach_scan_evidence(s: Session, evidence: EvidenceStore | None, tenant_id: str, scan_id: str,
                         clips: list[EvidenceClip]) -> int:
    """Write the clips and link them to the scan (inside the caller's transaction); returns how many.
    A file that cannot be written is logged and skipped: the scan result matters more than its audio."""
    if evidence is None or not clips:
        return 0
    n = 0
    for c in clips:
        try:
            ref = evidence.put(c.wav(), suffix="wav")
        except (EvidenceError, InvalidInputError) as e:
            log.error("evidence of scan %s not stored: %s", scan_id, e)
            continue
        attach_evidence(s, tenant_id, ref, scan_id=scan_id, start=c.start, end=c.end, media_type="audio/wav")
        n += 1
    return n


__all__ = ["MAX_SECONDS", "WHOLE_MAX_SECONDS", "attach_scan_evidence", "evidence_store_of", "flagged_spans",
           "scan_evidence"]
