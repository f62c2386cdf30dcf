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


@dataclass
class Clip:
    """Mono float32 samples in [-1, 1] at `sr` Hz, with source metadata."""

    samples: np.ndarray
    sr: int
    source: SourceInfo = field(default_factory=SourceInfo)

    @property
    def duration(self) -> float:
        return float(len(self.samples)) / float(self.sr)
