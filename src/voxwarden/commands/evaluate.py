"""`voxwarden eval`: score a labelled protocol and report EER, minDCF, per-generator EER and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from voxwarden.commands._common import EXIT_FAILED, EXIT_USAGE, check_output, err_console, progress_bar


def eval_cmd(
    protocol: Annotated[Path, typer.Option(
        help="Protocol: our TSV, ASVspoof 2019/2021 LA keys, or In-the-Wild meta.csv.")],
    audio_dir: Annotated[Path, typer.Option(help="Folder holding the protocol's audio files.")],
    out: Annotated[Path | None, typer.Option(help="Write summary.json, det.png, hist.png, scores.tsv here.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Packaged model name or model dir.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1)] = 1,
    degrade: Annotated[list[str] | None, typer.Option(
        help="Score after a degradation, e.g. mp3:64k, opus:16k, amr:12.2k, noise:10db "
             "(repeatable; 'none' = clean).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N protocol rows (smoke runs).")] = None,
) -> None:
    """Evaluate a model on a labelled corpus (never tune on the data you report)."""
    from voxwarden.detect import Detector, ModelError
    from voxwarden.detect.batch import score_protocol
    from voxwarden.detect.evaluate import evaluate
    from voxwarden.detect.protocol import ProtocolError, read_protocol

    try:
        rows = read_protocol(protocol)
    except (ProtocolError, OSError) as e:
        err_console.print(f"[red]protocol error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e
    if limit is not None:
        rows = rows[:limit]
    if not audio_dir.is_dir():
        err_console.print(f"[red]error:[/red] audio dir {audio_dir} is not a folder")
        raise typer.Exit(EXIT_USAGE)
    check_output(out, directory=True)
    specs = degrade or ["none"]
    if degrade:
        from voxwarden.audio.degrade import parse_spec

        for spec in specs:
            if spec != "none":
                try:
                    parse_spec(spec)
                except ValueError as e:
                    err_console.print(f"[red]bad --degrade:[/red] {e}")
                    raise typer.Exit(EXIT_USAGE) from e
    any_failed = False
    console = Console()
    for spec in specs:
        try:
            det = Detector.load(model, degrade=None if spec == "none" else spec)
        except ModelError as e:
            err_console.print(f"[red]model error:[/red] {e}")
            raise typer.Exit(EXIT_USAGE) from e
        with progress_bar(f"eval {spec}") as bar:
            task = bar.add_task("eval", total=len(rows))
            records = score_protocol(det, rows, audio_dir, jobs=jobs,
                                     progress=lambda done, total, r, t=task: bar.update(t, completed=done))
        sub = None if out is None else (out if len(specs) == 1 else out / spec.replace(":", "-"))
        summary = evaluate(records, sub, threshold=det.threshold, title=f"{det.model_id} · {spec}")
        any_failed |= summary.n_failed > 0
        _print_summary(console, summary, det.model_id, spec)
        if sub is not None:
            err_console.print(f"written: {sub}/summary.json, det.png, hist.png, scores.tsv")
    raise typer.Exit(EXIT_FAILED if any_failed else 0)


def _print_summary(console: Console, s, model_id: str, spec: str) -> None:
    t = Table(title=f"voxwarden eval — {model_id} — degradation: {spec}")
    t.add_column("system")
    t.add_column("n", justify="right")
    t.add_column("EER %", justify="right")
    t.add_row("[bold]overall[/bold]", str(s.n_bonafide + s.n_spoof), _pct(s.eer))
    for name, d in sorted(s.per_system.items()):
        t.add_row(name, str(d["n"]), _pct(d["eer"]))
    dcf = "n/a" if s.min_dcf is None else f"{s.min_dcf:.4f}"
    t.caption = (f"minDCF {dcf} · bona fide {s.n_bonafide} · spoof {s.n_spoof} · failed {s.n_failed}"
                 f" · at threshold {s.threshold:.2f}: miss {_pct(s.miss_rate)} %, false alarm {_pct(s.fa_rate)} %")
    console.print(t)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"
