"""`voxwarden assess` end to end: the shipped example, a self-made config with generated clips, a tampered
evidence store, config errors, re-assessment hook and CLI exit codes. SQLite in tmp dirs, no shared data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from voxwarden.assess.config import AssessConfigError, load_config, parse_config
from voxwarden.assess.run import risk_rating, run_assessment

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "assessment.yaml"


@pytest.fixture(autouse=True)
def _no_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not depend on a browser being installed: hide it so the skip path is exercised."""
    import voxwarden.assess.run as run_mod

    monkeypatch.setattr(run_mod, "CHROMIUM_NAMES", ("voxwarden-test-no-such-browser",))


def _check_outputs(out: Path) -> dict[str, Any]:
    html = (out / "report.html").read_text(encoding="utf-8")
    figs = json.loads((out / "figures.json").read_text(encoding="utf-8"))
    assert figs["run_id"] in html
    assert figs["risk"] in {"low", "medium", "high", "critical"}
    assert f'risk-{figs["risk"]}' in html
    assert not (out / "report.pdf").exists()
    assert figs["pdf"] == {"written": False, "note": "PDF skipped: no chromium on PATH"}
    assert "PDF skipped" in html
    return figs


def test_example_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    o = run_assessment(load_config(EXAMPLE), out)
    figs = _check_outputs(out)
    html = (out / "report.html").read_text(encoding="utf-8")
    d = figs["detection"]
    assert d["n_bonafide"] == 3 and d["n_spoof"] == 2 and d["n_failed"] == 0
    assert 0.0 <= d["eer"] <= 1.0 and d["miss_rate"] is not None and d["fa_rate"] is not None
    assert set(d["per_system"]) == {"espeak-ng", "espeak-ng-opus"}
    assert list(d["per_condition"]) == ["none", "mp3:64k", "opus:16k"]
    assert all(c["n_bonafide"] == 3 and c["n_spoof"] == 2 for c in d["per_condition"].values())
    assert sum(b["n_bonafide"] + b["n_spoof"] for b in d["per_length"].values()) == 5
    assert 'id="per-condition"' in html and 'id="per-length"' in html
    lv = figs["live"]  # the example's load run: 4 rooms, half synthetic, the deployment's rules file
    assert lv["rooms"] == 4 and lv["synthetic_rooms"] == 2 and lv["rules"] == ["synthetic-voice"]
    assert lv["frames_sent"] == 4 * 300 and lv["windows_scored"] > 0 and lv["dropped_frames"] == 0
    assert lv["synthetic_rooms_alerted"] == 2 and lv["alert_latency_s_p95"] is not None
    assert figs["evidence"]["live.alert_latency_p95_s"]["source"] == "measured:live-load"
    assert figs["evidence"]["live.monitoring_enabled"]["source"] == "measured:live-load"
    assert figs["controls"]["cac-2018-security-assessment:CAC18-LIVE-MONITORING"] == "met"
    det = figs["control_details"]  # every control, with its citation and whether the article was verified
    assert set(det) == set(figs["controls"]) and all(det[k]["status"] == v for k, v in figs["controls"].items())
    assert det["deep-synthesis-2023:DS23-MANAGEMENT-RULES"]["verified"] is False
    assert det["cac-2018-security-assessment:CAC18-REPORT-FILED"] | {"notes": None} == {
        "status": "met", "severity": "high", "title": "Assessment report filed with the CAC and public security",
        "source": "CAC 2018 security assessment provisions, Art. 6; Art. 7 (written assessment report and its "
                  "filing with the authorities)", "article": "Art. 6; Art. 7", "verified": True, "notes": None}
    for key in ("labelling-2025-gb45438:LB25-UNLABELLED-OUTPUT-LOGS", "labelling-2025-gb45438:LB25-USER-AGREEMENT"):
        assert det[key]["status"] == "met", det[key]  # declared in the example (+ measured retention)
    assert figs["evidence"]["governance.assessment_report_filed"] == {"value": True, "source": "declared:config"}
    assert 'id="live-figures"' in html and "Live monitoring" in html
    assert figs["comparison"]["previous_run_id"] is None and "First assessment" in html
    wm = figs["labelling"]["watermark"]
    assert set(wm["per_condition"]) == {"none", "mp3:64k", "noise:20db"}
    assert wm["per_condition"]["none"] == 1.0  # an unattacked mark must be found
    md = figs["labelling"]["metadata"]
    assert md["files"] == 5 and md["labelled"] == 0  # the bundled clips carry no AIGC label
    assert set(md["format_roundtrip"]) >= {"flac", "mp3"}
    lg = figs["logging"]
    assert lg["retention_days"] >= 184 and lg["audit_chain_ok"] is True
    # charts are embedded, the control table and findings are there
    assert len(re.findall(r'src="data:image/png;base64,', html)) >= 6  # DETs, histogram, watermark, live
    for alt in ("DET per codec", "Live alert latency"):
        assert f'alt="{alt}"' in html
    assert "CAC18-LOG-RETENTION" in html and "declared:config" in html and "measured:eval" in html
    assert figs["evidence"]["detection.eer"]["source"] == "measured:eval"
    # findings were filed as rectification items in the store and listed in the report
    assert o.findings == len(figs["findings"]) > 0
    assert all(it["id"] in html for it in figs["findings"])
    from voxwarden.store import Store, assessments, keys

    st = Store(data_dir=out / "store")
    with st.session() as s:
        tid = keys.tenant_by_name(s, "default").id
        run = assessments.get_run(s, tid, o.run_id)
        assert run.status == "done" and run.figures["risk"] == figs["risk"]
        assert len(assessments.list_items(s, tid, run_id=o.run_id)) == o.findings
        import hashlib

        assert run.report_sha256 == hashlib.sha256((out / "report.html").read_bytes()).hexdigest()
    st.engine.dispose()


