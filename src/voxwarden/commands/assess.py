"""`voxwarden assess`: run a security assessment of a deployment and write report.html/.pdf + figures.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voxwarden.commands._common import EXIT_FAILED, EXIT_FLAGGED, EXIT_OK, EXIT_USAGE, err_console

RISK_EXIT = {"low": EXIT_OK, "medium": EXIT_OK, "high": EXIT_FLAGGED, "critical": EXIT_FLAGGED}


def assess_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="assessment.yaml (see examples/assessment.yaml).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.html, report.pdf, figures.json.")],
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Store data directory (overrides store.data_dir in the config).")] = None,
    pdf: Annotated[bool, typer.Option(
        "--pdf/--no-pdf", help="Print report.pdf with headless Chromium if found.")] = True,
) -> None:
    """Measure detection, labelling, live monitoring and logging, judge the controls, follow up rectification
    items (new, carried, closed by this run, reopened), compare with the previous run, write the report.

    Exit codes: 0 risk low/medium, 1 risk high/critical, 2 store unavailable or the run failed, 3 bad config.
    """
    from voxwarden.assess.config import AssessConfigError, load_config
    from voxwarden.assess.run import AssessRunError, run_assessment

    try:
        cfg = load_config(config)
    except AssessConfigError as e:
        err_console.print(f"[red]config error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e
    if data_dir is not None:
        cfg.data_dir = data_dir
    try:
        outcome = run_assessment(cfg, out, pdf=pdf)
    except AssessRunError as e:
        err_console.print(f"[red]assessment failed:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e
    except OSError as e:
        err_console.print(f"[red]cannot write to {out}:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e
    f = outcome.figures
    typer.echo(f"run {outcome.run_id}: risk {outcome.risk}; {f['counts']['met']} met, {f['counts']['partly']} partly, "
               f"{f['counts']['not_met']} not met, {f['counts']['not_assessed']} not assessed; "
               f"{outcome.findings} rectification item(s)")
    cmp, rx = f.get("comparison") or {}, f.get("rectification") or {}
    if cmp.get("previous_run_id"):
        n = cmp.get("counts", {})
        typer.echo(f"since run {cmp['previous_run_id']}: {n.get('improved', 0)} figure(s) improved, "
                   f"{n.get('regressed', 0)} regressed; {len(rx.get('closed', []))} item(s) closed, "
                   f"{len(rx.get('reopened', []))} reopened, {len(rx.get('carried', []))} still open")
    lv = f.get("live") or {}
    if lv.get("rooms"):
        p95 = lv.get("alert_latency_s_p95")
        typer.echo(f"live: {lv['rooms']} rooms x {lv['seconds']:g} s, alert latency p95 "
                   f"{'n/a' if p95 is None else f'{p95:.3f} s'}, {lv.get('dropped_frames', 0)} frame(s) dropped")
    typer.echo(f"report: {outcome.report_html}")
    typer.echo(f"pdf:    {outcome.report_pdf if outcome.report_pdf else f['pdf']['note']}")
    typer.echo(f"figures: {outcome.figures_json}")
    for e in f.get("errors", []):
        err_console.print(f"[yellow]warning:[/yellow] {e}")
    raise typer.Exit(RISK_EXIT.get(outcome.risk, EXIT_FLAGGED))
