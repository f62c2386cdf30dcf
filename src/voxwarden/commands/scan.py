"""`voxwarden scan`: score files and folders for synthetic speech."""

from __future__ import annotations

import csv
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from voxwarden.commands._common import (
    EXIT_USAGE,
    check_output,
    err_console,
    exit_code,
    output_stream,
    progress_bar,
)


class Format(StrEnum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"


def scan_cmd(
    paths: Annotated[list[str], typer.Argument(help="Audio/video files or folders.")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write results here (default stdout).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes.")] = 1,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Packaged model name or model dir.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Probability threshold (default: the model's).")] = None,
    max_duration: Annotated[float, typer.Option(help="Refuse inputs longer than this (s).")] = 3600.0,
) -> None:
    """Score files for synthetic speech.

    Exit codes: 0 nothing flagged, 1 something flagged as synthetic, 2 some inputs failed (2 wins over 1),
    3 usage or model error.
    """
    from voxwarden.audio import iter_inputs
    from voxwarden.detect import Detector, ModelError, ScanResult

    if threshold is not None and not 0.0 < threshold < 1.0:
        err_console.print("[red]error:[/red] --threshold must be in (0, 1)")
        raise typer.Exit(EXIT_USAGE)
    check_output(out)
    try:
        det = Detector.load(model, threshold=threshold, max_duration=max_duration)
    except ModelError as e:
        err_console.print(f"[red]model error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e

    items = list(iter_inputs(paths, recursive=recursive))
    results: list[ScanResult | None] = [None] * len(items)
    good = [(i, it.path) for i, it in enumerate(items) if it.error is None]
    for i, it in enumerate(items):
        if it.error is not None:
            results[i] = ScanResult(path=it.path, model=det.model_id, error=it.error.to_dict())
    with progress_bar("scanning") as bar:
        task = bar.add_task("scan", total=len(good))
        scored = det.score_many([p for _, p in good], jobs=jobs,
                                progress=lambda done, total, r: bar.update(task, completed=done))
    for (i, _), r in zip(good, scored, strict=True):
        results[i] = r
    final = [r for r in results if r is not None]

    with output_stream(out) as stream:
        if fmt is Format.jsonl:
            for r in final:
                stream.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
        elif fmt is Format.csv:
            w = csv.writer(stream)
            w.writerow(["path", "score", "probability", "decision", "n_segments", "duration", "error_type",
                        "error_message"])
            for r in final:
                e = r.error or {}
                w.writerow([r.path, _f(r.score), _f(r.probability), r.decision or "", len(r.segments),
                            _f(r.duration), e.get("type", ""), e.get("message", "")])
        else:
            _print_table(final, stream, det.model_id, det.threshold)
    flagged = any(r.flagged for r in final)
    failed = any(r.error for r in final)
    if fmt is not Format.table or out is not None:
        n_flag = sum(r.flagged for r in final)
        n_fail = sum(bool(r.error) for r in final)
        err_console.print(f"{len(final)} inputs: {n_flag} flagged synthetic, {n_fail} failed")
    raise typer.Exit(exit_code(flagged, failed))


def _f(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def _print_table(results: list, stream, model_id: str, threshold: float) -> None:
    from rich.console import Console

    table = Table(title=f"voxwarden scan — model {model_id}, threshold {threshold:.2f}")
    table.add_column("file", no_wrap=True)
    table.add_column("decision")
    table.add_column("P(synthetic)", justify="right")
    table.add_column("score", justify="right")
    table.add_column("segments", justify="right")
    table.add_column("duration", justify="right")
    for r in results:
        if r.error:
            table.add_row(r.path, "[red]error[/red]", "", "", "", "", )
            table.add_row("", f"[red]{r.error['type']}[/red]: {r.error['message']}", "", "", "", "")
            continue
        style = "bold red" if r.flagged else "green"
        table.add_row(r.path, f"[{style}]{r.decision}[/{style}]", f"{r.probability:.3f}", f"{r.score:+.2f}",
                      str(len(r.segments)), f"{r.duration:.1f} s")
    n_flag = sum(r.flagged for r in results)
    n_fail = sum(bool(r.error) for r in results)
    table.caption = f"{len(results)} inputs · {n_flag} flagged synthetic · {n_fail} failed"
    Console(file=stream, width=max(120, Console().width)).print(table)