def _espeak(path: Path, text: str, voice: str) -> None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed")
    subprocess.run([exe, "-v", voice, "-w", str(path), text], capture_output=True, timeout=30, check=True)


def _own_config(tmp_path: Path, data_dir: Path | None) -> Path:
    """A config over clips this test makes with espeak-ng (labels are arbitrary: this checks the plumbing)."""
    audio = tmp_path / "clips"
    audio.mkdir()
    text = "This short sentence was produced for a test of the assessment report, nothing more."
    _espeak(audio / "b1.wav", text, "en-us")
    _espeak(audio / "b2.wav", text, "en-gb")
    _espeak(audio / "s1.wav", text, "en-us+f3")
    (audio / "proto.tsv").write_text("file\tlabel\tsystem\nb1.wav\tbonafide\t\nb2.wav\tbonafide\t\n"
                                     "s1.wav\tspoof\tespeak\nmissing.wav\tspoof\tespeak\n", encoding="utf-8")
    doc: dict[str, Any] = {
        "version": 1,
        "platform": {"name": "Test <platform>", "features": ["voice_social"]},
        "store": {"tenant": "acme", "create_tenant": True},
        "detection": {"protocol": "clips/proto.tsv", "threshold": 0.5, "declared": {"disposal_workflow": True}},
        "labelling": {"watermark_clips": ["clips/b1.wav"], "attacks": ["noise:20db"], "label_sample_dir": "clips"},
        "logging": {"required_days": 184},
        "governance": {"security_officer_named": True},
    }
    if data_dir is not None:
        doc["store"]["data_dir"] = str(data_dir)
    p = tmp_path / "assessment.yaml"
    p.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return p


def test_own_config_failed_file_tampered_evidence_and_rerun(tmp_path: Path) -> None:
    from voxwarden.store import Store, assessments, cases, keys
    from voxwarden.store.evidence import attach_evidence

    data = tmp_path / "data"
    st = Store(data_dir=data)
    with st.session() as s:
        tid = keys.create_tenant(s, "acme").id
        case = cases.open_case(s, tid, "suspect call", opened_by="test")
        ref = st.evidence.put(b"RIFF-not-really-audio-but-bytes", suffix=".wav")
        attach_evidence(s, tid, ref, case_id=case.id)
    st.evidence.abspath(ref).chmod(0o644)
    st.evidence.abspath(ref).write_bytes(b"tampered")  # the file no longer matches its hash
    st.engine.dispose()

    cfg = load_config(_own_config(tmp_path, data))
    o1 = run_assessment(cfg, tmp_path / "out1")
    figs = _check_outputs(tmp_path / "out1")
    html = (tmp_path / "out1" / "report.html").read_text(encoding="utf-8")
    assert "Test &lt;platform&gt;" in html and "<platform>" not in html  # autoescaped
    assert figs["detection"]["n_failed"] == 1 and any("missing.wav" in e for e in figs["errors"])
    assert figs["logging"]["evidence_checked"] == 1 and len(figs["logging"]["evidence_bad"]) == 1
    assert figs["evidence"]["logging.audit_chain_intact"]["value"] is False
    assert figs["previous_run_id"] is None
    assert "cac-2018-security-assessment:CAC18-LOG-INTEGRITY" in {it["finding"] for it in figs["findings"]}

    o2 = run_assessment(load_config(tmp_path / "assessment.yaml"), tmp_path / "out2")
    assert o2.figures["previous_run_id"] == o1.run_id  # re-assessment hook
    st = Store(data_dir=data)
    with st.session() as s:
        tid = keys.tenant_by_name(s, "acme").id
        assert {r.id for r in assessments.list_runs(s, tid)} >= {o1.run_id, o2.run_id}
    st.engine.dispose()


