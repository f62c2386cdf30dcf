"""`voxwarden assess` figures: wall time of the shipped example, the live load run at a chosen size, and the
detection breakdowns (per system / codec / clip length) on ../shared/data/dev when it is there.

    python benchmarks/assess.py [--rooms 4] [--seconds 6] [--dev] [--no-pdf]

The example config is copied with `live.load` resized; with ``--dev`` the detection set is
../shared/data/dev (validation only: EERs are reported, nothing is tuned on it) and the live rooms stream
its spoof / bona fide clips. Prints one JSON object of the headline figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "assessment.yaml"
DEV = ROOT.parent / "shared" / "data" / "dev"


def main() -> int:
    import yaml

    from voxwarden.assess.config import load_config
    from voxwarden.assess.run import run_assessment

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--dev", action="store_true", help="detection on ../shared/data/dev (if present)")
    ap.add_argument("--no-pdf", action="store_true")
    args = ap.parse_args()
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    base = EXAMPLE.parent
    for sec, key in (("detection", "protocol"), ("detection", "audio_dir"), ("labelling", "label_sample_dir")):
        doc[sec][key] = str(base / doc[sec][key])
    doc["labelling"]["watermark_clips"] = [str(base / c) for c in doc["labelling"]["watermark_clips"]]
    doc["live"]["load"].update({"rooms": args.rooms, "seconds": args.seconds,
                                "rules": str(base / doc["live"]["load"]["rules"])})
    note = "examples/audio"
    if args.dev:
        if not (DEV / "protocol.tsv").is_file():
            print("(../shared/data/dev not present: using the example clips)", file=sys.stderr)
        else:
            doc["detection"].update({"protocol": str(DEV / "protocol.tsv"), "audio_dir": str(DEV / "audio"),
                                     "eval_dataset": "shared/data/dev (validation only)", "max_trials": 1000})
            note = "shared/data/dev"
    with tempfile.TemporaryDirectory() as td:
        cfg_path = Path(td) / "assessment.yaml"
        cfg_path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        cfg = load_config(cfg_path)
        t = time.perf_counter()
        o = run_assessment(cfg, Path(td) / "out", pdf=not args.no_pdf)
        wall = time.perf_counter() - t
    f = o.figures
    d, lv = f["detection"], f["live"]
    out = {
        "data": note, "wall_s": round(wall, 1), "pdf": f["pdf"]["written"], "risk": f["risk"],
        "detection": {"n": d.get("n_trials"), "eer": d.get("eer"), "miss": d.get("miss_rate"), "fa": d.get("fa_rate"),
                      "per_system_eer": {k: v["eer"] for k, v in d.get("per_system", {}).items()},
                      "per_condition": d.get("per_condition"), "per_length": d.get("per_length")},
        "live": {k: lv.get(k) for k in ("rooms", "seconds", "alerts", "alert_latency_s_p50", "alert_latency_s_p95",
                                        "first_alert_s_p50", "first_alert_s_max", "windows_scored", "windows_per_s",
                                        "window_latency_ms_p95", "rooms_held_realtime", "dropped_frames",
                                        "kept_up", "synthetic_rooms_alerted", "bonafide_rooms_alerted")},
        "errors": f["errors"][:5],
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
