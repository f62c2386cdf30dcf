"""Watermark checks off the window path: one low-priority worker thread per process (docs/live.md).

A check costs 0.03 s of CPU on marked speech but 0.2-0.45 s on unmarked speech (the detector then runs
its whole speed search). Run inside the scoring thread it made the window that carried it late by that
much and held a scorer away from every other room. Now a session hands the span to a ``WatermarkWorker``
after the window's events are out; the worker runs checks one at a time and the result comes back later
as its own ``watermark`` event (``WatermarkChecked``), which the rules judge when it arrives.

* **One thread.** ``os.nice`` is process-wide, so "low priority" means: never in a scoring thread, never
  more than one check at a time (at most one core), and paced by the checker's budget when it has one.
* **Bounded, newest-wins per speaker.** At most one check per session waits; a newer span of the same
  speaker replaces the waiting one in place (it keeps its turn, counted ``superseded``), so under load
  every speaker is still checked in turn, each time on its latest audio. At most ``max_queue`` sessions
  wait; beyond that the oldest waiting check is dropped (``dropped``).
* **Pacing.** A job's ``pace()`` says how many seconds to wait before it may run (the API's
  ``CheckBudget.delay``: a cap on the worker's duty cycle). The worker waits, then runs the newest span
  of the first session in line: coverage is limited by the budget's share of one core, not by latency.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

log = logging.getLogger("voxwarden.live")

MAX_PACE_WAIT = 0.5  # seconds the worker sleeps at a time while pacing (new jobs and stop wake it earlier)


@dataclass
class _Job:
    run: Callable[[], None]
    pace: Callable[[], float] | None


@dataclass
class WorkerStats:
    """Counters of a worker: checks run, replaced by a newer span before running, dropped (queue full),
    and failed (the job raised: a bug, logged)."""

    ran: int = 0
    superseded: int = 0
    dropped: int = 0
    failed: int = 0
    busy_seconds: float = 0.0


class WatermarkWorker:
    """One daemon thread running submitted jobs one at a time, newest-wins per key (module docstring).

    The thread starts with the first ``submit``; ``stop`` ends it (waiting jobs are dropped).
    """

    def __init__(self, *, max_queue: int = 10_000, name: str = "vw-live-watermark") -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.max_queue = int(max_queue)
        self.name = name
        self.stats = WorkerStats()
        self._jobs: OrderedDict[Hashable, _Job] = OrderedDict()
        self._running: Hashable | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, key: Hashable, run: Callable[[], None], *, pace: Callable[[], float] | None = None) -> bool:
        """Queue `run` for `key` (a session), replacing a job of the same key that has not started.
        False when the worker is stopped."""
        with self._cond:
            if self._stopped:
                return False
            if key in self._jobs:
                self._jobs[key] = _Job(run, pace)  # keeps its place in line
                self.stats.superseded += 1
            else:
                while len(self._jobs) >= self.max_queue:
                    self._jobs.popitem(last=False)
                    self.stats.dropped += 1
                self._jobs[key] = _Job(run, pace)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return True

    def queued(self) -> int:
        """Jobs waiting (not counting one that runs)."""
        with self._cond:
            return len(self._jobs)

    def busy(self, key: Hashable) -> bool:
        """Whether a job of `key` waits or runs."""
        with self._cond:
            return key in self._jobs or self._running == key

    def ahead(self, key: Hashable) -> int | None:
        """Checks to run until `key`'s is over: 0 while it runs, n when n-1 wait before it, None when it has
        none (a closing session waits only for a check that is about to run, never for a long queue)."""
        with self._cond:
            if self._running == key:
                return 0
            for i, k in enumerate(self._jobs):
                if k == key:
                    return i + 1
            return None

    def wait(self, key: Hashable, timeout: float) -> bool:
        """Wait up to `timeout` s until no job of `key` waits or runs; True when none does."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while key in self._jobs or self._running == key:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopped:
                    return False
                self._cond.wait(left)
            return True

    def cancel(self, key: Hashable) -> bool:
        """Drop the waiting job of `key` (one that runs finishes); True when one was dropped."""
        with self._cond:
            return self._jobs.pop(key, None) is not None

    def stop(self, timeout: float = 5.0) -> None:
        """Drop waiting jobs, let a running one finish (up to `timeout` s), end the thread."""
        with self._cond:
            self._stopped = True
            self._jobs.clear()
            self._cond.notify_all()
            t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def _next(self) -> tuple[Hashable, _Job] | None:
        """The next job to run once its pacing allows (None: stopped)."""
        with self._cond:
            while True:
                if self._stopped:
                    return None
                if not self._jobs:
                    self._cond.wait()
                    continue
                key, job = next(iter(self._jobs.items()))
                delay = 0.0
                if job.pace is not None:
                    try:
                        delay = float(job.pace())
                    except Exception:  # noqa: BLE001 - a pacing bug must not stop the checks
                        log.exception("watermark pacing failed; running the check now")
                if delay > 0:  # wait, then look again: a newer span may have replaced this one
                    self._cond.wait(min(delay, MAX_PACE_WAIT))
                    continue
                del self._jobs[key]
                self._running = key
                return key, job

    def _loop(self) -> None:
        while True:
            nxt = self._next()
            if nxt is None:
                return
            key, job = nxt
            t0 = time.perf_counter()
            try:
                job.run()
            except Exception:  # noqa: BLE001 - the worker outlives a failing job
                self.stats.failed += 1
                log.exception("watermark check job failed")
            finally:
                with self._cond:
                    self.stats.ran += 1
                    self.stats.busy_seconds += time.perf_counter() - t0
                    self._running = None
                    self._cond.notify_all()


__all__ = ["WatermarkWorker", "WorkerStats"]
