"""Platform-side check of one file: is it labelled as AI, is the label honest, or does it look synthetic?

Evidence, strongest first: the GB 45438-2025 metadata label (with its signature over the audio), the
keyed watermark, and the detector. The verdict follows the platform duties of the 2025 labelling
measures: a found label → show a notice; no label but traces of synthesis → label as *suspected*.

=========================  ==================================================================
verdict                    when
=========================  ==================================================================
``labelled-ai``            a label whose signature holds (or is unsigned / cannot be checked), or
                           a watermark is present — and nothing contradicts it
``label-mismatch``         a label is present but malformed, its signature fails (copied onto
                           other audio, audio edited, a field changed), its Label value is not
                           one of 1/2/3, or the watermark payload disagrees with its ids
``unlabelled-suspected-ai`` no label or watermark, but the detector decides "synthetic"
``no-evidence``            none of the above
``error``                  the file could not be read at all (see ``error``); the batch goes on
=========================  ==================================================================
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from voxwarden.audio.errors import AudioError
from voxwarden.mark.metadata import (
    KeyLike,
    LabelKey,
    LabelReadResult,
    UnsupportedContainerError,
    as_keys,
    read_label,
)

VERDICTS = ("labelled-ai", "unlabelled-suspected-ai", "label-mismatch", "no-evidence", "error")
FLAGGED = ("unlabelled-suspected-ai", "label-mismatch")
_FILE_ERRORS = ("unreadable", "empty_file", "not_media", "corrupt_media", "no_audio_stream")


@dataclass
class Verdict:
    """The outcome for one file, with the evidence behind it (JSON-ready via `to_dict`)."""

    path: str
    verdict: str
    reasons: list[str] = field(default_factory=list)
    label: dict[str, str] | None = None
    signature_valid: bool | None = None
    watermark: dict[str, Any] | None = None
    detector: dict[str, Any] | None = None
    error: dict[str, str] | None = None

    @property
    def flagged(self) -> bool:
        """True when a platform should act: unlabelled but suspected, or a dishonest label."""
        return self.verdict in FLAGGED

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "label": self.label,
            "signature_valid": self.signature_valid,
            "watermark": self.watermark,
            "detector": self.detector,
            "error": self.error,
        }


def _mark_to_dict(r: Any) -> dict[str, Any]:
    payload = getattr(r, "payload", None)
    spans = getattr(r, "spans", None) or []
    return {
        "present": bool(getattr(r, "present", False)),
        "payload": payload.hex() if isinstance(payload, bytes | bytearray) else None,
        "confidence": float(getattr(r, "confidence", 0.0) or 0.0),
        "spans": [[round(float(a), 3), round(float(b), 3)] for a, b in spans],
    }


def _scan_to_dict(r: Any) -> dict[str, Any]:
    if hasattr(r, "to_dict"):
        d = r.to_dict()
    else:
        d = dict(vars(r))
    keep = ("score", "probability", "decision", "threshold", "model", "duration", "speech_seconds", "error")
    return {k: d.get(k) for k in keep}


class Verifier:
    """Runs label, watermark and detector checks on files and combines them into a `Verdict`.

    detector: an object with ``scan(path) -> ScanResult`` or ``score(path) -> ScanResult`` (default: the
        packaged ``voxwarden.detect.Detector``, loaded on first need; if that fails, verdicts say why).
    marker: an object with ``detect_file(path) -> MarkResult`` (default: ``voxwarden.mark.Marker`` built
        from `watermark_key` — a watermark key file path or bytes — or its public demo key).
    key: trusted label verification key(s): LabelKey objects or key file paths (Ed25519 PEM / HMAC).
    use_detector / use_watermark: switch those checks off (e.g. a label-only audit).
    """

    def __init__(
        self,
        detector: Any = None,
        marker: Any = None,
        key: KeyLike | Sequence[KeyLike] | None = None,
        *,
        watermark_key: str | os.PathLike[str] | bytes | None = None,
        use_detector: bool = True,
        use_watermark: bool = True,
    ) -> None:
        self.keys: list[LabelKey] = as_keys(key)
        self._detector = detector
        self._marker = marker
        self._watermark_key = watermark_key
        self.use_detector = use_detector
        self.use_watermark = use_watermark
        self._detector_error: str | None = None
        self._marker_error: str | None = None
        self._marker_note: str | None = None

    # -- lazy collaborators -------------------------------------------------------------------------

    def _get_marker(self) -> Any:
        if self._marker is not None or self._marker_error is not None:
            return self._marker
        try:
            from voxwarden.mark import Marker  # type: ignore[attr-defined]
        except ImportError as e:
            self._marker_error = f"watermark module unavailable ({e})"
            return None
        try:
            wk = self._watermark_key
            if wk is None:
                self._marker = Marker()
                self._marker_note = "watermark checked with the public demo key only (give a watermark key)"
            elif isinstance(wk, bytes | bytearray):
                self._marker = Marker(key=bytes(wk))
            else:
                self._marker = Marker.from_key_file(wk)
        except Exception as e:  # noqa: BLE001 - a bad key must not stop label checks
            self._marker_error = f"watermark check unavailable: {type(e).__name__}: {e}"
        return self._marker

    def _get_detector(self) -> Any:
        if self._detector is not None or self._detector_error is not None:
            return self._detector
        try:
            from voxwarden.detect import Detector

            self._detector = Detector.load()
        except Exception as e:  # noqa: BLE001 - missing model / runtime: verdicts say so
            self._detector_error = f"detector unavailable: {type(e).__name__}: {e}"
        return self._detector

    # -- checks -------------------------------------------------------------------------------------

    def _watermark(self, path: str, reasons: list[str]) -> dict[str, Any] | None:
        if not self.use_watermark:
            return None
        m = self._get_marker()
        if m is None:
            reasons.append(self._marker_error or "watermark check unavailable")
            return None
        try:
            r = m.detect_file(path)
        except AudioError as e:
            reasons.append(f"watermark: {e}")
            return {"present": False, "payload": None, "confidence": 0.0, "spans": [], "error": e.to_dict()}
        except Exception as e:  # noqa: BLE001
            reasons.append(f"watermark check failed: {type(e).__name__}: {e}")
            return None
        d = _mark_to_dict(r)
        if self._marker_note:
            d["note"] = self._marker_note
        return d

    def _detect(self, path: str, reasons: list[str]) -> dict[str, Any] | None:
        if not self.use_detector:
            reasons.append("detector not run (switched off)")
            return None
        det = self._get_detector()
        if det is None:
            reasons.append(self._detector_error or "detector unavailable")
            return None
        try:
            if hasattr(det, "scan"):
                r = det.scan(path)
            else:
                r = det.score(path)
        except AudioError as e:
            reasons.append(f"detector: {e}")
            return {"decision": None, "error": e.to_dict()}
        except Exception as e:  # noqa: BLE001
            reasons.append(f"detector failed: {type(e).__name__}: {e}")
            return {"decision": None, "error": {"type": "internal", "message": str(e)}}
        d = _scan_to_dict(r)
        if d.get("error"):
            reasons.append(f"detector: {d['error'].get('message', d['error'])}")
        return d

    @staticmethod
    def _payload_agrees(lab: dict[str, str], payload_hex: str | None) -> tuple[bool | None, str]:
        """Does the watermark payload match the label's ids (``payload_from_ids``)? None: cannot tell."""
        if not payload_hex:
            return None, "watermark has no payload to compare"
        try:
            from voxwarden.mark.keys import payload_from_ids
        except ImportError:
            return None, "cannot compare watermark payload with label (watermark keys module unavailable)"
        payload = bytes.fromhex(payload_hex)
        pairs = [(lab.get("ContentProducer", ""), lab.get("ProduceID", "")),
                 (lab.get("ContentPropagator", ""), lab.get("PropagateID", ""))]
        tried = False
        for who, cid in pairs:
            if who.strip() and cid.strip():
                tried = True
                try:
                    if payload_from_ids(who, cid, n_bytes=len(payload)) == payload:
                        return True, f"watermark payload matches label ids ({who}/{cid})"
                except (ValueError, TypeError):
                    continue
        if not tried:
            return None, "label has no producer/content ids to compare with the watermark payload"
        return False, f"watermark payload {payload_hex} does not match the label's producer/propagator ids"

    def verify(self, path: str | os.PathLike[str]) -> Verdict:
        """Check one file; never raises for a bad input (the error goes into the verdict)."""
        p = str(path)
        reasons: list[str] = []
        try:
            return self._verify(p, reasons)
        except AudioError as e:
            return Verdict(p, "error", reasons + [str(e)], error=e.to_dict())
        except (MemoryError, RecursionError) as e:
            err = {"type": "resource", "message": f"{p}: {e!r}"}
            return Verdict(p, "error", reasons + [repr(e)], error=err)
        except Exception as e:  # noqa: BLE001 - one hostile file must not end the batch
            return Verdict(p, "error", reasons + [f"{type(e).__name__}: {e}"],
                           error={"type": "internal", "message": f"{p}: {type(e).__name__}: {e}"})

    def verify_many(self, paths: Iterable[str | os.PathLike[str]]) -> list[Verdict]:
        """Verify each path in order; bad inputs get an ``error`` verdict and the batch goes on."""
        return [self.verify(p) for p in paths]

    def _verify(self, p: str, reasons: list[str]) -> Verdict:
        lr: LabelReadResult | None
        try:
            lr = read_label(p, key=self.keys)
        except UnsupportedContainerError as e:
            lr = None
            reasons.append(f"label: {e}")
        label = lr.label.to_dict() if lr is not None and lr.label is not None else None
        sig = lr.signature_valid if lr is not None else None
        if lr is not None:
            reasons.append(f"label: {lr.reason}")

        wm = self._watermark(p, reasons)
        wm_present = bool(wm and wm.get("present"))
        if wm_present:
            reasons.append(f"watermark present (confidence {wm['confidence']:.2f}, payload {wm['payload']})")
        elif wm is not None and "error" not in wm:
            reasons.append("no watermark found")

        def out(verdict: str, det: dict[str, Any] | None = None) -> Verdict:
            return Verdict(p, verdict, reasons, label, sig, wm, det)

        if lr is not None and lr.malformed:
            return out("label-mismatch")
        if lr is not None and lr.label is not None:
            if lr.label.meaning is None:
                return out("label-mismatch")
            if sig is False:
                return out("label-mismatch")
            if wm_present and label is not None:
                agrees, why = self._payload_agrees(label, wm.get("payload") if wm else None)
                reasons.append(why)
                if agrees is False:
                    return out("label-mismatch")
            return out("labelled-ai")
        if wm_present:
            return out("labelled-ai")
        det = self._detect(p, reasons)
        if det is not None and det.get("decision") == "synthetic":
            prob = det.get("probability")
            reasons.append("no label or watermark, but the detector says synthetic"
                           + (f" (P={prob:.3f})" if isinstance(prob, float) else ""))
            return out("unlabelled-suspected-ai", det)
        if det is not None and det.get("error") and det.get("decision") is None:
            err = det["error"]
            # the label/watermark checks ran, but if the detector cannot read the audio the file is bad
            if err.get("type") in _FILE_ERRORS:
                return Verdict(p, "error", reasons, label, sig, wm, det, error=err)
        return out("no-evidence", det)


def verify(
    path: str | os.PathLike[str],
    *,
    key: KeyLike | Sequence[KeyLike] | None = None,
    detector: Any = None,
    marker: Any = None,
) -> Verdict:
    """One-shot convenience: ``Verifier(detector, marker, key).verify(path)``."""
    return Verifier(detector=detector, marker=marker, key=key).verify(path)