def test_report_marks_unverified_articles(tmp_path: Path) -> None:
    """Controls whose article number is not verified carry a visible mark (and their notes) in the report's
    control table, and `verified: false` in figures.json; verified ones carry neither. No measuring steps."""
    doc = {"version": 1, "platform": {"name": "Unverified test", "features": ["voice_social", "speech_synthesis"]},
           "store": {"tenant": "acme"}, "governance": {"rumour_refutation": True}}
    p = tmp_path / "assessment.yaml"
    p.write_text(yaml.safe_dump(doc), encoding="utf-8")
    o = run_assessment(load_config(p), tmp_path / "out")
    figs = _check_outputs(tmp_path / "out")
    html = o.report_html.read_text(encoding="utf-8")
    det = figs["control_details"]
    unverified = sorted(k for k, d in det.items() if d["verified"] is False)
    assert unverified == [f"deep-synthesis-2023:DS23-{c}" for c in (
        "COMPLAINTS", "MANAGEMENT-RULES", "NEW-FUNCTION-ASSESSMENT", "RUMOUR-REFUTATION")]
    assert all(det[k]["notes"] and det[k]["article"] is None for k in unverified)
    assert det["deep-synthesis-2023:DS23-RUMOUR-REFUTATION"]["status"] == "met"  # the mark is not a finding
    assert {k for k, d in det.items() if d["verified"] and d["notes"]} == {
        "cac-2018-security-assessment:CAC18-REPORT-FILED"}  # a verified control may carry caveats too
    # the table: one mark per unverified control, next to its citation, plus the explanation above it
    rows = re.findall(r"<tr><td><b>([A-Z0-9-]+)</b>.*?</tr>", html, flags=re.S)
    assert len(rows) == len(det)
    marked = re.findall(r'<tr><td><b>([A-Z0-9-]+)</b>(?:(?!</tr>).)*?<span class="unverified"', html, flags=re.S)
    assert sorted(marked) == sorted(k.split(":")[1] for k in unverified)
    assert 'id="unverified-note"' in html and "4 control(s) marked" in html
    assert "[article number not verified]" not in html  # the badge replaces the citation's text mark
    assert "Believed to be Arts. 7-8".lower() in html.lower()  # the notes are printed
    # a config with only verified controls: no mark, no explanation
    doc["controls"] = [str(REPO / "src/voxwarden/assess/controls/cac-2018-security-assessment.yaml")]
    p.write_text(yaml.safe_dump(doc), encoding="utf-8")
    o2 = run_assessment(load_config(p), tmp_path / "out2")
    html2 = o2.report_html.read_text(encoding="utf-8")
    assert 'class="unverified"' not in html2 and 'id="unverified-note"' not in html2
    assert all(d["verified"] for d in o2.figures["control_details"].values())


def _fake_chromium(tmp_path: Path, rc: int) -> Path:
    """A stand-in browser: writes a tiny PDF to --print-to-pdf=PATH (or fails with `rc`)."""
    exe = tmp_path / "fake-chromium"
    exe.write_text("#!/bin/sh\n"
                   f"[ {rc} -ne 0 ] && {{ echo boom >&2; exit {rc}; }}\n"
                   'for a in "$@"; do case "$a" in '
                   '--print-to-pdf=*) printf "%%PDF-1.4 fake" > "${a#--print-to-pdf=}";; esac; done\n',
                   encoding="utf-8")
    exe.chmod(0o755)
    return exe


