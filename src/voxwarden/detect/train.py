"""The training driver behind ``voxwarden train``: protocol + audio → a model directory with its card.

Steps: read the protocol (both labels required) → hold back ``holdout`` of the rows *grouped by
speaker* (by file when the protocol has no speaker), so no speaker is on both sides → decode audio
(bad files are skipped and counted, never fatal) → train the back end on the rest (``lfcc-gmm`` here,
any other name via ``voxwarden.detect.neural.train_neural``, which needs torch) → score the held-back
clips exactly as the detector will (same windows, aggregation and VAD) → fit Platt calibration and
the EER threshold on those scores → write ``card.json`` with checksum, training record and held-back
metrics. Validation data must never be the protocol here: calibration is fitted on what is held back.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from voxwarden.detect.calibrate import eer_threshold, fit_platt
from voxwarden.detect.metrics import eer, min_dcf
from voxwarden.detect.protocol import ProtocolError, ProtocolRow, read_protocol, resolve_audio

SR = 16000
WINDOW = 4.0
HOP = 2.0
Progress = Callable[[str, float], None]
_GMM_OPTS = ("n_components", "max_frames", "max_iter", "drop_below_db", "features")


class TrainError(Exception):
    """Training cannot proceed (too few usable files, one label missing, backend unavailable)."""


# ------------------------------------------------------------------------------------------ splitting


def _group(row: ProtocolRow) -> str:
    return f"spk:{row.speaker}" if row.speaker else f"file:{row.file}"


def split_holdout(rows: list[ProtocolRow], holdout: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train indices, held-back indices), grouped by speaker, both labels on both sides.

    Groups are shuffled deterministically and added to the held-back side until it holds ``holdout`` of
    the rows; up to 200 shuffles are tried to get both labels on both sides.
    """
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(_group(r), []).append(i)
    keys = sorted(groups)
    if len(keys) < 2:
        raise TrainError("need at least two speakers (or files) to hold some back for calibration")
    target = max(1, int(round(holdout * len(rows))))
    rng = np.random.default_rng(seed)
    for _ in range(200):
        held: list[int] = []
        for k in rng.permutation(keys):
            if len(held) >= target:
                break
            held.extend(groups[str(k)])
        held_set = set(held)
        train_idx = [i for i in range(len(rows)) if i not in held_set]
        if all({rows[i].label for i in part} == {"bonafide", "spoof"} for part in (held, train_idx)):
            return train_idx, sorted(held)
    raise TrainError(
        "cannot split speakers so that both the training and the held-back part contain bona fide and "
        "spoof clips; add speakers of both labels or change --holdout"
    )


def _subset(rows: list[ProtocolRow], n: int, seed: int) -> list[ProtocolRow]:
    """At most ``n`` rows, both labels interleaved (deterministic shuffle): for smoke runs."""
    rng = np.random.default_rng(seed)
    by_label = {lab: [r for r in rows if r.label == lab] for lab in ("bonafide", "spoof")}
    shuffled = {lab: [v[i] for i in rng.permutation(len(v))] for lab, v in by_label.items()}
    out: list[ProtocolRow] = []
    i = 0
    while len(out) < n and i < max(len(v) for v in shuffled.values()):
        for lab in ("bonafide", "spoof"):
            if i < len(shuffled[lab]) and len(out) < n:
                out.append(shuffled[lab][i])
        i += 1
    return out


def _only_split(rows: list[ProtocolRow], split: str, protocol: Path) -> list[ProtocolRow]:
    """The rows of one ``split`` column value; a protocol without that column or value is an error."""
    if not any("split" in r.extra for r in rows):
        raise ValueError(f"{protocol} has no 'split' column, so --split {split} cannot select rows")
    kept = [r for r in rows if r.extra.get("split") == split]
    if not kept:
        found = sorted({r.extra.get("split", "") for r in rows})
        raise ValueError(f"{protocol} has no rows of split {split!r} (found: {', '.join(found)})")
    return kept


