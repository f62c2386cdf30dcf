"""Result types of a detector run: per-clip score, calibrated probability, decision, segments."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Segment:
    """One scored window of speech: times in seconds of the original clip, raw score (higher = synthetic)."""

    start: float
    end: float
    score: float
    probability: float | None = None


@dataclass
class ScanResult:
    """What the detector says about one input. `error` is set (and scores are None) when it failed."""

    path: str | None
    score: float | None = None
    probability: float | None = None
    decision: str | None = None  # "synthetic" | "bonafide"
    segments: list[Segment] = field(default_factory=list)
    aggregation: str | None = None
    threshold: float | None = None
    model: str | None = None
    duration: float | None = None
    speech_seconds: float | None = None
    source: dict[str, Any] | None = None
    error: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def flagged(self) -> bool:
        return self.decision == "synthetic"

    def to_dict(self) -> dict[str, Any]:
        """The JSONL contract: path, score, probability, decision, segments[{start,end,score}], error."""
        d = asdict(self)
        d["segments"] = [
            {"start": round(s.start, 3), "end": round(s.end, 3), "score": s.score, "probability": s.probability}
            for s in self.segments
        ]
        return d
