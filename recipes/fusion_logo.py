"""Score-level fusion of the two countermeasures on leave-one-generator-out folds (the session-6 rule).

    python recipes/fusion_logo.py CORPUS_DIR LCNN_FOLDS LFCC_FOLDS OUT.json [--systems kokoro,world] [--jobs 2]

LCNN_FOLDS/SYSTEM/ holds the LCNN fold trained without SYSTEM (`KEEP_MODELS=1 recipes/gpu_logo.sh`; a bare
`model.onnx` gets the default recipe's card: 4 s windows, 2 s hop, mean), LFCC_FOLDS/SYSTEM/ the `lfcc-gmm` fold
(`recipes/lfcc_logo.py --keep`). Each fold's two models score the same trials, the way the `Detector` scores
files (VAD, card windows, aggregation): every clip of SYSTEM (all splits) against the `val` bona fide clips, on
the clips both can score. Nothing is fitted on these trials:

- the LCNN's raw score is its log-odds (a logit trained with BCE on class-balanced batches);
- the LFCC-GMM's raw score goes through the Platt calibration in its own fold card (fitted on that fold's
  train-speaker hold-back), a * s + b;
- the fused score is the mean of the two log-odds.

OUT.json gets each fold's EER of the LCNN alone, the LFCC-GMM alone and the fusion, with trial counts; the
script prints the table, the six-fold and TTS-fold means, and what the rule says (docs/neural-countermeasure.md,
"Fusion rule"): the fusion becomes a candidate only if its mean over the folds is at least 3 points below the
LCNN's and its mean over the TTS folds present (kokoro, piper-vits, espeak-ng) is not higher.
Never point this at shared/data/dev. Exit codes: 0 done, 2 bad input (no protocol, a fold folder missing or
unloadable, unknown system) or a fold that could not be scored (the others are still written).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

TTS_FOLDS = ("kokoro", "piper-vits", "espeak-ng")
MARGIN = 0.03  # the rule: at least 3 points below the LCNN alone


def _rows(protocol: Path) -> list[dict[str, str]]:
    with open(protocol, newline="") as f:
        r = csv.DictReader(f, delimiter="\t")
        rows = list(r)
        need = {"file", "label", "system", "split"}
        if not need <= set(r.fieldnames or []):
            raise ValueError(f"{protocol}: needs columns {sorted(need)}, has {r.fieldnames}")
    return rows


def model_folder(fold: Path, tmp: Path) -> Path:
    """`fold` itself when it has a card; a bare LCNN `model.onnx` gets the default recipe's card in `tmp`."""
    from voxwarden.detect.card import sha256_file

    if (fold / "card.json").is_file():
        return fold
    onnx = fold / "model.onnx"
    if not onnx.is_file():
        raise FileNotFoundError(f"{fold}: neither card.json nor model.onnx")
    dest = tmp / "lcnn"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx, dest / "model.onnx")
    card = {"name": "lcnn-fold", "version": "fold", "kind": "onnx", "file": "model.onnx",
            "sha256": sha256_file(dest / "model.onnx"), "sample_rate": 16000, "window": 4.0, "hop": 2.0,
            "calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5, "aggregation": "mean"}
    (dest / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return dest


def fold(corpus: Path, system: str, lcnn_fold: Path, lfcc_fold: Path) -> dict:
    """EER of the LCNN fold, the LFCC-GMM fold and their mean log-odds on the fold's trials."""
    from voxwarden.audio import load
    from voxwarden.detect.card import load_card
    from voxwarden.detect.metrics import eer
    from voxwarden.detect.train import _clip_scorer

    rows = _rows(corpus / "protocol.tsv")
    with tempfile.TemporaryDirectory(prefix="fusion-logo-") as tmp:
        lcnn = _clip_scorer(model_folder(lcnn_fold, Path(tmp)))
        lfcc_card = load_card(lfcc_fold)
        lfcc = _clip_scorer(lfcc_fold)
        a, b = lfcc_card.calibration_a, lfcc_card.calibration_b
        by: dict[str, list[tuple[float, float]]] = {"bonafide": [], "spoof": []}
        skipped = 0
        for r in rows:
            is_bona = r["label"] == "bonafide" and r["split"] == "val"
            if not (is_bona or (r["label"] == "spoof" and r["system"] == system)):
                continue
            try:
                clip = load(corpus / "audio" / r["file"], sr=16000, max_duration=None)
                pair = (lcnn(clip), a * lfcc(clip) + b)
            except Exception:  # noqa: BLE001 - too little speech, too short: skipped by both, as the folds do
                skipped += 1
                continue
            by["bonafide" if is_bona else "spoof"].append(pair)
    bona, spoof = np.asarray(by["bonafide"]).reshape(-1, 2), np.asarray(by["spoof"]).reshape(-1, 2)
    if not len(bona) or not len(spoof):
        raise ValueError(f"{system}: nothing scoreable ({len(bona)} bona fide, {len(spoof)} spoof clips)")
    res = {"system": system, "n_bonafide": len(bona), "n_spoof": len(spoof), "skipped": skipped}
    res["lcnn"] = float(eer(bona[:, 0], spoof[:, 0])[0])
    res["lfcc"] = float(eer(bona[:, 1], spoof[:, 1])[0])
    res["fused"] = float(eer(bona.mean(axis=1), spoof.mean(axis=1))[0])
    return res


def verdict(folds: list[dict]) -> dict:
    """Means over the folds and over the TTS folds, and whether the fusion is a candidate by the rule."""
    def mean(key: str, names: tuple[str, ...] | None = None) -> float | None:
        vals = [f[key] for f in folds if names is None or f["system"] in names]
        return float(np.mean(vals)) if vals else None

    out = {k: mean(k) for k in ("lcnn", "lfcc", "fused")}
    out.update({f"tts_{k}": mean(k, TTS_FOLDS) for k in ("lcnn", "lfcc", "fused")})
    tts_ok = out["tts_fused"] is None or out["tts_fused"] <= out["tts_lcnn"]
    out["candidate"] = bool(out["fused"] <= out["lcnn"] - MARGIN and tts_ok)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("lcnn_folds", type=Path)
    ap.add_argument("lfcc_folds", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--systems", default="", help="comma-separated folds (default: every folder in both)")
    ap.add_argument("--jobs", type=int, default=1)
    a = ap.parse_args(argv)
    from voxwarden.detect.protocol import ProtocolError, fold_dir

    try:
        rows = _rows(a.corpus / "protocol.tsv")
        known = {r["system"] for r in rows if r["label"] == "spoof"}
        both = sorted(p.name for p in a.lcnn_folds.iterdir() if p.is_dir() and (a.lfcc_folds / p.name).is_dir()) \
            if a.lcnn_folds.is_dir() and a.lfcc_folds.is_dir() else []
        systems = [s for s in a.systems.split(",") if s] or both
        if not systems:
            raise ValueError(f"no fold present in both {a.lcnn_folds} and {a.lfcc_folds}")
        unknown = sorted(set(systems) - known)
        if unknown:
            raise ValueError(f"not spoof systems of the corpus: {', '.join(unknown)}")
        pairs = {s: (fold_dir(a.lcnn_folds, s), fold_dir(a.lfcc_folds, s)) for s in systems}
        missing = [str(p) for pr in pairs.values() for p in pr if not p.is_dir()]
        if missing:
            raise ValueError(f"fold folders missing: {', '.join(missing)}")
    except (OSError, ValueError, ProtocolError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results: list[dict] = []
    failed: list[str] = []
    with ProcessPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        futures = {s: ex.submit(fold, a.corpus, s, *pairs[s]) for s in systems}
        for s, fut in futures.items():
            try:
                results.append(fut.result())
            except Exception as e:  # noqa: BLE001 - an unloadable fold: recorded, the others go on
                results.append({"system": s, "error": f"{type(e).__name__}: {e}"})
                failed.append(s)
                print(f"{s:18s} FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
                continue
            r = results[-1]
            print(f"{s:18s} LCNN {100 * r['lcnn']:5.1f} %  LFCC {100 * r['lfcc']:5.1f} %  fused "
                  f"{100 * r['fused']:5.1f} %  ({r['n_spoof']} spoof / {r['n_bonafide']} bona fide)", flush=True)
    ok = [r for r in results if "error" not in r]
    summary = verdict(ok) if ok else None
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(a.out.name + ".part")
    tmp.write_text(json.dumps({"folds": results, "summary": summary, "failed": failed,
                               "rule": "mean log-odds; candidate if mean <= LCNN mean - 3 points and TTS mean "
                                       "not higher"}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(a.out)
    if summary:
        print(f"mean: LCNN {100 * summary['lcnn']:.1f} %  LFCC {100 * summary['lfcc']:.1f} %  fused "
              f"{100 * summary['fused']:.1f} %  -> fusion {'IS' if summary['candidate'] else 'is NOT'} a candidate")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
