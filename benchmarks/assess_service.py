"""`voxwarden assess` against a running service vs in-process, on the shipped example.

    python benchmarks/assess_service.py [--rooms 4] [--seconds 6]

Starts the service (uvicorn on `create_app`, a fresh SQLite store in a temp dir, the example's rules file,
an API key with scopes scan+rooms) on a free loopback port, then runs the example assessment three times:
in-process, via the service, and via the service again (replays: idempotency keys). Prints one JSON object:
wall times, the detection figures side by side, upload/replay counts and the live figures both ways.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "assessment.yaml"
LIVE_KEYS = ("frames_sent", "dropped_frames", "windows_scored", "alerts", "alert_latency_s_p50",
             "alert_latency_s_p95", "first_alert_s_p50", "window_latency_ms_p95", "synthetic_rooms_alerted",
             "bonafide_rooms_alerted", "measured_via")


def main() -> int:
    import uvicorn
    import yaml

    from voxwarden.api import Settings, create_app
    from voxwarden.assess.config import load_config
    from voxwarden.assess.run import run_assessment
    from voxwarden.store import Store, keys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="voxwarden-assess-svc-"))
    store = Store(data_dir=tmp / "data")
    with store.session() as s:
        tid = keys.create_tenant(s, "deployed").id
        os.environ["VOXWARDEN_BENCH_KEY"] = keys.create_api_key(s, tid, "bench", ["scan", "rooms"]).token
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = int(sk.getsockname()[1])
    rules = EXAMPLE.parent / "assessment" / "live-rules.yaml"
    app = create_app(Settings(data_dir=tmp / "data", port=port, rules_path=rules), store=store)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    while not srv.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"

    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    base = EXAMPLE.parent
    for sec, key in (("detection", "protocol"), ("detection", "audio_dir"), ("labelling", "label_sample_dir")):
        doc[sec][key] = str(base / doc[sec][key])
    doc["labelling"]["watermark_clips"] = [str(base / c) for c in doc["labelling"]["watermark_clips"]]
    doc["live"]["load"] = {"rooms": args.rooms, "seconds": args.seconds}
    out: dict[str, Any] = {"url": url, "rooms": args.rooms, "seconds": args.seconds}
    runs: dict[str, dict[str, Any]] = {}
    for name, service in (("in_process", None), ("service", {"url": url, "api_key_env": "VOXWARDEN_BENCH_KEY"}),
                          ("service_again", {"url": url, "api_key_env": "VOXWARDEN_BENCH_KEY"})):
        d = dict(doc)
        if service:
            d["service"] = service
        p = tmp / f"{name}.yaml"
        p.write_text(yaml.safe_dump(d))
        t = time.perf_counter()
        figs = run_assessment(load_config(p), tmp / name, pdf=False).figures
        det = figs["detection"]
        runs[name] = {"wall_s": round(time.perf_counter() - t, 2), "eer": det["eer"], "miss_rate": det["miss_rate"],
                      "fa_rate": det["fa_rate"], "worst_degraded_eer": det["worst_degraded_eer"],
                      "threshold": det["threshold"], "service": det.get("service"),
                      "live": {k: figs["live"].get(k) for k in LIVE_KEYS}}
    out["runs"] = runs
    a, b = runs["in_process"], runs["service"]
    out["max_abs_diff_detection"] = max(abs((a[k] or 0) - (b[k] or 0))
                                        for k in ("eer", "miss_rate", "fa_rate", "worst_degraded_eer"))
    srv.should_exit = True
    th.join(timeout=15)
    store.dispose()
    shutil.rmtree(tmp, ignore_errors=True)
    json.dump(out, sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
