"""The registry of countermeasure back ends: card ``kind`` → class with ``load`` and ``score_windows``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from voxwarden.detect.card import ModelCard, ModelError


class Backend(Protocol):
    """What every countermeasure offers: one raw score per window (higher = more likely synthetic)."""

    @classmethod
    def load(cls, card: dict, model_dir: Path) -> Backend: ...

    def score_windows(self, windows: list[np.ndarray]) -> np.ndarray: ...


BACKENDS: dict[str, str] = {
    "lfcc-gmm": "voxwarden.detect.gmm:GmmBackend",
    "onnx": "voxwarden.detect.onnx_backend:OnnxBackend",
}


def load_backend(card: ModelCard) -> Backend:
    """Instantiate the back end a card names (imported lazily: heavy runtimes load only when used)."""
    target = BACKENDS.get(card.kind)
    if target is None:
        raise ModelError(f"unknown model kind {card.kind!r} (known: {', '.join(sorted(BACKENDS))})")
    mod_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(mod_name), cls_name)
    try:
        return cls.load(card.raw, card.directory)
    except ModelError:
        raise
    except Exception as e:  # a broken weights file must be a clear model error, not a traceback
        raise ModelError(f"{card.weights_path}: cannot load {card.kind} model ({type(e).__name__}: {e})") from e
