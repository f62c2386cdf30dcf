"""`voxwarden train`: train a countermeasure on a labelled protocol into a model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voxwarden.commands._common import EXIT_FAILED, EXIT_USAGE, err_console, progress_bar


def train_cmd(
    protocol: Annotated[Path, typer.Option(
        help="Training protocol (both labels; our TSV or ASVspoof LA keys).")],
    audio_dir: Annotated[Path, typer.Option(help="Folder holding the protocol's audio.")],
    out: Annotated[Path, typer.Option(help="Model directory to write (card.json + weights).")],
    model: Annotated[str, typer.Option(
        "--model", "-m", help="lfcc-gmm, or a neural architecture (lcnn).")] = "lfcc-gmm",
    seed: Annotated[int, typer.Option(help="Random seed (training is deterministic for a seed).")] = 0,
    holdout: Annotated[float, typer.Option(help="Share of speakers held back for calibration.")] = 0.15,
    epochs: Annotated[int | None, typer.Option(help="Neural models: epochs (default: the recipe's).")] = None,
    max_files: Annotated[int | None, typer.Option(help="Use at most N protocol rows (smoke runs).")] = None,
    split: Annotated[str | None, typer.Option(
        help="Use only the rows whose 'split' column is this (e.g. train: a corpus's val speakers stay "
             "unseen).")] = None,
    opt: Annotated[list[str] | None, typer.Option(
        "--opt", metavar="KEY=VALUE",
        help="A recipe option, repeatable: lfcc-gmm's n_components, max_iter, ... or lfcc.FIELD for a "
             "feature field (lfcc.statics=false, lfcc.cms=true, lfcc.f_min=4000).")] = None,
) -> None:
    """Train a model that `scan --model DIR` and `Detector.load(DIR)` take (neural models need torch)."""
    from voxwarden.detect.train import TrainError, parse_opts, train

    try:
        opts = parse_opts(opt or [])
    except ValueError as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(EXIT_USAGE) from e
    if epochs is not None:
        opts["epochs"] = epochs
    with progress_bar(f"train {model}") as bar:
        task = bar.add_task("train", total=1.0)

        def progress(stage: str, frac: float) -> None:
            bar.update(task, completed=frac, description=stage)

        try:
            out_dir = train(protocol, audio_dir, model, out, seed=seed, holdout=holdout, progress=progress,
                            max_files=max_files, split=split, **opts)
        except TrainError as e:
            err_console.print(f"[red]training failed:[/red] {e}")
            raise typer.Exit(EXIT_FAILED) from e
        except (ValueError, OSError) as e:
            err_console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(EXIT_USAGE) from e
    err_console.print(f"model written to {out_dir} (use: voxwarden scan --model {out_dir} FILE)")
