"""The `Clip`: decoded mono float32 audio plus where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SourceInfo:
    """What the original file was, before we turned it into 16 kHz mono."""

    path: str | None = None
    container: str | None = None
    codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    duration: float | None = None
    # Frames the decoder rejected (we keep what decodes; see `voxwarden.audio.decode`).
    decode_errors: int = 0
    # Human-readable notes about partial decodes (e.g. "truncated: 2.1 of 4.0 s decoded").
    warnings: tuple[str, ...] = ()


@dataclass
class Clip:
    """Mono float32 samples in [-1, 1] at `sr` Hz, with source metadata."""

    samples: np.ndarray
    sr: int
    source: SourceInfo = field(default_factory=SourceInfo)

    @property
    def duration(self) -> float:
        return float(len(self.samples)) / float(self.sr)
