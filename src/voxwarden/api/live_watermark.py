"""Watermark checks in live rooms with each tenant's own key (docs/api-rooms.md, "Watermarks").

The live core (``voxwarden.live``) takes one watermark checker per hub: a callable ``(samples, sr) ->
result`` that it runs on the last ``watermark_span`` seconds of a speaker's audio every
``watermark_every`` seconds of stream time (docs/live.md, "Watermark hook"). Each tenant has its own
hub, so each tenant's checker uses that tenant's key (`TenantKeys`, the same key `/v1/mark/embed` marks
with): one platform never finds, or learns anything about, another platform's marks.

* `MarkChecker` wraps a tenant's `Marker` and returns ``{"present", "payload" (8 hex digits or null),
  "confidence", "seconds"}`` — what the `watermark` event carries (``seconds`` of audio checked).
* `tenant_checkers(keys, budget)` is the factory `LiveService.watermark_for` takes: a checker for a tenant
  that has a watermark key, None for one that has none (no key is created just to check: a tenant that
  never marked anything has no marks to find).
* `CheckBudget` caps the duty cycle of the live core's watermark worker (one thread for the whole process,
  off the window path: docs/live.md, "Watermark checks"). A check costs about 0.03 s of CPU on marked
  speech but 0.2-0.45 s on unmarked speech (the detector then runs its whole speed search; up to 1.7 s of
  wall time on a busy 2-core VM). The worker asks `delay()` before each check and waits until the budget
  has credit, running then the newest span of the next speaker in line: checks take at most ``share`` of
  the wall time, so coverage (checks per speaker-minute) is bounded by that share of one core and by the
  number of speakers, never by window latency, and windows are never late because of a check. A direct
  call with the budget spent (not through the worker) returns ``{"present": null, "skipped": "budget"}``,
  which rules treat as unjudged (never as "absent").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("voxwarden.api.live")


@dataclass
class CheckBudget:
    """Shared time budget of the watermark checks of one process (all tenants, all rooms).

    At most one check runs at a time (the worker has one thread; direct callers are held to one too).
    ``share`` is the seconds of checking (wall time) allowed per second on average: 0.25 lets the checker
    thread run a quarter of the time (a quarter of one core at most). Wall time rather than
    CPU time, so that checks back off by themselves when the machine is busy (a check then takes longer).
    Up to ``burst`` seconds of credit build up while no check runs. ``ran`` / ``skipped`` count decisions.
    """

    share: float = 0.25
    burst: float = 1.0
    clock: Callable[[], float] = time.monotonic
    ran: int = 0
    skipped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.share > 0 or not self.burst > 0:
            raise ValueError("CheckBudget share and burst must be positive")
        self._credit = self.burst
        self._t = self.clock()
        self._running = False

    def try_start(self) -> bool:
        """Whether a check may run now (none running, credit left); counts the decision. A True must be
        followed by `charge` when the check is over."""
        with self._lock:
            now = self.clock()
            self._credit = min(self.burst, self._credit + (now - self._t) * self.share)
            self._t = now
            if self._running or self._credit <= 0:
                self.skipped += 1
                return False
            self._running = True
            self.ran += 1
            return True

    def delay(self) -> float:
        """Seconds until the credit is positive again (0: a check may start now). The worker waits this
        long before its next check, so checks through it are paced rather than skipped."""
        with self._lock:
            now = self.clock()
            credit = min(self.burst, self._credit + (now - self._t) * self.share)
            return 0.0 if credit > 0 else (1e-3 - credit) / self.share

    def charge(self, seconds: float) -> None:
        """The check that started is over and took `seconds` (the credit may go negative: later checks are
        skipped until it has built up again)."""
        with self._lock:
            self._running = False
            self._credit -= max(0.0, float(seconds))


SKIPPED = {"present": None, "payload": None, "skipped": "budget",
           "error": "check skipped: the watermark check budget is spent (server busy)"}


@dataclass(frozen=True)
class MarkChecker:
    """A tenant's watermark check for live streams: its `Marker`'s blind detect on the span. The live
    worker paces its calls by ``budget.delay()``."""

    marker: Any  # voxwarden.mark.Marker (kept loose: the live side only needs `detect(samples, sr)`)
    tenant_id: str = ""
    budget: CheckBudget | None = None  # None: every due check runs

    def __call__(self, samples: np.ndarray, sr: int) -> dict[str, Any]:
        """Detect this tenant's mark in `samples` (mono float at `sr`), or `SKIPPED` when the budget is
        spent. Raises on bad input (the live core records the error on the `watermark` event, counts it)."""
        if self.budget is not None and not self.budget.try_start():
            return dict(SKIPPED)
        t0 = time.perf_counter()
        try:
            r = self.marker.detect(samples, int(sr))
        finally:
            if self.budget is not None:
                self.budget.charge(time.perf_counter() - t0)
        payload = r.payload.hex() if r.present and r.payload is not None else None
        return {"present": bool(r.present), "payload": payload, "confidence": round(float(r.confidence), 6),
                "seconds": round(len(samples) / float(sr), 3)}


def tenant_checkers(keys: Any, budget: CheckBudget | None = None) -> Callable[[str], MarkChecker | None]:
    """The factory for `LiveService.watermark_for`: tenant id → its `MarkChecker` (all sharing `budget`), or
    None when the tenant has no watermark key (none is created) or its key file cannot be read (logged;
    the rooms then run without checks rather than refuse to stream)."""

    def checker_for(tenant_id: str) -> MarkChecker | None:
        try:
            if not keys.has_watermark_key(tenant_id):
                return None
            return MarkChecker(keys.marker(tenant_id), tenant_id, budget)
        except (OSError, ValueError) as e:  # unreadable directory or damaged key file (KeyFileError)
            log.error("tenant %s: watermark key unusable, live rooms run without watermark checks: %s",
                      tenant_id, e)
            return None

    return checker_for


__all__ = ["SKIPPED", "CheckBudget", "MarkChecker", "tenant_checkers"]
