"""Re-assessment: compare this run's figures and control statuses with the previous run's.

    diff = compare_runs(previous_figures, figures)
    diff.figures   -> [FigureChange(key, label, previous, now, delta, better, verdict)]
    diff.controls  -> [ControlChange(finding, previous, now, verdict)]

Each figure has a direction (lower EER is better, higher watermark detection is better, ...) and a
tolerance below which a change counts as *unchanged* (measurement noise: live latency moves by tens of
milliseconds between identical runs). Control statuses are ranked met > partly > not assessed > not met.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RISK_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
STATUS_RANK = {"not_met": 0, "not_assessed": 1, "partly": 2, "met": 3}


@dataclass(frozen=True)
class FigureSpec:
    """A compared figure: dotted path in figures.json, label, which way is better, display kind."""

    key: str
    label: str
    better: str  # "lower" | "higher"
    kind: str  # "rate" (0-1) | "seconds" | "count" | "days" | "bool" | "risk" | "number"
    rel_tolerance: float | None = None  # relative change below which it is unchanged (default by kind)


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("risk", "Overall risk", "lower", "risk"),
    FigureSpec("counts.met", "Controls met", "higher", "count"),
    FigureSpec("counts.not_met", "Controls not met", "lower", "count"),
    FigureSpec("counts.partly", "Controls partly met", "lower", "count"),
    FigureSpec("counts.not_assessed", "Controls not assessed", "lower", "count"),
    FigureSpec("detection.eer", "Detection EER", "lower", "rate"),
    FigureSpec("detection.miss_rate", "Miss at deployed threshold", "lower", "rate"),
    FigureSpec("detection.fa_rate", "False alarm at deployed threshold", "lower", "rate"),
    FigureSpec("detection.min_dcf", "minDCF", "lower", "number"),
    FigureSpec("detection.worst_degraded_eer", "Worst EER under a codec", "lower", "rate"),
    FigureSpec("labelling.watermark.detect_rate", "Watermark detect rate", "higher", "rate"),
    FigureSpec("labelling.metadata.format_coverage", "Metadata label format coverage", "higher", "rate"),
    FigureSpec("live.alert_latency_s_p95", "Live alert latency p95", "lower", "seconds"),
    FigureSpec("live.first_alert_s_max", "Live time to first alert (max)", "lower", "seconds"),
    # an estimate from a few seconds of busy time on a possibly shared machine: only big moves count
    FigureSpec("live.rooms_held_realtime", "Real-time rooms per worker (estimate)", "higher", "number", 0.3),
    FigureSpec("live.dropped_frames", "Live frames dropped", "lower", "count"),
    FigureSpec("logging.retention_days", "Log retention (days)", "higher", "days"),
    FigureSpec("logging.audit_chain_ok", "Audit chain intact", "higher", "bool"),
)


@dataclass
class FigureChange:
    """One figure then and now; `verdict` is improved | regressed | unchanged | new | gone."""

    key: str
    label: str
    previous: Any
    now: Any
    delta: float | None
    better: str
    kind: str
    verdict: str


@dataclass
class ControlChange:
    """A control whose status differs between the runs (or that appeared / disappeared)."""

    finding: str
    previous: str | None
    now: str | None
    verdict: str  # improved | regressed | changed | new | gone


@dataclass
class RunComparison:
    """The diff of two runs; `to_dict` goes into figures.json as ``comparison``."""

    previous_run_id: str | None
    figures: list[FigureChange] = field(default_factory=list)
    controls: list[ControlChange] = field(default_factory=list)
    controls_compared: bool = False
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"improved": 0, "regressed": 0, "unchanged": 0}
        for f in self.figures:
            if f.verdict in out:
                out[f.verdict] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"previous_run_id": self.previous_run_id, "figures": [asdict(f) for f in self.figures],
                "controls": [asdict(c) for c in self.controls], "controls_compared": self.controls_compared,
                "counts": self.counts(), "notes": self.notes}


def get_path(d: Any, key: str) -> Any:
    """``get_path({"a": {"b": 1}}, "a.b") == 1``; None when any part is missing."""
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _tolerance(kind: str, previous: float) -> float:
    return {"rate": 0.005, "seconds": max(0.05, 0.1 * abs(previous)), "number": max(1e-9, 0.05 * abs(previous)),
            }.get(kind, 0.0)


def _numeric(kind: str, v: Any) -> float | None:
    if kind == "risk":
        return float(RISK_RANK[v]) if v in RISK_RANK else None
    if kind == "bool":
        return float(v) if isinstance(v, bool) else None
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def compare_figure(spec: FigureSpec, previous: Any, now: Any) -> FigureChange:
    """Judge one figure by its direction and tolerance."""
    p, n = _numeric(spec.kind, previous), _numeric(spec.kind, now)
    if p is None and n is None:
        verdict, delta = "not measured", None
    elif p is None:
        verdict, delta = "new", None
    elif n is None:
        verdict, delta = "gone", None
    else:
        delta = n - p
        tol = _tolerance(spec.kind, p) if spec.rel_tolerance is None else spec.rel_tolerance * abs(p)
        if abs(delta) <= tol + 1e-12:
            verdict = "unchanged"
        else:
            verdict = "improved" if (delta < 0) == (spec.better == "lower") else "regressed"
    if spec.kind in ("risk", "bool"):
        delta = None
    return FigureChange(spec.key, spec.label, previous, now, delta, spec.better, spec.kind, verdict)


def _dynamic_specs(prev: dict[str, Any], now: dict[str, Any]) -> list[FigureSpec]:
    """EER per spoof system, per codec degradation and per clip length where both runs measured it."""
    out = []
    for table, what in (("per_system", "system"), ("per_condition", "codec"), ("per_length", "length")):
        a = get_path(prev, f"detection.{table}") or {}
        b = get_path(now, f"detection.{table}") or {}
        for name in sorted(set(a) | set(b)):
            out.append(FigureSpec(f"detection.{table}.{name}.eer", f"EER, {what} {name}", "lower", "rate"))
    return out


def compare_runs(previous: dict[str, Any] | None, now: dict[str, Any], previous_run_id: str | None = None
                 ) -> RunComparison:
    """Compare two runs' figures (figures.json dicts). With no previous run, an empty comparison."""
    if previous is None:
        return RunComparison(previous_run_id=None, notes=["first assessment of this tenant and framework"])
    cmp = RunComparison(previous_run_id=previous_run_id or previous.get("run_id"))
    for spec in (*FIGURES, *_dynamic_specs(previous, now)):
        ch = compare_figure(spec, get_path(previous, spec.key), get_path(now, spec.key))
        if ch.verdict != "not measured":
            cmp.figures.append(ch)
    a, b = previous.get("controls"), now.get("controls")
    if isinstance(a, dict) and isinstance(b, dict):
        cmp.controls_compared = True
        for k in sorted(set(a) | set(b)):
            pa, pb = a.get(k), b.get(k)
            if pa == pb:
                continue
            if pa is None or pb is None:
                verdict = "new" if pa is None else "gone"
            elif pa in STATUS_RANK and pb in STATUS_RANK:
                verdict = "improved" if STATUS_RANK[pb] > STATUS_RANK[pa] else "regressed"
            else:
                verdict = "changed"  # to or from not applicable
            cmp.controls.append(ControlChange(k, pa, pb, verdict))
    else:
        cmp.notes.append("the previous run did not record per-control statuses; only figures are compared")
    return cmp


def plot_comparison(cmp: RunComparison, path: Any) -> bool:
    """Grouped bars, previous vs now, of the rate figures (EER, miss, false alarm, detection and coverage
    rates) both runs measured; False (no file) when there are none."""
    rows = [f for f in cmp.figures if f.kind == "rate" and f.previous is not None and f.now is not None]
    if not rows:
        return False
    import numpy as np

    from voxwarden.detect.evaluate import _figure

    rows = rows[:12]
    fig = _figure(7.0, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [100 * f.previous for f in rows], 0.4, label="previous run", color="#9e9e9e")
    colors = {"improved": "#2e7d32", "regressed": "#b71c1c"}
    ax.bar(x + 0.2, [100 * f.now for f in rows], 0.4, label="this run",
           color=[colors.get(f.verdict, "#3a6ea5") for f in rows])
    ax.set_xticks(x)
    ax.set_xticklabels([f.label.replace("Detection ", "").replace(" at deployed threshold", "") for f in rows],
                       rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.set_title("Rates, previous run vs this run (green: improved, red: regressed)", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True
