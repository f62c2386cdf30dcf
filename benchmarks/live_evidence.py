"""What alert evidence costs: storing an alert with and without its audio, and the trail per scored window.

    python benchmarks/live_evidence.py [--alerts 200] [--span 10]

1. A ``StoreSink`` on SQLite (WAL, temporary data dir) stores `--alerts` alerts of one session, first
   without evidence, then each with a `--span` s clip (distinct audio, so every one is a new fsync'd WAV
   file): per-alert p50/p95 wall time of the sink call (transaction + file).
2. ``AudioTrail.write`` of 4 s / 2 s-hop windows and ``clip`` + WAV of a 10 s span: microseconds each;
   trail memory per speaker for common rule shapes (the ring is sized by the rules, capped at 30 s).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from voxwarden.api.live_sink import StoreSink
from voxwarden.live import Alert, AudioTrail, EvidenceClip, RulesEngine, SessionStarted, load_rules
from voxwarden.store import Store, keys

SR = 16000


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) * 1000.0


def sink_costs(n: int, span: float) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(0)
    out: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        store = Store(data_dir=Path(d))
        with store.session() as s:
            tenant = keys.create_tenant(s, "bench").id
        sink = StoreSink(store, tenant)
        sink(SessionStarted(room="r", speaker="a", session="s", codec="pcm16", sample_rate=SR))
        for label, with_audio in (("without evidence", False), ("with evidence", True)):
            times = []
            for i in range(n):
                t0 = 1_700_000_000.0 + (i + (n if with_audio else 0)) * 2.0
                clip = None
                if with_audio:
                    x = rng.integers(-3000, 3000, int(span * SR), dtype=np.int16)
                    clip = EvidenceClip(x, SR, 0.0, span, 0.0, span)
                ev = Alert(room="r", speaker="a", session="s", rule="bench", window_start=t0, window_end=t0 + 4,
                           start=t0 - 1.7e9, end=t0 - 1.7e9 + 4, run_start=t0 - 1.7e9 - span + 4, windows=2,
                           probability=0.9, evidence=clip)
                t = time.perf_counter()
                sink(ev)
                times.append(time.perf_counter() - t)
            out[label] = (_pct(times, 50), _pct(times, 95))
        store.dispose()
    return out


def trail_costs() -> tuple[float, float]:
    x = np.random.default_rng(1).normal(0, 0.1, 4 * SR).astype(np.float32)
    t = AudioTrail(10 * SR, SR)
    n = 2000
    t0 = time.perf_counter()
    for k in range(n):
        t.write(k * 2 * SR, x)
    write_us = (time.perf_counter() - t0) / n * 1e6
    end = (n - 1) * 2 + 4
    t0 = time.perf_counter()
    for _ in range(200):
        t.clip(end - 10.0, end).wav()
    clip_us = (time.perf_counter() - t0) / 200 * 1e6
    return write_us, clip_us


def trail_sizes() -> list[tuple[str, float]]:
    shapes = {"sustain 1 window": "{windows: 1}", "sustain 2 windows": "{windows: 2}",
              "sustain 6 s": "{seconds: 6}", "sustain 60 s": "{seconds: 60}"}
    out = []
    for name, sustain in shapes.items():
        rules = load_rules(f"version: 1\nrules:\n  - name: r\n    threshold: 0.5\n    sustain: {sustain}\n")
        need = RulesEngine(rules).span_needed(4.0, 2.0) + 4.0
        out.append((name, min(30.0, need)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=200)
    ap.add_argument("--span", type=float, default=10.0)
    a = ap.parse_args()
    for label, (p50, p95) in sink_costs(a.alerts, a.span).items():
        print(f"sink, alert {label:17s}: p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  ({a.alerts} alerts, SQLite)")
    w, c = trail_costs()
    print(f"trail write per 4 s window: {w:.0f} us; clip + WAV of 10 s: {c:.0f} us")
    for name, secs in trail_sizes():
        print(f"trail for {name:18s}: {secs:4.1f} s = {secs * SR * 2 / 1024:5.0f} KiB per speaker")


if __name__ == "__main__":
    main()
