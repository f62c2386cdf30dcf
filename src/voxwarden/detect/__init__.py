"""Synthetic-speech detection: models, scoring, calibration, evaluation and training."""

from voxwarden.detect.card import ModelCard, ModelError, load_card, packaged_models
from voxwarden.detect.detector import Detector, DetectorOptions
from voxwarden.detect.result import ScanResult, Segment

__all__ = [
    "Detector",
    "DetectorOptions",
    "ModelCard",
    "ModelError",
    "ScanResult",
    "Segment",
    "load_card",
    "packaged_models",
]
