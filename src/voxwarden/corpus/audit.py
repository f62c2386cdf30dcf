"""Shortcut audit: can trivial clip properties tell bona fide from spoof in a corpus?

Why: if duration, level, bandwidth, silence or codec traces separate the classes, a detector learns those
instead of generation artefacts, and fails on real deepfakes. We fit simple classifiers (logistic
regression and a depth-3 tree, in numpy) on such features alone with stratified k-fold cross-validation;
a good corpus keeps their balanced accuracy near chance (the project's bar: <= 60 %).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voxwarden.corpus.build import CorpusError, read_protocol

FEATURES = [
    "duration", "sample_rate", "rms_db", "peak_db", "rolloff95_hz", "rolloff99_hz", "ratio_above_4k_db",
    "ratio_above_7k_db", "lead_silence", "trail_silence", "noise_floor_db", "hf_flatness", "zero_frac",
    "clip_frac",
]

__all__ = [
    "AuditResult", "BalanceResult", "FEATURES", "balance_corpus", "clip_features", "corpus_features",
    "separability", "shortcut_audit",
]


@dataclass
class AuditResult:
    """Cross-validated balanced accuracies of shortcut-only classifiers on one corpus."""

    n: int
    accuracy: float
    by_model: dict[str, float]
    by_feature: dict[str, float]
    threshold: float
    passed: bool
    features: list[str] = field(default_factory=lambda: list(FEATURES))

    def worst_features(self, k: int = 3) -> list[tuple[str, float]]:
        """The `k` single features that separate the classes best (stump accuracy)."""
        return sorted(self.by_feature.items(), key=lambda kv: -kv[1])[:k]


def clip_features(x: np.ndarray, sr: int) -> np.ndarray:
    """The shortcut features of one clip, in `FEATURES` order."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(len(FEATURES))
    hop = max(1, sr // 50)
    nf = max(1, n // hop)
    fr = x[: nf * hop].reshape(nf, -1) if n >= hop else x.reshape(1, -1)
    e = 10 * np.log10(np.mean(fr**2, axis=1) + 1e-12)
    active = np.flatnonzero(e > max(e.max() - 40.0, -65.0))
    lead = (active[0] * hop / sr) if len(active) else n / sr
    trail = ((nf - 1 - active[-1]) * hop / sr) if len(active) else n / sr
    spec = np.abs(np.fft.rfft(x * np.hanning(n))) ** 2 if n > 1 else np.zeros(1)
    freqs = np.fft.rfftfreq(n, 1 / sr) if n > 1 else np.zeros(1)
    tot = spec.sum() + 1e-20
    cum = np.cumsum(spec) / tot
    r95 = float(freqs[min(np.searchsorted(cum, 0.95), len(freqs) - 1)])
    r99 = float(freqs[min(np.searchsorted(cum, 0.99), len(freqs) - 1)])
    a4 = 10 * np.log10(spec[freqs > 4000].sum() / tot + 1e-12)
    a7 = 10 * np.log10(spec[freqs > 7000].sum() / tot + 1e-12)
    hf = spec[(freqs > 5000) & (freqs < 7800)] + 1e-20
    flat = float(np.exp(np.mean(np.log(hf))) / np.mean(hf)) if len(hf) else 0.0
    peak = float(np.max(np.abs(x)))
    return np.array([
        n / sr, float(sr), 10 * np.log10(np.mean(x**2) + 1e-12), 20 * np.log10(peak + 1e-12),
        r95, r99, a4, a7,
        lead, trail, float(np.percentile(e, 5)), flat, float(np.mean(np.abs(x) < 1e-5)),
        float(np.mean(np.abs(x) > 0.98 * peak)) if peak > 0 else 0.0,
    ])


def _balanced_acc(y: np.ndarray, p: np.ndarray) -> float:
    accs = [float(np.mean(p[y == c] == c)) for c in (0, 1) if np.any(y == c)]
    return float(np.mean(accs)) if accs else 0.5


def _logreg(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, l2: float = 1e-2) -> np.ndarray:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-9
    a, b = (xtr - mu) / sd, (xte - mu) / sd
    a = np.c_[a, np.ones(len(a))]
    b = np.c_[b, np.ones(len(b))]
    w = np.zeros(a.shape[1])
    cw = np.where(ytr == 1, 0.5 / max(ytr.mean(), 1e-9), 0.5 / max(1 - ytr.mean(), 1e-9))
    for _ in range(25):  # Newton iterations (IRLS), class-weighted
        p = 1 / (1 + np.exp(-np.clip(a @ w, -30, 30)))
        g = a.T @ (cw * (p - ytr)) + l2 * w
        h = (a * (cw * p * (1 - p))[:, None]).T @ a + l2 * np.eye(a.shape[1])
        w -= np.linalg.solve(h, g)
    return (b @ w > 0).astype(int)


def _tree(
    xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, depth: int = 3, min_leaf: int = 10
) -> np.ndarray:
    """Class-weighted CART (Gini) on quantile thresholds; returns predictions for `xte`."""
    wpos = 0.5 / max(ytr.mean(), 1e-9)
    wneg = 0.5 / max(1 - ytr.mean(), 1e-9)

    def leaf(idx: np.ndarray) -> int:
        return int(wpos * ytr[idx].sum() > wneg * (len(idx) - ytr[idx].sum()))

    def gini(idx: np.ndarray) -> float:
        pos = wpos * ytr[idx].sum()
        neg = wneg * (len(idx) - ytr[idx].sum())
        t = pos + neg
        return 0.0 if t == 0 else t * (1 - (pos / t) ** 2 - (neg / t) ** 2)

    def grow(idx: np.ndarray, d: int) -> tuple:
        if d == 0 or len(idx) < 2 * min_leaf or ytr[idx].min() == ytr[idx].max():
            return ("leaf", leaf(idx))
        best = (gini(idx), -1, 0.0)
        for f in range(xtr.shape[1]):
            col = xtr[idx, f]
            for t in np.unique(np.quantile(col, np.linspace(0.05, 0.95, 19))):
                left = idx[col <= t]
                right = idx[col > t]
                if len(left) < min_leaf or len(right) < min_leaf:
                    continue
                g = gini(left) + gini(right)
                if g < best[0] - 1e-9:
                    best = (g, f, float(t))
        if best[1] < 0:
            return ("leaf", leaf(idx))
        f, t = best[1], best[2]
        return ("split", f, t, grow(idx[xtr[idx, f] <= t], d - 1), grow(idx[xtr[idx, f] > t], d - 1))

    root = grow(np.arange(len(ytr)), depth)

    def predict(v: np.ndarray) -> int:
        node = root
        while node[0] == "split":
            node = node[3] if v[node[1]] <= node[2] else node[4]
        return int(node[1])

    return np.array([predict(v) for v in xte], dtype=int)


def separability(
    x: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0
) -> tuple[dict[str, float], dict[str, float]]:
    """Stratified k-fold balanced accuracy of logreg and tree on `x`, and of a stump per feature."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64))
    y = np.asarray(y, dtype=int)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=int)
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        fold_of[idx] = np.arange(len(idx)) % folds
    preds = {"logreg": np.zeros(len(y), int), "tree": np.zeros(len(y), int)}
    stumps = np.zeros((x.shape[1], len(y)), int)
    for k in range(folds):
        tr, te = fold_of != k, fold_of == k
        if not te.any() or len(np.unique(y[tr])) < 2:
            continue
        preds["logreg"][te] = _logreg(x[tr], y[tr], x[te])
        preds["tree"][te] = _tree(x[tr], y[tr], x[te])
        for f in range(x.shape[1]):
            stumps[f, te] = _tree(x[tr][:, [f]], y[tr], x[te][:, [f]], depth=1)
    by_model = {k: _balanced_acc(y, p) for k, p in preds.items()}
    by_feature = {FEATURES[f] if x.shape[1] == len(FEATURES) else str(f): _balanced_acc(y, stumps[f])
                  for f in range(x.shape[1])}
    return by_model, by_feature


def corpus_features(
    corpus_dir: Path, rows: Sequence[dict[str, str]]
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Shortcut features of each readable clip: (features, labels 1=spoof, indices into `rows`)."""
    import soundfile as sf

    feats, labels, kept = [], [], []
    for i, r in enumerate(rows):
        p = Path(corpus_dir) / "audio" / r["file"]
        try:
            x, sr = sf.read(str(p), dtype="float64", always_2d=True)
        except (RuntimeError, sf.LibsndfileError, OSError):
            continue
        feats.append(clip_features(x.mean(axis=1), int(sr)))
        labels.append(1 if r["label"] == "spoof" else 0)
        kept.append(i)
    return np.array(feats).reshape(len(feats), len(FEATURES)), np.array(labels, dtype=int), kept


def shortcut_audit(
    corpus_dir: Path, *, threshold: float = 0.60, max_clips: int = 3000, seed: int = 0,
    rows: Sequence[dict[str, str]] | None = None,
) -> AuditResult:
    """Audit `corpus_dir` (protocol.tsv + audio/): pass when the best shortcut model is <= `threshold`."""
    corpus_dir = Path(corpus_dir)
    rows = list(rows) if rows is not None else read_protocol(corpus_dir / "protocol.tsv")
    if len(rows) > max_clips:
        pick = np.random.default_rng(seed).choice(len(rows), max_clips, replace=False)
        rows = [rows[i] for i in sorted(pick)]
    x, y, _ = corpus_features(corpus_dir, rows)
    if len(y) < 10 or y.min() == y.max():
        raise CorpusError(f"{corpus_dir}: need at least 10 readable clips of both labels for an audit")
    by_model, by_feature = separability(x, y, folds=5 if len(y) >= 50 else 3, seed=seed)
    acc = max(by_model.values())
    return AuditResult(n=len(y), accuracy=acc, by_model=by_model, by_feature=by_feature,
                       threshold=threshold, passed=acc <= threshold)


@dataclass
class BalanceResult:
    """What `balance_corpus` kept and dropped, and the audit after balancing."""

    kept: int
    dropped: int
    rounds: int
    audit_before: float
    audit_after: float


def _propensity(x: np.ndarray, y: np.ndarray, seed: int, folds: int = 5) -> np.ndarray:
    """Out-of-fold P(spoof | shortcut features) from a class-weighted logistic regression on x and x**2."""
    z = np.nan_to_num(x)
    z = np.c_[z, (z - z.mean(0)) ** 2 / (z.std(0) + 1e-9)]
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(y)) % folds
    p = np.zeros(len(y))
    for k in range(folds):
        tr, te = fold_of != k, fold_of == k
        mu, sd = z[tr].mean(0), z[tr].std(0) + 1e-9
        a = np.c_[(z[tr] - mu) / sd, np.ones(tr.sum())]
        b = np.c_[(z[te] - mu) / sd, np.ones(te.sum())]
        w = np.zeros(a.shape[1])
        yt = y[tr]
        cw = np.where(yt == 1, 0.5 / max(yt.mean(), 1e-9), 0.5 / max(1 - yt.mean(), 1e-9))
        for _ in range(25):
            q = 1 / (1 + np.exp(-np.clip(a @ w, -30, 30)))
            g = a.T @ (cw * (q - yt)) + 1e-2 * w
            h = (a * (cw * q * (1 - q))[:, None]).T @ a + 1e-2 * np.eye(a.shape[1])
            w -= np.linalg.solve(h, g)
        p[te] = 1 / (1 + np.exp(-np.clip(b @ w, -30, 30)))
    return p


def balance_corpus(
    corpus_dir: Path, *, seed: int = 0, bins: int = 10, threshold: float = 0.58, max_rounds: int = 4,
    progress: Callable[[str, int, int], None] | None = None,
) -> BalanceResult:
    """Drop clips so that shortcut features no longer predict the label (propensity-score balancing).

    Why: some generators leave global traces (e.g. a less noisy 5-8 kHz band) that a trivial model can
    use. Within each bin of the out-of-fold propensity P(spoof | shortcut features), we keep equally many
    clips of both labels (random, seeded), repeating until the audit is below `threshold`. The kept rows
    go to ``protocol.tsv``; dropped rows to ``protocol-dropped.tsv`` (audio files stay, nothing is lost).
    """
    corpus_dir = Path(corpus_dir)
    rows = read_protocol(corpus_dir / "protocol.tsv")
    prev = corpus_dir / "protocol-dropped.tsv"
    dropped_rows = read_protocol(prev) if prev.is_file() else []
    if progress:
        progress("features", 0, len(rows))
    x, y, kept_idx = corpus_features(corpus_dir, rows)
    if len(y) < 20 or y.min() == y.max():
        raise CorpusError(f"{corpus_dir}: too few clips of both labels to balance")
    before = max(separability(x, y, seed=seed)[0].values())
    rng = np.random.default_rng(seed)
    keep = np.ones(len(y), dtype=bool)
    after, rounds = before, 0
    while after > threshold and rounds < max_rounds:
        rounds += 1
        if progress:
            progress("balance", rounds, max_rounds)
        idx = np.flatnonzero(keep)
        p = _propensity(x[idx], y[idx], seed + rounds)
        edges = np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1])
        b = np.searchsorted(edges, p)
        for k in range(bins):
            inb = idx[b == k]
            pos, neg = inb[y[inb] == 1], inb[y[inb] == 0]
            n = min(len(pos), len(neg))
            for grp in (pos, neg):
                if len(grp) > n:
                    keep[rng.choice(grp, len(grp) - n, replace=False)] = False
        after = max(separability(x[keep], y[keep], seed=seed)[0].values())
    from voxwarden.corpus.build import write_protocol

    kept_rows = {kept_idx[i] for i in np.flatnonzero(keep)}
    unreadable = set(range(len(rows))) - set(kept_idx)
    new_rows = [r for i, r in enumerate(rows) if i in kept_rows]
    drop = dropped_rows + [r for i, r in enumerate(rows) if i not in kept_rows or i in unreadable]
    write_protocol(corpus_dir / "protocol.tsv", new_rows)
    write_protocol(prev, drop)
    return BalanceResult(kept=len(new_rows), dropped=len(rows) - len(new_rows), rounds=rounds,
                         audit_before=before, audit_after=after)
