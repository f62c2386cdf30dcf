"""Evaluation of scored trials: overall and per-system EER, minDCF, errors at a threshold, plots.

Input is one ``EvalRecord`` per trial (a clip with its protocol label, generating system and the score
the detector gave it, or the error it raised). Spoof systems are scored one at a time against *all*
bona fide trials, as in ASVspoof's per-attack EERs. Failed trials are counted and listed, never dropped
silently. Metric conventions (higher score = synthetic) are in ``voxwarden.detect.metrics``.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxwarden.detect.metrics import det_curve, eer, min_dcf, rates_at

DCF_PARAMS = {"p_spoof": 0.05, "c_miss": 1.0, "c_fa": 10.0}


@dataclass
class EvalRecord:
    """One scored trial. ``score`` is None (or NaN) and ``error`` set when scoring failed."""

    file: str
    label: str  # "bonafide" | "spoof"
    system: str
    score: float | None
    error: str | None = None


@dataclass
class EvalSummary:
    """What ``evaluate`` measured; ``to_dict`` is the ``summary.json`` content.

    ``per_system`` maps each spoof system to ``{"n", "eer", "eer_threshold", "miss_rate"}`` (that
    system's spoofs against all bona fide trials; ``miss_rate`` at ``threshold`` when one was given).
    """

    n_total: int
    n_bonafide: int
    n_spoof: int
    n_failed: int
    eer: float | None
    eer_threshold: float | None
    min_dcf: float | None
    min_dcf_threshold: float | None
    dcf_params: dict[str, float]
    per_system: dict[str, dict[str, Any]]  # system -> {n, eer, eer_threshold, miss_rate}
    threshold: float | None = None
    miss_rate: float | None = None  # spoof not flagged at ``threshold``
    fa_rate: float | None = None  # bona fide flagged at ``threshold``
    failed: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ok(r: EvalRecord) -> bool:
    return r.error is None and r.score is not None and math.isfinite(float(r.score))


def evaluate(
    records: list[EvalRecord],
    out_dir: Path | None = None,
    *,
    threshold: float | None = None,
    title: str | None = None,
) -> EvalSummary:
    """Compute the summary; with ``out_dir`` also write ``summary.json``, ``scores.tsv``, ``det.png``
    and ``hist.png`` (``title`` heads the plots, e.g. the model id and condition).

    ``threshold`` is a decision threshold on the same scale as the scores (flag if ``score >= t``); when
    given, miss and false-alarm rates at it are reported overall and per system.
    """
    for r in records:
        if r.label not in ("bonafide", "spoof"):
            raise ValueError(f"{r.file}: label must be 'bonafide' or 'spoof', got {r.label!r}")
    good = [r for r in records if _ok(r)]
    failed = [
        {"file": r.file, "error": r.error or "no score"} for r in records if not _ok(r)
    ]
    bona = np.array([float(r.score) for r in good if r.label == "bonafide"], dtype=np.float64)
    spoof_by_sys: dict[str, list[float]] = {}
    for r in good:
        if r.label == "spoof":
            spoof_by_sys.setdefault(r.system, []).append(float(r.score))
    spoof = np.array([s for v in spoof_by_sys.values() for s in v], dtype=np.float64)
    notes: list[str] = []
    e = e_t = d = d_t = p_miss = p_fa = None
    if bona.size and spoof.size:
        e, e_t = eer(bona, spoof)
        d, d_t = min_dcf(bona, spoof, **DCF_PARAMS)
        if threshold is not None:
            p_miss, p_fa = rates_at(bona, spoof, threshold)
    else:
        notes.append("EER/minDCF need scored trials of both labels")
        if threshold is not None and bona.size:
            p_fa = float(np.mean(bona >= threshold))
        if threshold is not None and spoof.size:
            p_miss = float(np.mean(spoof < threshold))
    per_system: dict[str, dict[str, Any]] = {}
    for name in sorted(spoof_by_sys):
        s = np.array(spoof_by_sys[name])
        se, st = eer(bona, s) if bona.size else (None, None)
        pm = float(np.mean(s < threshold)) if threshold is not None else None
        per_system[name] = {"n": int(s.size), "eer": se, "eer_threshold": st, "miss_rate": pm}
    summary = EvalSummary(
        n_total=len(records),
        n_bonafide=int(bona.size),
        n_spoof=int(spoof.size),
        n_failed=len(failed),
        eer=e,
        eer_threshold=e_t,
        min_dcf=d,
        min_dcf_threshold=d_t,
        dcf_params=dict(DCF_PARAMS),
        per_system=per_system,
        threshold=threshold,
        miss_rate=p_miss,
        fa_rate=p_fa,
        failed=failed,
        notes=notes,
    )
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(summary.to_dict(), indent=2) + "\n"
        (out_dir / "summary.json").write_text(text, encoding="utf-8")
        write_scores(records, out_dir / "scores.tsv")
        if bona.size and spoof.size:
            plot_det(bona, spoof_by_sys, out_dir / "det.png", title=title)
        plot_hist(bona, spoof, out_dir / "hist.png", threshold=threshold, title=title)
    return summary


def _tsv_field(v: object) -> str:
    return "" if v is None else str(v).replace("\t", " ").replace("\n", " ").replace("\r", " ")


def write_scores(records: list[EvalRecord], path: Path) -> None:
    """One line per trial: ``file label system score error`` (tab-separated, header first)."""
    lines = ["file\tlabel\tsystem\tscore\terror"]
    for r in records:
        score = "" if r.score is None else repr(float(r.score))
        lines.append("\t".join(_tsv_field(v) for v in (r.file, r.label, r.system, score, r.error)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _figure(w: float = 6.0, h: float = 5.0):  # noqa: ANN202 - matplotlib types stay lazy
    """A pyplot-free Agg figure: no global backend change, safe in servers and threads."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


def plot_det(
    bona: np.ndarray, spoof_by_sys: dict[str, list[float]], path: Path, *, title: str | None = None
) -> None:
    """DET curve (miss vs false alarm on normal-deviate axes): pooled plus one curve per spoof system."""
    from scipy.stats import norm

    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    lo, hi = 0.001, 0.999  # full range: a system worse than chance must still show
    curves = [("pooled", np.concatenate([np.asarray(v) for v in spoof_by_sys.values()]))]
    if len(spoof_by_sys) > 1:
        curves += [(k, np.asarray(v)) for k, v in sorted(spoof_by_sys.items())]
    for name, s in curves:
        c = det_curve(bona, s)
        pm = np.clip(c.p_miss, lo, 1 - lo)
        pf = np.clip(c.p_fa, lo, 1 - lo)
        e, _ = eer(bona, s)
        lw = 2 if name == "pooled" else 1
        ax.plot(norm.ppf(pf), norm.ppf(pm), lw=lw, label=f"{name} (EER {100 * e:.1f}%)")
    ticks = [0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99, 0.999]
    for setter in (ax.set_xticks, ax.set_yticks):
        setter(norm.ppf(ticks))
    ax.set_xticklabels([f"{100 * t:g}" for t in ticks])
    ax.set_yticklabels([f"{100 * t:g}" for t in ticks])
    ax.set_xlim(norm.ppf(lo), norm.ppf(hi))
    ax.set_ylim(norm.ppf(lo), norm.ppf(hi))
    ax.plot([norm.ppf(lo), norm.ppf(hi)], [norm.ppf(lo), norm.ppf(hi)], "k:", lw=0.8)
    ax.set_xlabel("False alarm: bona fide flagged (%)")
    ax.set_ylabel("Miss: spoof not flagged (%)")
    ax.set_title(textwrap.fill(f"DET curve — {title}" if title else "DET curve", 60), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_hist(
    bona: np.ndarray,
    spoof: np.ndarray,
    path: Path,
    *,
    threshold: float | None = None,
    title: str | None = None,
) -> None:
    """Score histograms by label, with the decision threshold when given."""
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    both = np.concatenate([bona, spoof])
    if both.size:
        lo, hi = float(both.min()), float(both.max())
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 40)
        if bona.size:
            ax.hist(bona, bins=bins, alpha=0.6, label=f"bona fide (n={bona.size})", color="tab:green")
        if spoof.size:
            ax.hist(spoof, bins=bins, alpha=0.6, label=f"spoof (n={spoof.size})", color="tab:red")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("score (higher = more likely synthetic)")
    ax.set_ylabel("trials")
    if title:
        ax.set_title(textwrap.fill(title, 60), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