@pytest.mark.parametrize("rc", [0, 3])
def test_pdf_with_and_without_working_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rc: int) -> None:
    import voxwarden.assess.run as run_mod

    html = tmp_path / "r.html"
    html.write_text("<html><body>x</body></html>", encoding="utf-8")
    monkeypatch.setattr(run_mod, "CHROMIUM_NAMES", (str(_fake_chromium(tmp_path, rc)),))
    ok, note = run_mod.print_pdf(html, tmp_path / "r.pdf", timeout=20)
    assert ok is (rc == 0)
    if rc == 0:
        assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    else:
        assert note.startswith("PDF skipped: chromium exited 3") and "boom" in note


def test_run_writes_pdf_when_browser_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import voxwarden.assess.run as run_mod

    monkeypatch.setattr(run_mod, "CHROMIUM_NAMES", (str(_fake_chromium(tmp_path, 0)),))
    o = run_assessment(load_config(_own_config(tmp_path, None)), tmp_path / "out")
    assert o.report_pdf == tmp_path / "out" / "report.pdf" and o.report_pdf.is_file()
    figs = json.loads(o.figures_json.read_text())
    assert figs["pdf"]["written"] is True
    assert "report.pdf printed from this page" in o.report_html.read_text(encoding="utf-8")


def test_failed_detection_step_does_not_abort(tmp_path: Path) -> None:
    p = _own_config(tmp_path, None)
    doc = yaml.safe_load(p.read_text())
    doc["detection"]["model"] = "no-such-model"
    p.write_text(yaml.safe_dump(doc))
    o = run_assessment(load_config(p), tmp_path / "out")
    figs = _check_outputs(tmp_path / "out")
    assert any(e.startswith("detection step failed") for e in figs["errors"])
    assert figs["detection"] == {} and "detection.eer" not in figs["evidence"]
    assert o.run_id


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("platform: [1, 2", "invalid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("platform: {name: x, features: [voice_social]}\nplatfrom: 1\n", "unknown field(s) platfrom"),
        ("platform: {name: x, features: [teleport]}\n", "unknown feature"),
        ("platform: {name: x}\n", "platform.features"),
        ("platform: {name: x, features: [any]}\ndetection: {protocol: nope.tsv}\n", "does not exist"),
        ("platform: {name: x, features: [any]}\nlabelling: {attacks: ['warp:9']}\n", "labelling.attacks"),
        ("platform: {name: x, features: [any]}\ngovernance: {security_officer_named: {a: 1}}\n", "governance"),
        ("platform: {name: x, features: [any]}\nversion: 7\n", "version"),
    ],
)
def test_config_errors(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "a.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(AssessConfigError, match=re.escape(needle)) as ei:
        load_config(p)
    assert str(p) in str(ei.value)


def test_config_unreadable(tmp_path: Path) -> None:
    with pytest.raises(AssessConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(AssessConfigError, match="UTF-8"):
        load_config(p)


def test_unknown_tenant_refused(tmp_path: Path) -> None:
    from voxwarden.assess.run import AssessRunError

    doc = {"platform": {"name": "x", "features": ["any"]},
           "store": {"data_dir": str(tmp_path / "d"), "tenant": "nobody"}}
    cfg = parse_config(doc, tmp_path / "a.yaml")
    with pytest.raises(AssessRunError, match="no tenant named 'nobody'"):
        run_assessment(cfg, tmp_path / "out")


def test_risk_rating_levels(evidence: dict[str, Any]) -> None:
    from voxwarden.assess import evaluate_all, load_controls

    sets = load_controls()
    assert risk_rating(evaluate_all(sets, {}, features=["voice_social"])) in {"high", "critical"}
    assert risk_rating(evaluate_all(sets, evidence, features=["voice_social"])) == "low"
    evidence["logging"]["retention_days"] = 30  # a high-severity control not met
    assert risk_rating(evaluate_all(sets, evidence, features=["voice_social"])) == "high"


def test_cli_exit_codes(tmp_path: Path) -> None:
    from voxwarden.commands.assess import assess_cmd

    app = typer.Typer()
    app.command()(assess_cmd)
    r = CliRunner().invoke(app, ["--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 3
    r = CliRunner().invoke(app, ["--config", str(EXAMPLE), "--out", str(tmp_path / "o"), "--no-pdf"])
    figs = json.loads((tmp_path / "o" / "figures.json").read_text())
    assert r.exit_code == (1 if figs["risk"] in ("high", "critical") else 0), r.output
    assert figs["run_id"] in r.output and figs["pdf"]["note"] == "PDF skipped: disabled"
