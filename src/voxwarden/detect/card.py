"""Model cards: the one loader for model directories (card.json + weights file).

A model is a directory holding ``card.json`` and the weights file it names. The card says what kind of
countermeasure it is, how to window and aggregate, how to calibrate, where the threshold sits, what data
trained it and what it measured. Packaged models live in ``voxwarden/models/<name>/``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any


class ModelError(Exception):
    """A model directory or card that cannot be used (missing, malformed, checksum mismatch)."""


DEFAULT_MODEL = "default"


@dataclass
class ModelCard:
    """The parsed ``card.json``; unknown keys are kept in ``raw``."""

    name: str
    version: str
    kind: str
    file: str
    sha256: str
    sample_rate: int = 16000
    window: float = 4.0
    hop: float = 2.0
    calibration_a: float = 1.0
    calibration_b: float = 0.0
    threshold: float = 0.5
    aggregation: str = "mean"
    directory: Path = field(default_factory=Path)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def weights_path(self) -> Path:
        return self.directory / self.file


def packaged_models() -> list[str]:
    """Names of the models shipped inside the package."""
    root = resources.files("voxwarden") / "models"
    out = []
    for entry in root.iterdir():
        if entry.is_dir() and (entry / "card.json").is_file():
            out.append(entry.name)
    return sorted(out)


def resolve_model_dir(model: str | Path | None) -> Path:
    """Turn a model name (packaged) or a path (directory or its card.json) into a model directory."""
    if model is None:
        model = DEFAULT_MODEL
    p = Path(model)
    if p.is_file() and p.name == "card.json":
        return p.parent
    if p.is_dir():
        return p
    if isinstance(model, str) and "/" not in model and "\\" not in model:
        packaged = Path(str(resources.files("voxwarden") / "models" / model))
        if (packaged / "card.json").is_file():
            return packaged
        names = ", ".join(packaged_models()) or "none"
        raise ModelError(f"no model directory {model!r} and no packaged model of that name (packaged: {names})")
    raise ModelError(f"model path {str(model)!r} is not a model directory (expected a folder with card.json)")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_card(model: str | Path | None = None, *, check_sha: bool = True) -> ModelCard:
    """Read and validate a model card; verifies the weights' sha256 so a corrupted model never scores."""
    d = resolve_model_dir(model)
    card_path = d / "card.json"
    try:
        raw = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelError(f"{card_path}: card.json missing") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{card_path}: unreadable card ({e})") from e
    if not isinstance(raw, dict):
        raise ModelError(f"{card_path}: card must be a JSON object")
    missing = [k for k in ("name", "version", "kind", "file") if k not in raw]
    if missing:
        raise ModelError(f"{card_path}: missing keys {missing}")
    cal = raw.get("calibration") or {}
    try:
        card = ModelCard(
            name=str(raw["name"]),
            version=str(raw["version"]),
            kind=str(raw["kind"]),
            file=str(raw["file"]),
            sha256=str(raw.get("sha256", "")),
            sample_rate=int(raw.get("sample_rate", 16000)),
            window=float(raw.get("window", 4.0)),
            hop=float(raw.get("hop", 2.0)),
            calibration_a=float(cal.get("a", 1.0)),
            calibration_b=float(cal.get("b", 0.0)),
            threshold=float(raw.get("threshold", 0.5)),
            aggregation=str(raw.get("aggregation", "mean")),
            directory=d,
            raw=raw,
        )
    except (TypeError, ValueError) as e:
        raise ModelError(f"{card_path}: bad value in card ({e})") from e
    if Path(card.file).name != card.file:
        raise ModelError(f"{card_path}: 'file' must be a plain file name inside the model directory")
    if not card.weights_path.is_file():
        raise ModelError(f"{card_path}: weights file {card.file!r} missing")
    if not (0.0 < card.threshold < 1.0):
        raise ModelError(f"{card_path}: threshold must be a probability in (0, 1)")
    if card.window <= 0 or card.hop <= 0:
        raise ModelError(f"{card_path}: window and hop must be positive")
    if check_sha and card.sha256:
        actual = sha256_file(card.weights_path)
        if actual != card.sha256:
            raise ModelError(f"{card.weights_path}: sha256 {actual} does not match the card ({card.sha256})")
    return card