# ------------------------------------------------------------------------------------------ audio


def _loader() -> Callable[[Path], Any]:
    """``voxwarden.audio.load`` (typed errors) at the model's rate, without a length cap."""
    from voxwarden.audio import load

    return lambda p: load(p, sr=SR, max_duration=None)


def _clip_scorer(model_dir: Path) -> Callable[[Any], float]:
    """Score a decoded clip exactly as ``Detector`` will (card windows, aggregation, VAD), raw scale."""
    from voxwarden.detect.backends import load_backend
    from voxwarden.detect.card import load_card
    from voxwarden.detect.detector import Detector, DetectorOptions

    card = load_card(model_dir)
    det = Detector(card, load_backend(card), DetectorOptions(max_duration=None))
    return lambda clip: float(det.score_clip(clip).score)


# ------------------------------------------------------------------------------------------ backends


def parse_opts(items: list[str]) -> dict:
    """`KEY=VALUE` strings (CLI `--opt`) -> `train` options; `lfcc.FIELD=VALUE` goes into the `features`
    dict. Values are read as int, float, true/false or none where they parse so, else kept as text."""
    opts: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--opt needs KEY=VALUE, got {item!r}")
        value: object = raw
        low = raw.lower()
        if low in ("true", "false"):
            value = low == "true"
        elif low == "none":
            value = None
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    pass
        if key.startswith("lfcc."):
            opts.setdefault("features", {})[key[5:]] = value
        else:
            opts[key] = value
    return opts


