"""The `Detector`: audio in, calibrated synthetic-speech scores out, per clip and per segment.

    det = Detector.load()              # the packaged default model, no torch needed
    res = det.score("call.m4a")        # ScanResult: score, probability, decision, segments
    results = det.score_many(paths, jobs=4)

The same windowing serves files, arrays and live streams, so figures measured offline hold live.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from voxwarden import audio
from voxwarden.audio.errors import AudioError
from voxwarden.detect.aggregate import aggregate, sigmoid
from voxwarden.detect.backends import Backend, load_backend
from voxwarden.detect.card import ModelCard, load_card
from voxwarden.detect.result import ScanResult, Segment

Progress = Callable[[int, int, ScanResult], None]


@dataclass(frozen=True)
class DetectorOptions:
    """Knobs that are policy, not model: limits on input, speech requirements, decision threshold."""

    max_duration: float | None = 3600.0
    min_speech: float = 0.5
    vad: bool = True
    threshold: float | None = None  # None: the card's threshold
    aggregation: str | None = None  # None: the card's aggregation
    degrade: str | None = None  # e.g. "mp3:64k": simulate a channel before scoring (robustness evaluation)


class Detector:
    """One countermeasure model with its card; scores files, byte strings and arrays."""

    def __init__(self, card: ModelCard, backend: Backend, options: DetectorOptions | None = None) -> None:
        self.card = card
        self.backend = backend
        self.options = options or DetectorOptions()

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, **options: Any) -> Detector:
        """Load a packaged model by name (default: ``default``) or a model directory by path."""
        card = load_card(model if model is None else str(model) if not isinstance(model, Path) else model)
        return cls(card, load_backend(card), DetectorOptions(**options))

    @property
    def model_id(self) -> str:
        return self.card.model_id

    @property
    def threshold(self) -> float:
        t = self.options.threshold
        return self.card.threshold if t is None else float(t)

    @property
    def aggregation(self) -> str:
        return self.options.aggregation or self.card.aggregation

    # -- scoring ---------------------------------------------------------------------------------

    def score(self, src: str | os.PathLike | bytes | np.ndarray, sr: int | None = None) -> ScanResult:
        """Score one input; raises an ``AudioError`` subclass for bad input (see ``score_many``)."""
        return self.score_decoded(self.decode(src, sr))

    def decode(self, src: str | os.PathLike | bytes | np.ndarray, sr: int | None = None) -> audio.Clip:
        """Decode `src` exactly as `score` does (model rate, mono, duration limit), for a caller that also
        needs the samples (a service keeping a flagged upload as evidence decodes it once, not twice)."""
        return self._to_clip(src, sr)

    def score_decoded(self, clip: audio.Clip) -> ScanResult:
        """Score a clip from `decode`, applying the detector's `degrade` option as `score` does."""
        if self.options.degrade:
            clip = self._degrade(clip)
        return self.score_clip(clip)

    def score_clip(self, clip: audio.Clip) -> ScanResult:
        """Score an already decoded clip (mono float32 at the model's rate)."""
        target_sr = self.card.sample_rate
        if clip.sr != target_sr:
            clip = replace(clip, samples=audio.resample(clip.samples, clip.sr, target_sr), sr=target_sr)
        samples = clip.samples
        if self.options.vad:
            regions = audio.speech_regions(samples, target_sr)
        else:
            regions = [(0.0, clip.duration)] if clip.duration > 0 else []
        audio.check_speech(clip, regions, min_speech=self.options.min_speech)
        wins = audio.windows(samples, target_sr, regions, win=self.card.window, hop=self.card.hop)
        if not wins:
            raise audio.TooLittleSpeechError(f"{clip.source.path or 'input'}: no speech window long enough to score")
        raw = np.asarray(self.backend.score_windows([w.samples for w in wins]), dtype=np.float64)
        return self._result(clip, wins, raw)

    def score_windows(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """Raw scores of ready-made windows (used by live streams, which window as they go)."""
        return np.asarray(self.backend.score_windows(list(windows)), dtype=np.float64)

    def calibrate(self, raw: np.ndarray | float) -> np.ndarray | float:
        """Raw score(s) → probability that the speech is synthetic."""
        return sigmoid(self.card.calibration_a * np.asarray(raw, dtype=np.float64) + self.card.calibration_b)

    def _result(self, clip: audio.Clip, wins: list[audio.Window], raw: np.ndarray) -> ScanResult:
        lengths = np.array([w.end - w.start for w in wins])
        clip_score = aggregate(raw, self.aggregation, weights=lengths)
        prob = float(self.calibrate(clip_score))
        seg_probs = np.atleast_1d(self.calibrate(raw))
        segments = [
            Segment(start=float(w.start), end=float(w.end), score=float(s), probability=float(p))
            for w, s, p in zip(wins, raw, seg_probs, strict=True)
        ]
        src = clip.source
        return ScanResult(
            path=src.path,
            score=float(clip_score),
            probability=prob,
            decision="synthetic" if prob >= self.threshold else "bonafide",
            segments=segments,
            aggregation=self.aggregation,
            threshold=self.threshold,
            model=self.model_id,
            duration=src.duration if src.duration is not None else clip.duration,
            speech_seconds=float(_merged_length(wins)),
            source={
                "container": src.container,
                "codec": src.codec,
                "sample_rate": src.sample_rate,
                "channels": src.channels,
            },
        )

    def _degrade(self, clip: audio.Clip) -> audio.Clip:
        from voxwarden.audio.degrade import degrade

        seed = int.from_bytes(hashlib.sha256((clip.source.path or "").encode()).digest()[:4], "little")
        y = degrade(clip.samples, clip.sr, self.options.degrade, seed=seed)
        return replace(clip, samples=np.asarray(y, dtype=np.float32))

    def _to_clip(self, src: str | os.PathLike | bytes | np.ndarray, sr: int | None) -> audio.Clip:
        if isinstance(src, np.ndarray):
            if sr is None:
                raise ValueError("sr is required when scoring an array")
            x = np.asarray(src, dtype=np.float32)
            if x.ndim == 2:  # (samples, channels)
                x = x.mean(axis=1, dtype=np.float32)
            if x.ndim != 1:
                raise ValueError(f"expected a mono (N,) or (N, channels) array, got shape {src.shape}")
            if not np.all(np.isfinite(x)):
                raise audio.CorruptMediaError("array contains NaN or infinite samples")
            info = audio.SourceInfo(sample_rate=int(sr), channels=1 if src.ndim == 1 else src.shape[1],
                                    duration=len(x) / float(sr))
            if self.options.max_duration is not None and info.duration > self.options.max_duration:
                raise audio.TooLongError(
                    f"array is {info.duration:.1f} s, longer than the maximum {self.options.max_duration:.0f} s")
            return audio.Clip(samples=x, sr=int(sr), source=info)
        return audio.load(src, sr=self.card.sample_rate, max_duration=self.options.max_duration)

    def scan(self, path: str | os.PathLike) -> ScanResult:
        """Like ``score`` but never raises for a bad input: the error is in ``ScanResult.error``."""
        p = str(path)
        try:
            res = self.score(path)
        except AudioError as e:
            return ScanResult(path=p, model=self.model_id, error=e.to_dict())
        except (MemoryError, RecursionError) as e:
            return ScanResult(path=p, model=self.model_id, error={"type": "resource", "message": f"{p}: {e!r}"})
        except Exception as e:  # noqa: BLE001 - a decoder bug on a hostile file must not end the batch
            return ScanResult(path=p, model=self.model_id,
                              error={"type": "internal", "message": f"{p}: {type(e).__name__}: {e}"})
        res.path = p
        return res

    def score_many(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        jobs: int = 1,
        progress: Progress | None = None,
    ) -> list[ScanResult]:
        """Scan many files; results in input order; a bad file gets an error result and the batch goes on.

        With ``jobs > 1`` files are spread over worker processes, each loading the model once. A worker
        that dies (a decoder crash on a hostile file) is replaced; the file it held gets an error result.
        """
        items = [str(p) for p in paths]
        results: list[ScanResult | None] = [None] * len(items)
        done = 0

        def finish(i: int, r: ScanResult) -> None:
            nonlocal done
            results[i] = r
            done += 1
            if progress is not None:
                progress(done, len(items), r)

        if jobs <= 1 or len(items) <= 1:
            for i, p in enumerate(items):
                finish(i, self.scan(p))
            return [r for r in results if r is not None]
        _run_pool(self, items, jobs, finish)
        return [r for r in results if r is not None]


def _merged_length(wins: list[audio.Window]) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for w in sorted(wins, key=lambda w: w.start):
        if cur_e is None or w.start > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = w.start, w.end
        else:
            cur_e = max(cur_e, w.end)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


# -- worker processes ----------------------------------------------------------------------------

_WORKER: Detector | None = None


def _worker_init(model_dir: str, options: DetectorOptions) -> None:
    global _WORKER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER = Detector.load(Path(model_dir), **options.__dict__)


def _worker_scan(path: str) -> ScanResult:
    assert _WORKER is not None
    return _WORKER.scan(path)


def _run_pool(det: Detector, items: list[str], jobs: int, finish: Callable[[int, ScanResult], None]) -> None:
    """Process-pool scan that survives worker deaths: in-flight files are retried alone to find the culprit."""
    queue = list(range(len(items)))
    queue.reverse()
    while queue:
        suspects = _pool_pass(det, items, queue, jobs, finish)
        for i in suspects:  # each alone: only the file that kills its worker again gets an error
            if _pool_pass(det, items, [i], 1, finish):
                finish(i, ScanResult(path=items[i], model=det.model_id, error={
                    "type": "worker_crashed",
                    "message": f"{items[i]}: the decoding process died on this file"}))


def _pool_pass(det: Detector, items: list[str], queue: list[int], jobs: int,
               finish: Callable[[int, ScanResult], None]) -> list[int]:
    """Run until ``queue`` is empty or the pool breaks; return the indices in flight when it broke."""
    import multiprocessing as mp

    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                               initargs=(str(det.card.directory), det.options))
    running: dict[Future, int] = {}
    try:
        while queue or running:
            while queue and len(running) < jobs * 2:
                i = queue.pop()
                running[pool.submit(_worker_scan, items[i])] = i
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                i = running.pop(fut)
                try:
                    r = fut.result()
                except BrokenProcessPool:
                    return [i, *running.values()]
                finish(i, r)
        return []
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
