"""Score every row of a labelled protocol with a detector, keeping failures as records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from voxwarden.detect.detector import Detector
from voxwarden.detect.evaluate import EvalRecord
from voxwarden.detect.protocol import ProtocolRow, resolve_audio
from voxwarden.detect.result import ScanResult


def score_protocol(
    det: Detector,
    rows: list[ProtocolRow],
    audio_dir: Path,
    *,
    jobs: int = 1,
    progress: Callable[[int, int, ScanResult], None] | None = None,
) -> list[EvalRecord]:
    """One ``EvalRecord`` per row, in order; a file that fails is kept with its error (never dropped silently)."""
    paths = [str(resolve_audio(r, audio_dir)) for r in rows]
    results = det.score_many(paths, jobs=jobs, progress=progress)
    return [
        EvalRecord(file=r.file, label=r.label, system=r.system, score=res.probability,
                   error=None if res.error is None else f"{res.error['type']}: {res.error['message']}")
        for r, res in zip(rows, results, strict=True)
    ]