def lfcc_config(feats: Any) -> Any:
    """An `LfccConfig` from one or from a dict of its fields; an unknown field or a bad value raises ValueError
    (a typo must not silently train the default features)."""
    from voxwarden.detect.features import LfccConfig

    if isinstance(feats, LfccConfig):
        return feats
    if not isinstance(feats, dict):
        raise ValueError(f"features must be a dict of LFCC fields, got {type(feats).__name__}")
    unknown = sorted(set(feats) - set(LfccConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown LFCC fields {unknown} (known: {', '.join(LfccConfig.__dataclass_fields__)})")
    try:
        return LfccConfig.from_dict(feats)
    except TypeError as e:  # a text where a number belongs fails a comparison inside validate()
        raise ValueError(f"bad LFCC field value: {e}") from e


def _train_backend(
    model: str, items: list[tuple[np.ndarray, int]], out_dir: Path, seed: int, progress: Progress, opts: dict
) -> dict:
    if model == "lfcc-gmm":
        from voxwarden.detect.gmm import train_gmm

        unknown = set(opts) - set(_GMM_OPTS)
        if unknown:
            known = ", ".join(_GMM_OPTS)
            raise ValueError(f"unknown options for lfcc-gmm: {sorted(unknown)} (known: {known})")
        if "features" in opts:
            opts["features"] = lfcc_config(opts["features"])
        return train_gmm(items, out_dir, seed=seed, progress=progress, **opts)
    try:
        neural = importlib.import_module("voxwarden.detect.neural")
    except ImportError as e:
        raise TrainError(
            f"model {model!r} is a neural countermeasure and needs torch ({e}); "
            "install the training extra: pip install 'voxwarden[train]'"
        ) from e
    return neural.train_neural(items, out_dir, model=model, seed=seed, progress=progress, **opts)


# ------------------------------------------------------------------------------------------ driver


def _write_json(path: Path, obj: dict) -> None:
    """Write atomically (temp file + rename): a reader never sees half a card."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def train(
    protocol: Path,
    audio_dir: Path,
    model: str,
    out_dir: Path,
    *,
    seed: int = 0,
    holdout: float = 0.15,
    progress: Progress | None = None,
    max_files: int | None = None,
    split: str | None = None,
    **opts: Any,
) -> Path:
    """Train ``model`` (``lfcc-gmm`` or a neural architecture name) and write a model directory.

    ``opts`` go to the back end (``n_components``, ``max_frames``, ``max_iter``, ``drop_below_db`` and
    ``features``, a dict of `LfccConfig` fields, for lfcc-gmm; see ``train_neural`` for neural models),
    except ``name`` and ``version`` which label the card. ``split`` keeps only the rows whose ``split``
    column has that value (a corpus's ``train`` rows: its ``val`` speakers then stay unseen).
    Returns ``out_dir``. Raises ``ProtocolError``/``ValueError`` for bad arguments and ``TrainError``
    when training cannot proceed; undecodable audio files are skipped with a warning.
    """
    t_start = time.perf_counter()
    protocol, audio_dir, out_dir = Path(protocol), Path(audio_dir), Path(out_dir)
    report = progress or (lambda stage, frac: None)
    name = str(opts.pop("name", model))
    version = str(opts.pop("version", datetime.now(UTC).strftime("%Y.%m.%d")))
    if not audio_dir.is_dir():
        raise ValueError(f"audio dir {audio_dir} is not a folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output {out_dir} exists and is not a folder")
    rows = read_protocol(protocol)
    if split is not None:
        rows = _only_split(rows, split, protocol)
    if max_files is not None:
        if max_files < 4:
            raise ValueError("max_files must be at least 4 (two per label, one of each held back)")
        rows = _subset(rows, max_files, seed)
    labels = {r.label for r in rows}
    if labels != {"bonafide", "spoof"}:
        raise TrainError(f"training protocol needs bona fide and spoof rows, found only {sorted(labels)}")
    train_idx, held_idx = split_holdout(rows, holdout, seed)

    # decode everything once; failures are counted, not fatal
    load = _loader()
    clips: dict[int, Any] = {}
    failures: dict[str, int] = {}
    order = train_idx + held_idx
    for n, i in enumerate(order):
        try:
            clips[i] = load(resolve_audio(rows[i], audio_dir))
        except ProtocolError:  # a name escaping audio_dir: refuse that row, keep going
            failures["bad_path"] = failures.get("bad_path", 0) + 1
        except Exception as e:  # noqa: BLE001 - AudioError or a decoder bug: skip this file, go on
            kind = getattr(e, "code", type(e).__name__)
            failures[kind] = failures.get(kind, 0) + 1
        if n % 25 == 0 or n == len(order) - 1:
            report("load", 0.25 * (n + 1) / len(order))
    n_skipped = sum(failures.values())
    if n_skipped:
        warnings.warn(f"skipped {n_skipped} unreadable audio file(s): {failures}", stacklevel=2)
    items = [(np.asarray(clips[i].samples, dtype=np.float32), int(rows[i].label == "spoof"))
             for i in train_idx if i in clips]
    if {lab for _, lab in items} != {0, 1}:
        raise TrainError("after skipping unreadable files the training part lacks one label")

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "card.json").unlink(missing_ok=True)  # a stale card must never pair with new weights

    def backend_progress(stage: str, frac: float) -> None:
        report(stage, 0.25 + 0.6 * min(max(frac, 0.0), 1.0))

    fields = _train_backend(model, items, out_dir, seed, backend_progress, dict(opts))
    del items
    weights = out_dir / str(fields["file"])
    if not weights.is_file():
        raise TrainError(f"back end did not write its weights file {weights}")
    backend_training = fields.pop("training", None)
    card: dict[str, Any] = {
        "name": name,
        "version": version,
        "sample_rate": SR,
        "window": WINDOW,
        "hop": HOP,
        "calibration": {"a": 1.0, "b": 0.0},
        "threshold": 0.5,
        "aggregation": "mean",
        **fields,
    }
    card["sha256"] = _sha256(weights)
    card_path = out_dir / "card.json"

    # an uncalibrated provisional card, in a scratch folder, lets the detector score the held-back
    # clips; only a fully calibrated card is ever written to out_dir
    prov = out_dir / ".provisional"
    try:
        prov.mkdir(exist_ok=True)
        try:
            os.link(weights, prov / weights.name)
        except OSError:
            shutil.copyfile(weights, prov / weights.name)
        _write_json(prov / "card.json", card)
        # score the held-back clips exactly as the detector will, then calibrate on them
        score_clip = _clip_scorer(prov)
        held_scores: dict[str, list[float]] = {"bonafide": [], "spoof": []}
        held_failed = 0
        first_error = ""
        usable = [i for i in held_idx if i in clips]
        for n, i in enumerate(usable):
            try:
                held_scores[rows[i].label].append(score_clip(clips[i]))
            except Exception as e:  # noqa: BLE001 - silence / too little speech / too short: not scoreable
                held_failed += 1
                first_error = first_error or f"{rows[i].file}: {type(e).__name__}: {e}"
            if n % 10 == 0 or n == len(usable) - 1:
                report("calibrate", 0.85 + 0.15 * (n + 1) / max(len(usable), 1))
        bona, spoof = np.array(held_scores["bonafide"]), np.array(held_scores["spoof"])
        if bona.size == 0 or spoof.size == 0:
            raise TrainError(
                "no scoreable held-back clips of one label: cannot calibrate (raise --holdout)"
                + (f"; first failure: {first_error}" if first_error else "")
            )
        scores = np.concatenate([bona, spoof])
        labels_arr = np.concatenate([np.zeros(bona.size), np.ones(spoof.size)])
        a, b = fit_platt(scores, labels_arr)
        thr, held_eer = eer_threshold(a, b, bona, spoof)
        raw_eer, _ = eer(bona, spoof)
        dcf, _ = min_dcf(bona, spoof)

        n_train_bona = sum(1 for i in train_idx if i in clips and rows[i].label == "bonafide")
        n_train_spoof = sum(1 for i in train_idx if i in clips and rows[i].label == "spoof")
        train_secs = float(sum(clips[i].duration for i in train_idx if i in clips))
        recipe = (
            f"voxwarden train --protocol {protocol} --audio-dir {audio_dir} --out {out_dir} "
            f"--model {model} --seed {seed} --holdout {holdout}"
            + (f" --max-files {max_files}" if max_files is not None else "")
            + (f" --split {split}" if split is not None else "")
        )
        card["calibration"] = {"a": a, "b": b}
        card["threshold"] = thr
        card["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        card["training"] = {
            "data": {
                "protocol": str(protocol),
                "protocol_sha256": _sha256(protocol),
                "audio_dir": str(audio_dir),
            },
            "recipe": recipe,
            # wall-clock seconds of the whole run (decode, train, score the held-back part, calibrate); the
            # brief's training budget is read from this. sizes.train_seconds is the training *audio*'s length
            "wall_seconds": round(time.perf_counter() - t_start, 1),
            "seed": seed,
            "holdout": holdout,
            "holdout_grouping": "speaker" if any(r.speaker for r in rows) else "file",
            "split": split,
            "options": {k: v for k, v in opts.items() if isinstance(v, int | float | str | bool | dict | None)},
            "sizes": {
                "train_bonafide": n_train_bona,
                "train_spoof": n_train_spoof,
                "train_seconds": round(train_secs, 1),
                "heldback_bonafide": int(bona.size),
                "heldback_spoof": int(spoof.size),
                "skipped_unreadable": n_skipped,
                "heldback_unscoreable": held_failed,
            },
            **({"backend": backend_training} if backend_training else {}),
        }
        card["metrics"] = {
            "heldback_eer": raw_eer,
            "heldback_eer_calibrated": held_eer,
            "heldback_min_dcf": dcf,
            "heldback_n": int(scores.size),
            "note": "held back from the training protocol (grouped by speaker); not a validation figure",
        }
    finally:
        shutil.rmtree(prov, ignore_errors=True)
    _write_json(card_path, card)
    report("done", 1.0)
    return out_dir

