"""Re-assessment: runs against one store compare with the previous run, close the items whose control
is now met (audited, with the evidence), carry still-failing items, reopen regressions; direction-aware
figure verdicts. SQLite in tmp dirs; no detection/labelling/live steps (fast)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from voxwarden.assess import evaluate_all, load_controls, record_findings
from voxwarden.assess.compare import FigureSpec, compare_figure, compare_runs, plot_comparison
from voxwarden.assess.config import load_config
from voxwarden.assess.run import run_assessment

ALGO = "deep-synthesis-2023:DS23-ALGORITHM-FILING"
BIO = "deep-synthesis-2023:DS23-BIOMETRIC-MODEL-ASSESSMENT"


@pytest.fixture(autouse=True)
def _no_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    import voxwarden.assess.run as run_mod

    monkeypatch.setattr(run_mod, "CHROMIUM_NAMES", ("voxwarden-test-no-such-browser",))


def _config(tmp_path: Path, data: Path, *, algorithm_filed: bool, retention: int = 200) -> Path:
    doc: dict[str, Any] = {
        "version": 1,
        "platform": {"name": "Reassess test", "features": ["voice_social", "speech_synthesis"]},
        "store": {"data_dir": str(data), "tenant": "acme", "create_tenant": True},
        "logging": {"required_days": 184, "retention_days": retention},
        "governance": {"algorithm_filed": algorithm_filed, "biometric_model_assessment": False,
                       "public_opinion_attributes": True, "security_officer_named": True},
    }
    p = tmp_path / "assessment.yaml"
    p.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return p


def _items(data: Path) -> dict[str, Any]:
    from voxwarden.store import Store, assessments, keys

    st = Store(data_dir=data)
    try:
        with st.session() as s:
            tid = keys.tenant_by_name(s, "acme").id
            return {"tid": tid, "items": [(i.id, i.finding, i.status, i.run_id, i.notes)
                                          for i in assessments.list_items(s, tid)]}
    finally:
        st.dispose()


def test_reassessment_closes_carries_and_reopens(tmp_path: Path) -> None:
    from voxwarden.store import AuditContext, Store, assessments, audit

    data = tmp_path / "data"
    o1 = run_assessment(load_config(_config(tmp_path, data, algorithm_filed=False)), tmp_path / "r1")
    f1 = o1.figures
    assert f1["previous_run_id"] is None and f1["comparison"]["previous_run_id"] is None
    assert f1["controls"][ALGO] == "not_met" and f1["controls"][BIO] == "not_met"
    by_finding = {it["finding"]: it for it in f1["findings"]}
    algo_id, bio_id = by_finding[ALGO]["id"], by_finding[BIO]["id"]
    assert by_finding[ALGO]["tracking"] == "new"
    n_items_1 = len(_items(data)["items"])

    # run 2: the algorithm is filed now -> its item closes with this run's evidence; the rest is carried
    o2 = run_assessment(load_config(_config(tmp_path, data, algorithm_filed=True)), tmp_path / "r2")
    f2 = json.loads(o2.figures_json.read_text(encoding="utf-8"))
    assert f2["previous_run_id"] == o1.run_id == f2["comparison"]["previous_run_id"]
    closed = {c["id"]: c for c in f2["rectification"]["closed"]}
    assert algo_id in closed
    for c in closed.values():  # only items whose control this run measured as met (e.g. the audit log,
        assert f2["controls"][c["finding"]] == "met"  # which has entries now that run 1 wrote them)
        assert f1["controls"][c["finding"]] != "met"
    assert "governance.algorithm_filed=True" in closed[algo_id]["evidence"]
    assert o2.run_id in closed[algo_id]["evidence"]
    assert bio_id in f2["rectification"]["carried"] and f2["rectification"]["created"] == []
    assert {it["id"] for it in f2["findings"]} == set(f2["rectification"]["carried"])
    assert all(it["tracking"] == "carried" for it in f2["findings"])
    assert len(_items(data)["items"]) == n_items_1  # nothing filed twice
    ctl = {c["finding"]: c for c in f2["comparison"]["controls"]}
    assert ctl[ALGO] == {"finding": ALGO, "previous": "not_met", "now": "met", "verdict": "improved"}
    figs = {c["key"]: c for c in f2["comparison"]["figures"]}
    assert figs["counts.met"]["verdict"] == "improved" and figs["counts.met"]["delta"] >= 1
    assert figs["counts.not_met"]["verdict"] == "improved"
    assert figs["logging.retention_days"]["verdict"] == "unchanged"
    html = o2.report_html.read_text(encoding="utf-8")
    assert 'id="closed-items"' in html and algo_id in html and 'id="comparison"' in html
    assert f"{len(closed)} item(s) closed by this run" in html
    assert 'alt="Previous vs this run"' not in html  # no rates measured in this config: no chart

    st = Store(data_dir=data)
    with st.session() as s:
        tid = _items(data)["tid"]
        it = next(i for i in assessments.list_items(s, tid) if i.id == algo_id)
        assert it.status == "done" and it.closed_at is not None
        hist = assessments.item_history(s, tid, algo_id)
        assert [h.action for h in hist] == ["rectification.create", "rectification.close"]
        assert hist[1].actor == "cli:assess" and hist[1].details["run_id"] == o2.run_id
        assert hist[1].details["by"] == "re-assessment" and "algorithm_filed" in hist[1].details["evidence"]
        # someone accepts the biometric risk by hand before the next run
        assessments.update_item(s, tid, bio_id, status="accepted_risk")
    st.dispose()

    # run 3: the filing lapses again (regression) and retention drops -> reopened, regressed figures
    o3 = run_assessment(load_config(_config(tmp_path, data, algorithm_filed=False, retention=90)),
                        tmp_path / "r3")
    f3 = o3.figures
    assert f3["previous_run_id"] == o2.run_id
    assert algo_id in f3["rectification"]["reopened"]
    for rid in f3["rectification"]["reopened"]:  # each was closed by run 2 and fails again now
        assert rid in closed
        assert f3["controls"][closed[rid]["finding"]] in ("not_met", "partly", "not_assessed")
    assert [a["id"] for a in f3["rectification"]["accepted_risk"]] == [bio_id]
    ctl = {c["finding"]: c for c in f3["comparison"]["controls"]}
    assert ctl[ALGO]["verdict"] == "regressed"
    figs = {c["key"]: c for c in f3["comparison"]["figures"]}
    assert figs["logging.retention_days"]["verdict"] == "regressed"
    assert figs["logging.retention_days"]["delta"] == -110
    new_retention = [it for it in f3["findings"] if it["finding"].endswith("CAC18-LOG-RETENTION")]
    assert new_retention and new_retention[0]["tracking"] == "new" and new_retention[0]["run_id"] == o3.run_id

    st = Store(data_dir=data)
    with st.session() as s:
        tid = _items(data)["tid"]
        before = len(audit.entries(s, tid))
        assert [h.action for h in assessments.item_history(s, tid, algo_id)][-1] == "rectification.reopen"
        assert next(i for i in assessments.list_items(s, tid) if i.id == algo_id).status == "open"
    # replaying run 3's findings step changes nothing (idempotent)
    cfg = load_config(_config(tmp_path, data, algorithm_filed=False, retention=90))
    ev = {k: v["value"] for k, v in f3["evidence"].items()}  # the very evidence run 3 judged
    cls = evaluate_all(load_controls(), ev, features=cfg.features)
    with st.session() as s:
        rep = record_findings(s, tid, o3.run_id, cls, today=date.today(), carry_over=True,
                              ctx=AuditContext(actor="test", tenant_id=tid))
    assert rep.created == [] and rep.closed == [] and rep.reopened == []
    with st.session() as s:
        assert len(audit.entries(s, tid)) == before
    st.dispose()

    # the CLI shows the status history
    from voxwarden.commands.rectify import rectify_app

    r = CliRunner().invoke(rectify_app, ["show", algo_id, "--tenant", "acme", "--data-dir", str(data), "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.output.strip().splitlines()[-1])
    assert [h["action"] for h in row["history"]] == ["rectification.create", "rectification.close",
                                                      "rectification.reopen"]
    assert [h["status"] for h in row["history"][1:]] == ["done", "open"]
    assert row["status"] == "open" and "reopened by re-assessment" in row["notes"]
    r = CliRunner().invoke(rectify_app, ["show", algo_id, "--tenant", "acme", "--data-dir", str(data)])
    assert r.exit_code == 0 and "rectification.reopen -> open" in r.output
    r = CliRunner().invoke(rectify_app, ["show", "nope", "--tenant", "acme", "--data-dir", str(data)])
    assert r.exit_code == 3 and "not found" in r.output


@pytest.mark.parametrize(
    ("spec", "prev", "now", "verdict"),
    [
        (FigureSpec("detection.eer", "EER", "lower", "rate"), 0.10, 0.05, "improved"),
        (FigureSpec("detection.eer", "EER", "lower", "rate"), 0.05, 0.10, "regressed"),
        (FigureSpec("detection.eer", "EER", "lower", "rate"), 0.050, 0.052, "unchanged"),  # within 0.5 pts
        (FigureSpec("w", "wm", "higher", "rate"), 0.80, 0.95, "improved"),
        (FigureSpec("w", "wm", "higher", "rate"), 0.95, 0.80, "regressed"),
        (FigureSpec("l", "lat", "lower", "seconds"), 1.00, 1.05, "unchanged"),  # noise: 10 %
        (FigureSpec("l", "lat", "lower", "seconds"), 1.00, 2.00, "regressed"),
        (FigureSpec("risk", "risk", "lower", "risk"), "high", "medium", "improved"),
        (FigureSpec("risk", "risk", "lower", "risk"), "low", "critical", "regressed"),
        (FigureSpec("a", "chain", "higher", "bool"), True, False, "regressed"),
        (FigureSpec("d", "days", "higher", "days"), 184, 184, "unchanged"),
        (FigureSpec("d", "days", "higher", "days"), None, 184, "new"),
        (FigureSpec("d", "days", "higher", "days"), 184, None, "gone"),
    ],
)
def test_direction_aware_verdicts(spec: FigureSpec, prev: Any, now: Any, verdict: str) -> None:
    assert compare_figure(spec, prev, now).verdict == verdict


def test_compare_runs_dynamic_rows_and_old_runs(tmp_path: Path) -> None:
    prev = {"run_id": "r1", "risk": "high", "detection": {"eer": 0.2, "per_condition": {"mp3:64k": {"eer": 0.3}}}}
    now = {"risk": "high", "controls": {"x:A": "met"},
           "detection": {"eer": 0.1, "per_condition": {"mp3:64k": {"eer": 0.1}, "opus:16k": {"eer": 0.2}}}}
    c = compare_runs(prev, now)
    rows = {f.key: f for f in c.figures}
    assert c.previous_run_id == "r1"
    assert rows["detection.eer"].verdict == "improved" and rows["detection.eer"].delta == pytest.approx(-0.1)
    assert rows["detection.per_condition.mp3:64k.eer"].verdict == "improved"
    assert rows["detection.per_condition.opus:16k.eer"].verdict == "new"
    assert rows["risk"].verdict == "unchanged"
    assert not c.controls_compared and "per-control" in c.notes[0]  # an old run without statuses
    assert c.counts() == {"improved": 2, "regressed": 0, "unchanged": 1}
    assert compare_runs(None, now).previous_run_id is None
    assert plot_comparison(c, tmp_path / "c.png") and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert not plot_comparison(compare_runs(None, now), tmp_path / "none.png")
