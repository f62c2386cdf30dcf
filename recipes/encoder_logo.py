"""Frozen pretrained speech encoders as a countermeasure front end, by leave-one-generator-out EER.

    python recipes/encoder_logo.py CORPUS_DIR OUT.json --encoder speech-embedding|ge2e
        [--systems kokoro,piper-vits] [--jobs 2] [--cache FEATS.npz]
    python recipes/encoder_logo.py CORPUS_DIR OUT.json --encoder ge2e --eval PROTOCOL --eval-audio DIR

The study pre-registered in docs/neural-countermeasure.md ("Frozen pretrained speech encoders"). Each clip,
decoded to 16 kHz mono by `voxwarden.audio.load`, becomes one vector: the mean and standard deviation over
time of the encoder's frame vectors. A standardised, class-balanced L2 logistic regression (C = 1) is the back
end. Folds follow `recipes/lfcc_logo.py`: train on the `train` rows without system S, score every clip of S
against the `val` bona fide clips. `--eval` instead trains once on every `train` row and scores another
protocol (EER overall and per `system`; `scores.tsv` beside OUT.json) -- for shared/data/dev only after a
decision, never to choose anything.

Encoders (recipe-only, never voxwarden runtime dependencies; both Apache-2.0):
  speech-embedding  Google's speech embedding, the ONNX copy and mel front end inside `openwakeword==0.4.0`
                    (`pip install --no-deps openwakeword==0.4.0`): 96-d per 80 ms.
  ge2e              Resemblyzer's GE2E speaker encoder (`pip install --no-deps Resemblyzer==0.1.4 librosa
                    webrtcvad-wheels`, needs torch): 256-d per 1.6 s partial.
Unreadable clips are skipped with a message and counted; the run goes on.
Exit codes: 0 done, 2 bad input (no protocol, unknown system or encoder, encoder not installed).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SR = 16000


# --- encoders: wav (float32, 16 kHz mono, [-1, 1]) -> frame vectors [T, D] -----------------------------------

def _speech_embedding() -> Callable[[np.ndarray], np.ndarray]:
    import importlib.util

    import onnxruntime as ort

    spec = importlib.util.find_spec("openwakeword")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("openwakeword is not installed: pip install --no-deps openwakeword==0.4.0")
    res = Path(list(spec.submodule_search_locations)[0]) / "resources" / "models"
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    mel = ort.InferenceSession(str(res / "melspectrogram.onnx"), so, providers=["CPUExecutionProvider"])
    emb = ort.InferenceSession(str(res / "embedding_model.onnx"), so, providers=["CPUExecutionProvider"])
    win = 76  # mel frames per embedding (775 ms); one embedding every 8 frames (80 ms)

    def frames(wav: np.ndarray) -> np.ndarray:
        x = np.clip(wav, -1.0, 1.0) * 32767.0
        need = SR  # the model needs 76 frames: pad clips under 1 s with zeros (the corpus crops are >= 1 s)
        if len(x) < need:
            x = np.pad(x, (0, need - len(x)))
        spec = np.squeeze(mel.run(None, {"input": x[None].astype(np.float32)})[0]) / 10.0 + 2.0  # openwakeword's
        starts = range(0, spec.shape[0] - win + 1, 8)
        batch = np.stack([spec[i:i + win] for i in starts])[..., None].astype(np.float32)
        return np.asarray(emb.run(None, {"input_1": batch})[0]).reshape(len(batch), -1)

    return frames


def _ge2e() -> Callable[[np.ndarray], np.ndarray]:
    try:
        import torch
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError as e:
        raise RuntimeError(f"GE2E needs torch and Resemblyzer==0.1.4 (+ librosa, webrtcvad-wheels): {e}") from e
    torch.set_num_threads(1)
    enc = VoiceEncoder(device="cpu", verbose=False)

    def frames(wav: np.ndarray) -> np.ndarray:
        w = preprocess_wav(wav.astype(np.float32), source_sr=SR)  # Resemblyzer's own level and silence trim
        if len(w) < SR // 2:  # trimmed to almost nothing: use the clip as it was
            w = wav.astype(np.float32)
        _, partials, _ = enc.embed_utterance(w, return_partials=True)
        return np.asarray(partials, dtype=np.float32)

    return frames


ENCODERS: dict[str, Callable[[], Callable[[np.ndarray], np.ndarray]]] = {
    "speech-embedding": _speech_embedding,
    "ge2e": _ge2e,
}


def pool(frames: np.ndarray) -> np.ndarray:
    """One vector per clip: mean and standard deviation over time of the frame vectors."""
    f = np.atleast_2d(np.asarray(frames, dtype=np.float64))
    return np.concatenate([f.mean(axis=0), f.std(axis=0)])


# --- features, cached per clip ---------------------------------------------------------------------------------

_worker: Callable[[np.ndarray], np.ndarray] | None = None


def _init(name: str) -> None:
    global _worker
    _worker = ENCODERS[name]()


def _embed(path: str) -> tuple[str, np.ndarray | None, str]:
    from voxwarden.audio import load

    assert _worker is not None
    try:
        clip = load(path, sr=SR, max_duration=None)
        return path, pool(_worker(np.asarray(clip.samples, dtype=np.float32))), ""
    except Exception as e:  # noqa: BLE001 - a bad clip is skipped with its reason; the others go on
        return path, None, f"{type(e).__name__}: {e}"


def features(paths: list[Path], encoder: str, jobs: int = 1, cache: Path | None = None) -> dict[str, np.ndarray]:
    """Pooled encoder vectors for `paths` (str(path) -> vector); clips that fail are left out and reported."""
    have: dict[str, np.ndarray] = {}
    if cache is not None and cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                keys, mats = list(z["keys"]), z["vectors"]
                have = {str(k): mats[i] for i, k in enumerate(keys)}
        except Exception as e:  # noqa: BLE001 - a damaged cache is only lost time: recompute and replace it
            print(f"cache {cache} unreadable ({type(e).__name__}: {e}); recomputing", file=sys.stderr)
            have = {}
    todo = sorted({str(p) for p in paths} - set(have))
    if todo:
        with ProcessPoolExecutor(max_workers=max(1, jobs), initializer=_init, initargs=(encoder,)) as ex:
            for i, (path, vec, err) in enumerate(ex.map(_embed, todo, chunksize=16)):
                if vec is None:
                    print(f"skipped {path}: {err}", file=sys.stderr)
                else:
                    have[path] = vec
                if (i + 1) % 500 == 0:
                    print(f"  {encoder}: {i + 1}/{len(todo)} clips", file=sys.stderr, flush=True)
        if cache is not None and have:
            keys = sorted(have)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array(keys), vectors=np.stack([have[k] for k in keys]))
            tmp.replace(cache)  # whole file or nothing
    return {str(p): have[str(p)] for p in paths if str(p) in have}


# --- back end ---------------------------------------------------------------------------------------------------

def fit_logreg(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """Standardised, class-balanced L2 logistic regression; returns a scorer (higher = more likely spoof)."""
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(np.unique(y)) != 2:
        raise ValueError("training needs both classes")
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd < 1e-9] = 1.0
    z = (x - mu) / sd
    w_cls = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        m = z @ w + b
        ll = w_cls * (y * log_expit(m) + (1 - y) * log_expit(-m))
        g = w_cls * (expit(m) - y)
        val = -ll.sum() + 0.5 / c * (w @ w)
        return val, np.concatenate([z.T @ g + w / c, [g.sum()]])

    res = minimize(loss, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    w, b = res.x[:-1], res.x[-1]
    return lambda v: ((np.atleast_2d(v) - mu) / sd) @ w + b


# --- protocol ----------------------------------------------------------------------------------------------------

def _rows(protocol: Path) -> list[dict[str, str]]:
    with open(protocol, newline="") as f:
        r = csv.DictReader(f, delimiter="\t")
        rows = list(r)
        fields = set(r.fieldnames or [])
    if not {"file", "label", "system"} <= fields:
        raise ValueError(f"{protocol}: needs columns file, label, system; has {sorted(fields)}")
    return rows


def _xy(rows: list[dict[str, str]], audio: Path, feats: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    keep = [r for r in rows if str(audio / r["file"]) in feats]
    if not keep:
        raise ValueError(f"no scoreable clip among {len(rows)} rows (is there a `split` column with train/val?)")
    x = np.stack([feats[str(audio / r["file"])] for r in keep])
    return x, np.array([r["label"] == "spoof" for r in keep], dtype=np.float64)


def run_folds(corpus: Path, systems: list[str], feats: dict[str, np.ndarray]) -> list[dict]:
    """One fold per system: train without it on `train`, score its clips against the `val` bona fide."""
    from voxwarden.detect.metrics import eer

    rows = _rows(corpus / "protocol.tsv")
    audio = corpus / "audio"
    out = []
    for s in systems:
        t0 = time.perf_counter()
        score = fit_logreg(*_xy([r for r in rows if r.get("split") == "train" and r["system"] != s], audio, feats))
        bona = [r for r in rows if r["label"] == "bonafide" and r.get("split") == "val"]
        spoof = [r for r in rows if r["system"] == s]
        xb, _ = _xy(bona, audio, feats)
        xs, _ = _xy(spoof, audio, feats)
        e, _ = eer(score(xb), score(xs))
        out.append({"system": s, "eer": float(e), "n_bonafide": len(xb), "n_spoof": len(xs),
                    "skipped": len(bona) + len(spoof) - len(xb) - len(xs),
                    "seconds": round(time.perf_counter() - t0, 2)})
    return out


def run_eval(corpus: Path, feats: dict[str, np.ndarray], protocol: Path, audio: Path,
             eval_feats: dict[str, np.ndarray], scores_out: Path) -> dict:
    """Train on every `train` row of the corpus, score `protocol`: EER overall and per spoof system."""
    from voxwarden.detect.metrics import eer

    score = fit_logreg(*_xy([r for r in _rows(corpus / "protocol.tsv") if r.get("split") == "train"],
                            corpus / "audio", feats))
    rows = [r for r in _rows(protocol) if str(audio / r["file"]) in eval_feats]
    labels = {r["label"] for r in rows}
    if not {"bonafide", "spoof"} <= labels:  # checked before anything is written
        raise ValueError(f"{protocol}: needs scoreable bona fide and spoof clips ({len(rows)} scored)")
    s = {r["file"]: float(score(eval_feats[str(audio / r["file"])])[0]) for r in rows}
    with open(scores_out, "w") as f:
        f.write("file\tlabel\tsystem\tscore\n")
        for r in rows:
            f.write(f"{r['file']}\t{r['label']}\t{r['system']}\t{s[r['file']]:.6f}\n")
    bona = np.array([s[r["file"]] for r in rows if r["label"] == "bonafide"])
    res = {"overall": float(eer(bona, np.array([s[r["file"]] for r in rows if r["label"] == "spoof"]))[0])}
    for sys_ in sorted({r["system"] for r in rows if r["label"] == "spoof"}):
        res[sys_] = float(eer(bona, np.array([s[r["file"]] for r in rows if r["system"] == sys_]))[0])
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--encoder", required=True, choices=sorted(ENCODERS))
    ap.add_argument("--systems", default="", help="comma-separated folds (default: every spoof system)")
    ap.add_argument("--jobs", type=int, default=1, help="processes extracting features")
    ap.add_argument("--cache", type=Path, default=None, help="npz of pooled vectors, reused across runs")
    ap.add_argument("--eval", type=Path, default=None, metavar="PROTOCOL", help="score this protocol instead")
    ap.add_argument("--eval-audio", type=Path, default=None, metavar="DIR")
    a = ap.parse_args(argv)
    try:
        rows = _rows(a.corpus / "protocol.tsv")
        ENCODERS[a.encoder]()  # not installed: a clear error before any work
        eval_rows = _rows(a.eval) if a.eval is not None else None
    except (OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    known = sorted({r["system"] for r in rows if r["label"] == "spoof" and r.get("split") == "train"})
    systems = [s for s in a.systems.split(",") if s] or known
    unknown = sorted(set(systems) - set(known))
    if unknown:
        print(f"error: not spoof systems of the train split: {', '.join(unknown)}", file=sys.stderr)
        return 2
    audio = a.corpus / "audio"
    need = [r for r in rows if r.get("split") == "train" or r["system"] in systems
            or (r["label"] == "bonafide" and r.get("split") == "val")]
    t0 = time.perf_counter()
    feats = features([audio / r["file"] for r in need], a.encoder, a.jobs, a.cache)
    t_feat = time.perf_counter() - t0
    a.out.parent.mkdir(parents=True, exist_ok=True)
    if eval_rows is not None:
        eaudio = a.eval_audio or a.eval.parent / "audio"
        efeats = features([eaudio / r["file"] for r in eval_rows], a.encoder, a.jobs)
        try:
            res = run_eval(a.corpus, feats, a.eval, eaudio, efeats, a.out.with_suffix(".scores.tsv"))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print("  ".join(f"{k} {100 * v:.1f} %" for k, v in res.items()))
        a.out.write_text(json.dumps({"corpus": str(a.corpus), "encoder": a.encoder, "eval": str(a.eval),
                                     "eer": res, "n_scored": len(efeats), "n_rows": len(eval_rows)}, indent=1))
        return 0
    try:
        folds = run_folds(a.corpus, systems, feats)
    except ValueError as e:  # nothing to train on or to score: a clear error, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    for f in folds:
        print(f"{f['system']:18s} EER {100 * f['eer']:5.1f} %  ({f['n_spoof']} spoof / {f['n_bonafide']} bona fide)")
    mean = float(np.mean([f["eer"] for f in folds]))
    print(f"mean over {len(folds)} folds: {100 * mean:.1f} %  (features {t_feat:.0f} s for {len(feats)} clips)")
    a.out.write_text(json.dumps({"corpus": str(a.corpus), "encoder": a.encoder, "folds": folds, "mean_eer": mean,
                                 "feature_seconds": round(t_feat, 1), "n_clips": len(feats)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
