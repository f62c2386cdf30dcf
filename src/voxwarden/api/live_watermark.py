"""Watermark checks in live rooms with each tenant's own key (docs/api-rooms.md, "Watermarks").

The live core (``voxwarden.live``) takes one watermark checker per hub: a callable ``(samples, sr) ->
result`` that it runs on the last ``watermark_span`` seconds of a speaker's audio every
``watermark_every`` seconds of stream time (docs/live.md, "Watermark hook"). Each tenant has its own
hub, so each tenant's checker uses that tenant's key (`TenantKeys`, the same key `/v1/mark/embed` marks
with): one platform never finds, or learns anything about, another platform's marks.

* `MarkChecker` wraps a tenant's `Marker` and returns the JSON the window event carries:
  ``{"present", "payload" (8 hex digits or null), "confidence", "seconds"}`` — ``seconds`` of audio
  checked, ending at the window's ``end``.
* `tenant_checkers(keys, budget)` is the factory `LiveService.watermark_for` takes: a checker for a tenant
  that has a watermark key, None for one that has none (no key is created just to check: a tenant that
  never marked anything has no marks to find).
* `CheckBudget` bounds the time all checks of the process take together. A check costs about 0.03 s of
  CPU on marked speech but 0.2-0.45 s on unmarked speech (the detector then runs its whole speed search;
  0.9-1.7 s of wall time on the busy 2-core VM), it runs inside a scoring thread, and the checks of rooms
  that start together (or resume together after a restart) all fall due together: 50 rooms would want
  ~20 CPU-seconds at once and stall every room's windows. So checks run one at a time (`LiveService` adds
  one scoring thread for it) and within a share of the time; a check due while one runs or the budget is
  spent is skipped — the window carries ``{"present": null, "skipped": "budget", "error": ...}``, which
  rules treat as unjudged (never as "absent") — and the speaker's next check comes ``watermark_every`` later.
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

    At most one check runs at a time (a check holds a scoring thread for up to a second or two: two at
    once would stall every room's windows on a 2-core machine). ``share`` is the seconds of checking (wall
    time) allowed per second on average: 0.25 lets checks run a quarter of the time. Wall time rather than
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
    """A tenant's watermark check for live windows: its `Marker`'s blind detect on the span."""

    marker: Any  # voxwarden.mark.Marker (kept loose: the live side only needs `detect(samples, sr)`)
    tenant_id: str = ""
    budget: CheckBudget | None = None  # None: every due check runs

    def __call__(self, samples: np.ndarray, sr: int) -> dict[str, Any]:
        """Detect this tenant's mark in `samples` (mono float at `sr`), or `SKIPPED` when the budget is
        spent. Raises on bad input (the live core records the error on the window and counts it)."""
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
