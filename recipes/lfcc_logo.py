"""Leave-one-generator-out EER of the classic countermeasure (LFCC + GMM) on a corpus, on a CPU.

    python recipes/lfcc_logo.py CORPUS_DIR OUT.json [--systems espeak-ng,kokoro] [--jobs 2]
        [--opt n_components=256] [--opt lfcc.n_filters=70]

For each spoof system S of CORPUS_DIR/protocol.tsv: the `lfcc-gmm` recipe (`voxwarden train --model
lfcc-gmm --seed 0 --holdout 0.15`) is trained on the corpus's `train` rows without S. The fold is then
scored the way the `Detector` scores files on every clip of S (all splits) against the `val` bona fide
clips. That is the protocol of the LCNN's folds (`recipes/gpu_logo.sh`). An LFCC-GMM trains in about 2 min on
2 cores, so all folds run on a CPU. OUT.json gets one entry per fold: the EER, the trial counts and the
seconds taken; the script prints its own table. Never point this at shared/data/dev. `--opt` sets a
hyper-parameter of the recipe (`train` options of lfcc-gmm; `lfcc.FIELD` an `LfccConfig` field), so a
variant of the recipe runs through the same folds.
Exit codes: 0 done, 2 bad input (no protocol, unknown system) or a fold that could not train (the
other folds still run and are written, the failed one with its error).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from voxwarden.detect.train import parse_opts  # noqa: F401  (the recipe's --opt; tests call it here)


def _rows(protocol: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(protocol, newline="") as f:
        r = csv.DictReader(f, delimiter="\t")
        rows = list(r)
        fields = list(r.fieldnames or [])
    need = {"file", "label", "system", "split"}
    if not need <= set(fields):
        raise ValueError(f"{protocol}: needs columns {sorted(need)}, has {fields}")
    return fields, rows


def fold(corpus: Path, system: str, seed: int = 0, opts: dict | None = None, keep: Path | None = None) -> dict:
    """Train without `system` on the `train` rows, score its clips against the `val` bona fide."""
    from voxwarden.audio import load
    from voxwarden.detect.metrics import eer
    from voxwarden.detect.protocol import fold_dir
    from voxwarden.detect.train import _clip_scorer, train

    fields, rows = _rows(corpus / "protocol.tsv")
    dest = fold_dir(keep, system) if keep is not None else None  # a hostile name fails before any training
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lfcc-logo-") as tmp:
        proto = Path(tmp) / "protocol.tsv"
        with open(proto, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, delimiter="\t", lineterminator="\n")
            w.writeheader()
            w.writerows(r for r in rows if r["split"] == "train" and r["system"] != system)
        model = Path(tmp) / "model"
        train(proto, corpus / "audio", "lfcc-gmm", model, seed=seed, holdout=0.15, **dict(opts or {}))
        score = _clip_scorer(model)
        scores: dict[str, list[float]] = {"bonafide": [], "spoof": []}
        skipped = 0
        for r in rows:
            is_bona = r["label"] == "bonafide" and r["split"] == "val"
            if not (is_bona or r["system"] == system):
                continue
            try:
                clip = load(corpus / "audio" / r["file"], sr=16000, max_duration=None)
                scores["bonafide" if is_bona else "spoof"].append(score(clip))
            except Exception:  # noqa: BLE001 - too little speech, too short: skip the clip, as the trainer does
                skipped += 1
        if dest is not None:  # the fold's model, to score it again later (e.g. per clip, for a fusion study)
            import shutil

            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(model, dest)
    e, _ = eer(np.asarray(scores["bonafide"]), np.asarray(scores["spoof"]))
    return {"system": system, "eer": float(e), "n_bonafide": len(scores["bonafide"]),
            "n_spoof": len(scores["spoof"]), "skipped": skipped, "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--systems", default="", help="comma-separated folds (default: every spoof system)")
    ap.add_argument("--jobs", type=int, default=1, help="folds trained at once (each uses ~1-2 cores)")
    ap.add_argument("--keep", type=Path, default=None, metavar="DIR",
                    help="keep each fold's model in DIR/SYSTEM/ (a model folder `--model` and compare_models take)")
    ap.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe hyper-parameter, repeatable: n_components=256, lfcc.n_filters=70")
    a = ap.parse_args(argv)
    try:
        opts = parse_opts(a.opt)
        if "features" in opts:
            from voxwarden.detect.train import lfcc_config

            lfcc_config(opts["features"])  # a bad field fails here, before any fold trains
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        _, rows = _rows(a.corpus / "protocol.tsv")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    known = sorted({r["system"] for r in rows if r["label"] == "spoof" and r["split"] == "train"})
    systems = [s for s in a.systems.split(",") if s] or known
    unknown = sorted(set(systems) - set(known))
    if unknown:
        print(f"error: not spoof systems of the train split: {', '.join(unknown)} (known: {', '.join(known)})",
              file=sys.stderr)
        return 2
    results: list[dict] = []
    failed: list[str] = []
    with ProcessPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        futures = {s: ex.submit(fold, a.corpus, s, 0, opts, a.keep) for s in systems}
        for s, fut in futures.items():
            try:
                res = fut.result()
            except Exception as e:  # noqa: BLE001 - a fold that cannot train: recorded, the other folds go on
                results.append({"system": s, "error": f"{type(e).__name__}: {e}"})
                failed.append(s)
                print(f"{s:18s} FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                continue
            results.append(res)
            print(f"{res['system']:18s} EER {100 * res['eer']:5.1f} %  ({res['n_spoof']} spoof / "
                  f"{res['n_bonafide']} bona fide, {res['seconds']:.0f} s)", flush=True)
    done = [r["eer"] for r in results if "eer" in r]
    mean = float(np.mean(done)) if done else float("nan")
    print(f"mean over {len(done)} folds: {100 * mean:.1f} %" + (f"; failed: {', '.join(failed)}" if failed else ""))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"corpus": str(a.corpus), "model": "lfcc-gmm", "options": opts, "folds": results,
                                 "mean_eer": mean if done else None}, indent=1))
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
