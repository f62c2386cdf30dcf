"""`voxwarden assess`: measure a deployment, judge the controls, file findings, write the report.

    from voxwarden.assess.run import run_assessment
    outcome = run_assessment(load_config("assessment.yaml"), Path("out"))
    outcome.report_html, outcome.figures_json, outcome.risk

Steps: open the store (the config's data dir, or a fresh one in ``OUT/store``), start a run, measure
detection (with breakdowns) / labelling / live monitoring (a short real-time load run) / logging, merge
with the declared facts, evaluate the control files, record findings as rectification items with
carry-over from earlier runs (close what is now met, reopen regressions), compare with the previous run,
render ``report.html`` (+ ``report.pdf`` when Chromium is available) and ``figures.json``, then
`finish_run` with the figures and the report hash. A step that fails is reported (figures ``errors``)
and the controls it feeds come out *not assessed*; the run is not aborted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from voxwarden.assess.checklist import Checklist, Fact, evaluate_all, merge_evidence
from voxwarden.assess.compare import compare_runs, plot_comparison
from voxwarden.assess.config import AssessmentConfig
from voxwarden.assess.controls import load_controls
from voxwarden.assess.findings import finding_key
from voxwarden.assess.measure import (
    Measured,
    finite_or_none,
    measure_detection,
    measure_labelling,
    measure_logging,
)

SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class AssessRunError(RuntimeError):
    """The assessment could not run at all (store unavailable, unknown tenant, unreadable controls)."""


@dataclass
class AssessOutcome:
    """Where the outputs are and the headline: run id, risk rating, counts of findings."""

    run_id: str
    risk: str
    report_html: Path
    report_pdf: Path | None
    figures_json: Path
    findings: int
    figures: dict[str, Any] = field(default_factory=dict)


def risk_rating(checklists: list[Checklist]) -> str:
    """Overall risk from the findings: the highest severity among not-met controls sets the level
    (critical/high/medium/low); partly-met and not-assessed controls count one level lower; none: low."""
    worst = 0
    for c in checklists:
        for r in c.results:
            rank = SEVERITY_RANK.get(r.severity, 1)
            if r.status == "not_met":
                worst = max(worst, rank)
            elif r.status in ("partly", "not_assessed"):
                worst = max(worst, rank - 1)
    return {0: "low", 1: "low", 2: "medium", 3: "high", 4: "critical"}[worst]


def control_details(checklists: list[Checklist]) -> dict[str, dict[str, Any]]:
    """Per control ("framework:id"): status, severity, citation, and whether its article number was verified
    against the regulation's text (with the control file's notes) - so a reader of figures.json sees which
    citations are still unconfirmed. `controls` keeps the plain status map the run comparison reads."""
    return {finding_key(c.framework, r.control_id): {
        "status": r.status, "severity": r.severity, "title": r.title, "source": r.source, "article": r.article,
        "verified": r.verified, "notes": r.notes or None} for c in checklists for r in c.results}


def _facts(section: str, values: dict[str, Any]) -> dict[str, Any]:
    return {section: {k: v if isinstance(v, Fact) else Fact(v, source="declared:config")
                      for k, v in values.items()}}


def _step(name: str, fn: Any, *args: Any) -> Measured:
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - one failed step must not lose the rest of the assessment
        return Measured(errors=[f"{name} step failed: {type(e).__name__}: {e}"])


def previous_run_figures(store: Any, tenant_id: str, framework: str, before_run: str) -> dict[str, Any] | None:
    """The previous assessment to compare with: the tenant's newest finished run of the same framework
    other than `before_run` (``{"run_id", "finished_at", "figures"}``), or None for a first assessment."""
    from voxwarden.store import assessments

    with store.session() as s:
        run = assessments.last_finished_run(s, tenant_id, framework, before=before_run)
        if run is None:
            return None
        return {"run_id": run.id, "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                "figures": run.figures}


def _closing_evidence(notes: str | None) -> str:
    """The evidence line a re-assessment wrote when it closed an item (the last one)."""
    marker = "closed (done) by re-assessment: "
    lines = [ln for ln in (notes or "").splitlines() if marker in ln]
    return lines[-1].split(marker, 1)[1] if lines else ""


def _open_store(cfg: AssessmentConfig, out_dir: Path) -> tuple[Any, str, bool]:
    from voxwarden.store import Store, StoreError, keys

    data_dir = cfg.data_dir if cfg.data_dir is not None else out_dir / "store"
    fresh = cfg.data_dir is None
    try:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        store = Store(data_dir=data_dir)
        with store.session() as s:
            t = keys.tenant_by_name(s, cfg.tenant)
            if t is None:
                if not (cfg.create_tenant or fresh):
                    raise AssessRunError(f"no tenant named {cfg.tenant!r} in {data_dir} "
                                         "(set store.create_tenant: true to create it)")
                t = keys.create_tenant(s, cfg.tenant)
            tid = t.id
    except (StoreError, OSError) as e:
        raise AssessRunError(f"store at {data_dir} unavailable: {e}") from e
    return store, tid, fresh


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # a report to share, not a secret (mkstemp makes 0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # we may run as root (containers, CI); Chromium's sandbox refuses root
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-crash-reporter",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pdf-header-footer",  # no file:// URL and date stamped into every page
    "--hide-scrollbars",
)


def _find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        exe = shutil.which(name)
        if exe:
            return exe
    return None


def print_pdf(html: Path, pdf: Path, *, timeout: float = 120.0) -> tuple[bool, str]:
    """Print `html` to `pdf` with headless Chromium when one is on PATH; (written, why not).

    Runs with a fresh throw-away profile (so a root/CI run never touches ``~/.config``), no network
    side-traffic and no sandbox (root), in its own process group so a hung browser and its helpers are
    killed on `timeout`. The PDF is printed into the temporary profile folder and moved into place only
    when it looks like a PDF, so a failed print never leaves a partial or stale ``pdf`` behind.
    """
    exe = _find_chromium()
    if exe is None:
        return False, "PDF skipped: no chromium on PATH"
    pdf = Path(pdf)
    try:
        pdf.unlink(missing_ok=True)  # an old report.pdf must not pass for this run's
        work = Path(tempfile.mkdtemp(prefix="voxwarden-chromium-"))
    except OSError as e:
        return False, f"PDF skipped: cannot prepare output: {e}"
    tmp_pdf = work / "report.pdf"
    env = {**os.environ, "HOME": str(work)}  # crashpad/fontconfig caches go here, not in the real home
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={work / 'profile'}", f"--print-to-pdf={tmp_pdf}",
           Path(html).resolve().as_uri()]
    try:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as e:
            return False, f"PDF skipped: chromium failed to start: {e}"
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return False, f"PDF skipped: chromium timed out after {timeout:g} s"
        finally:
            with contextlib.suppress(OSError):  # helpers left behind by a crashed browser
                os.killpg(proc.pid, signal.SIGKILL)
        tail = err.decode("utf-8", "replace").strip()[-300:]
        if proc.returncode != 0:
            return False, f"PDF skipped: chromium exited {proc.returncode}: {tail}"
        try:
            with tmp_pdf.open("rb") as f:
                ok = f.read(5) == b"%PDF-"
        except OSError:
            ok = False
        if not ok:
            return False, f"PDF skipped: chromium wrote no PDF: {tail}"
        try:
            shutil.move(str(tmp_pdf), str(pdf))
            os.chmod(pdf, 0o644)
        except OSError as e:
            return False, f"PDF skipped: cannot write {pdf}: {e}"
        return True, f"printed with {Path(exe).name}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_assessment(cfg: AssessmentConfig, out_dir: Path, *, today: date | None = None,
                   pdf: bool = True) -> AssessOutcome:
    """Run the whole assessment described by `cfg`, writing the report into `out_dir`."""
    from voxwarden.assess.findings import record_findings
    from voxwarden.assess.report import render_html
    from voxwarden.store import AuditContext, StoreError, assessments

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    today = today or datetime.now(UTC).date()
    try:
        sets = load_controls(cfg.control_files) if cfg.control_files else load_controls()
    except Exception as e:  # ControlFileError and OS errors alike
        raise AssessRunError(f"cannot load control files: {e}") from e
    framework = "+".join(cs.framework for cs in sets)[:100]
    if cfg.service is not None:
        from voxwarden.assess.service import ServiceError, preflight

        try:
            preflight(cfg.service)
        except ServiceError as e:
            raise AssessRunError(f"service {cfg.service.url} not usable: {e}") from e
    store, tenant_id, fresh = _open_store(cfg, out_dir)
    try:
        with store.session() as s:
            run_id = assessments.start_run(s, tenant_id, framework).id

        work = out_dir / "work"
        if cfg.detection is not None and cfg.service is not None:
            from voxwarden.assess.service import measure_detection_service

            det = _step("detection", measure_detection_service, cfg.detection, cfg.service, work / "detection")
        elif cfg.detection is not None:
            det = _step("detection", measure_detection, cfg.detection, work / "detection")
        else:
            det = Measured(errors=["detection: no labelled test set in the config (detection.protocol)"])
        lab = _step("labelling", measure_labelling, cfg.labelling, work / "labelling")
        if cfg.live is not None:
            from voxwarden.assess.live_load import measure_live

            live = _step("live", measure_live, cfg.live, cfg.detection, work / "live", cfg.service)
        else:
            live = Measured()
        log = _step("logging", measure_logging, store, tenant_id, cfg.logging)

        sections = []
        for name, m in (("detection", det), ("labelling", lab), ("logging", log), ("live", live)):
            declared = {k: v for k, v in cfg.declared.get(name, {}).items() if k not in m.evidence}
            sections.append(_facts(name, {**declared, **m.evidence}))
        sections.append(_facts("governance", cfg.declared.get("governance", {})))
        evidence = merge_evidence(*sections)
        checklists = evaluate_all(sets, evidence, features=cfg.features)
        ctx = AuditContext(actor="cli:assess", tenant_id=tenant_id)
        with store.session() as s:
            fr = record_findings(s, tenant_id, run_id, checklists, today=today, owner=cfg.owner, ctx=ctx,
                                 carry_over=True)
        with store.session() as s:
            tracked = set(fr.item_ids)
            all_items = [it for it in assessments.list_items(s, tenant_id)
                         if it.id in tracked or it.id in fr.closed or it.id in fr.accepted]
            how = {**dict.fromkeys(fr.created + fr.existing, "new"), **dict.fromkeys(fr.carried, "carried"),
                   **dict.fromkeys(fr.reopened, "reopened"), **dict.fromkeys(fr.accepted, "accepted risk")}

            def row(it: Any) -> dict[str, Any]:
                return {"id": it.id, "finding": it.finding, "title": it.title, "severity": it.severity,
                        "due": it.due_date.isoformat() if it.due_date else None, "status": it.status,
                        "run_id": it.run_id, "tracking": how.get(it.id, "")}

            order = sorted(all_items, key=lambda i: (-SEVERITY_RANK.get(i.severity, 0), i.finding))
            item_rows = [row(it) for it in order if it.id in tracked]
            closed_rows = [row(it) | {"evidence": _closing_evidence(it.notes)} for it in order if it.id in fr.closed]
            accepted_rows = [row(it) for it in order if it.id in fr.accepted]
        prev = previous_run_figures(store, tenant_id, framework, run_id)
        risk = risk_rating(checklists)
        counts: dict[str, int] = {}
        for c in checklists:
            for k, v in c.counts().items():
                counts[k] = counts.get(k, 0) + v
        figures: dict[str, Any] = finite_or_none({
            "schema": 3,  # 2: live, per_condition/per_length, controls, comparison, rectification; 3: control_details
            "run_id": run_id,
            "framework": framework,
            "platform": cfg.platform,
            "features": cfg.features,
            "tenant": cfg.tenant,
            "store": "fresh store in output folder" if fresh else str(cfg.data_dir),
            "service": cfg.service.url if cfg.service is not None else None,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "risk": risk,
            "counts": counts,
            "detection": det.figures,
            "labelling": lab.figures,
            "logging": log.figures,
            "evidence": {k: f.to_dict() for k, f in sorted(evidence.items())},
            "checklists": [{"framework": c.framework, "title": c.title, "counts": c.counts()} for c in checklists],
            "live": live.figures,
            "controls": {finding_key(c.framework, r.control_id): r.status for c in checklists for r in c.results},
            "control_details": control_details(checklists),
            "findings": item_rows,
            "findings_created": len(fr.created),
            "rectification": {"created": fr.created, "existing": fr.existing, "carried": fr.carried,
                              "reopened": fr.reopened, "closed": closed_rows, "accepted_risk": accepted_rows},
            "previous_run_id": prev["run_id"] if prev else None,
            "errors": det.errors + lab.errors + live.errors + log.errors,
        })
        comparison = compare_runs(prev["figures"] if prev else None, figures, prev["run_id"] if prev else None)
        figures["comparison"] = finite_or_none(comparison.to_dict())
        pdf_path = out_dir / "report.pdf"
        html_path = out_dir / "report.html"
        figures["pdf"] = {"written": False, "note": "PDF skipped: disabled" if not pdf
                          else "report.pdf printed from this page"}
        charts = {**det.charts, **lab.charts, **live.charts}
        (work / "compare").mkdir(parents=True, exist_ok=True)
        if plot_comparison(comparison, work / "compare" / "comparison.png"):
            charts["comparison"] = work / "compare" / "comparison.png"
        html = render_html(figures, checklists, charts)
        _write_atomic(html_path, html.encode("utf-8"))
        written, note = print_pdf(html_path, pdf_path) if pdf else (False, "PDF skipped: disabled")
        if not written:
            figures["pdf"] = {"written": False, "note": note}
            html = render_html(figures, checklists, charts)  # the report says PDF was skipped
            _write_atomic(html_path, html.encode("utf-8"))
        else:
            figures["pdf"] = {"written": True, "note": note}
        digest = hashlib.sha256(html_path.read_bytes()).hexdigest()
        figures["report_sha256"] = digest
        _write_atomic(out_dir / "figures.json", (json.dumps(figures, indent=2, default=str) + "\n").encode())
        with store.session() as s:
            assessments.finish_run(s, tenant_id, run_id, figures, report_path=str(html_path.resolve()),
                                   report_sha256=digest)
    except StoreError as e:
        raise AssessRunError(f"store error: {e}") from e
    finally:
        store.engine.dispose()
    return AssessOutcome(run_id=run_id, risk=risk, report_html=html_path,
                         report_pdf=pdf_path if figures["pdf"]["written"] else None,
                         figures_json=out_dir / "figures.json", findings=len(item_rows), figures=figures)
