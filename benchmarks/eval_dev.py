"""Validation figures on shared/data/dev: EER overall and per generating system, minDCF, speed.

    python benchmarks/eval_dev.py [MODEL] [--dev ../shared/data/dev] [--out DIR] [--limit N]

MODEL is a model directory (card.json + weights) or a packaged model name (default: ``default``).
Every dev clip is scanned with the same ``Detector`` a user runs (decode, VAD, 4 s / 2 s windows,
calibration) on ONE core (BLAS/onnxruntime threads pinned to 1), and the calibrated probabilities are
evaluated: EER (ASVspoof method), minDCF (ASVspoof 5 costs), miss / false-alarm rates at the card's
threshold, and each spoof system against all bona fide clips. Also prints the whole scan's speed in
x real time (audio seconds / wall seconds).

dev is for validation only: nothing here tunes anything. When the folder is absent (users of the package
do not have shared/), the script says so and exits 0.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VOXWARDEN_ONNX_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, before numpy / onnxruntime load

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

DEFAULT_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default="default", help="model directory or packaged model name")
    p.add_argument("--dev", type=Path, default=DEFAULT_DEV, help=f"dev folder (default {DEFAULT_DEV})")
    p.add_argument("--out", type=Path, default=None, help="write summary.json, scores.tsv, det.png, hist.png")
    p.add_argument("--limit", type=int, default=None, help="only the first N protocol rows (smoke runs)")
    args = p.parse_args(argv)

    proto = args.dev / "protocol.tsv"
    audio_dir = args.dev / "audio"
    if not proto.is_file() or not audio_dir.is_dir():
        print(f"dev set not found at {args.dev} (needs protocol.tsv and audio/): nothing to evaluate")
        return 0

    from voxwarden.detect import Detector, ModelError
    from voxwarden.detect.evaluate import EvalRecord, evaluate
    from voxwarden.detect.protocol import read_protocol, resolve_audio

    try:
        det = Detector.load(args.model)
    except ModelError as e:
        print(f"model error: {e}", file=sys.stderr)
        return 2
    rows = read_protocol(proto)
    if args.limit is not None:
        rows = rows[: args.limit]
    print(f"model {det.model_id} ({det.card.kind}) from {det.card.directory}")
    print(f"dev: {proto} ({len(rows)} clips) - validation only, never used for training or calibration")

    records: list[EvalRecord] = []
    audio_seconds = 0.0
    t0 = time.perf_counter()
    for row in rows:
        res = det.scan(resolve_audio(row, audio_dir))
        if res.ok:
            audio_seconds += float(res.duration or 0.0)
            records.append(EvalRecord(row.file, row.label, row.system, res.probability))
        else:
            err = res.error or {}
            records.append(EvalRecord(row.file, row.label, row.system, None,
                                      error=f"{err.get('type')}: {err.get('message')}"))
    wall = time.perf_counter() - t0
    s = evaluate(records, args.out, threshold=det.threshold, title=f"{det.model_id} on dev")

    def pct(x: float | None) -> str:
        return "  n/a" if x is None else f"{100 * x:5.1f}"

    print(f"\n{'system':32s} {'n':>4s} {'EER %':>6s} {'miss % @thr':>12s}")
    print(f"{'overall (calibrated prob.)':32s} {s.n_bonafide + s.n_spoof:4d} {pct(s.eer):>6s} "
          f"{pct(s.miss_rate):>12s}")
    for name, d in s.per_system.items():
        print(f"{name:32s} {d['n']:4d} {pct(d['eer']):>6s} {pct(d['miss_rate']):>12s}")
    dp = s.dcf_params
    print(f"\nminDCF {s.min_dcf if s.min_dcf is None else round(s.min_dcf, 4)} "
          f"(P_spoof {dp['p_spoof']}, C_miss {dp['c_miss']}, C_fa {dp['c_fa']})")
    print(f"at the card threshold {det.threshold:.3f}: miss {pct(s.miss_rate)} %, "
          f"false alarm {pct(s.fa_rate)} % "
          f"({s.n_bonafide} bona fide, {s.n_spoof} spoof, {s.n_failed} failed)")
    for f in s.failed[:5]:
        print(f"  failed: {f['file']}: {f['error']}")
    speed = audio_seconds / wall if wall > 0 else float("nan")
    print(f"scan speed: {audio_seconds:.0f} s of audio in {wall:.1f} s wall = {speed:.0f}x real time "
          "(one process, 1 thread; decode + VAD + windows + model)")
    if args.out is not None:
        print(f"written: {args.out}/summary.json, scores.tsv, det.png, hist.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
