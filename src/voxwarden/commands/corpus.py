"""`voxwarden corpus build|audit`: build the training corpus and check it for shortcuts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from voxwarden.commands._common import EXIT_FAILED, EXIT_FLAGGED, EXIT_USAGE, err_console, progress_bar

corpus_app = typer.Typer(help="Build and audit the bona fide / spoof training corpus.", no_args_is_help=True)


@corpus_app.command("build")
def build_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output folder (audio/, protocol.tsv, manifest.json).")],
    seed: Annotated[int, typer.Option(help="Random seed; equal seeds give equal corpora.")] = 0,
    size: Annotated[str, typer.Option(help="tiny (seconds), default (~4k clips) or large.")] = "default",
    shared_train: Annotated[
        Path | None, typer.Option(help="shared/data/train (real speech, optional; users lack it).")
    ] = None,
    vocoder: Annotated[
        list[Path] | None, typer.Option(help="Neural vocoder checkpoint (train_vocoder.py); repeatable.")
    ] = None,
    no_tts: Annotated[bool, typer.Option("--no-tts", help="Skip TTS engines (copy-synthesis only).")] = False,
    no_system_sources: Annotated[
        bool, typer.Option("--no-system-sources", help="Ignore the Debian speech packages.")
    ] = False,
    no_balance: Annotated[
        bool, typer.Option("--no-balance", help="Keep every clip (skip shortcut balancing).")
    ] = False,
    tts_weight: Annotated[
        list[str] | None,
        typer.Option(help="SYSTEM=WEIGHT: draw that TTS system WEIGHT times as often (e.g. kokoro=3); repeatable."),
    ] = None,
    match_spectra: Annotated[
        bool, typer.Option("--match-spectra", help="Filter each copy-synthesis clip to its original's long-term "
                           "spectrum, so a vocoder's spectral tilt is no cue.")
    ] = False,
    bonafide_clips: Annotated[
        int | None, typer.Option(help="Bona fide clips to draw, instead of the size's number.")
    ] = None,
    copy_clips: Annotated[
        int | None, typer.Option(help="Copy-synthesis clips, instead of the size's number (grow one part of "
                                 "the corpus without re-dividing the others).")
    ] = None,
    tts_clips: Annotated[int | None, typer.Option(help="TTS clips, instead of the size's number.")] = None,
) -> None:
    """Build a corpus from the installed real-speech sources, TTS engines and vocoders."""
    from voxwarden.corpus.build import CorpusError, build_corpus

    weights: dict[str, float] = {}
    for item in tts_weight or []:
        name, _, val = item.partition("=")
        try:
            weights[name.strip()] = float(val)
        except ValueError:
            err_console.print(f"[red]error:[/red] --tts-weight {item!r}: expected SYSTEM=NUMBER")
            raise typer.Exit(EXIT_USAGE) from None

    if shared_train is not None and not shared_train.is_dir():
        err_console.print(f"[red]error:[/red] --shared-train {shared_train} is not a folder")
        raise typer.Exit(EXIT_USAGE)
    with progress_bar("corpus") as bar:
        task = bar.add_task("corpus", total=1)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, 1), description=stage)

        try:
            s = build_corpus(out, seed=seed, size=size, shared_train=shared_train, progress=progress,
                             neural_vocoders=vocoder or (), tts=not no_tts,
                             system_sources=not no_system_sources, balance=not no_balance,
                             tts_weights=weights, match_spectra=match_spectra,
                             counts={k: v for k, v in (("bonafide", bonafide_clips), ("copy", copy_clips),
                                                       ("tts", tts_clips)) if v is not None})
        except CorpusError as e:
            err_console.print(f"[red]corpus build failed:[/red] {e}")
            raise typer.Exit(EXIT_FAILED) from e
    err_console.print(
        f"{s.clips} clips ({s.bonafide} bona fide, {s.spoof} spoof, {s.minutes} min) in {s.seconds:.0f} s "
        f"-> {s.out_dir}; generators: {', '.join(sorted(k for k in s.systems if k != 'bonafide'))}")
    for w in s.warnings[:10]:
        err_console.print(f"[yellow]warning:[/yellow] {w}")


@corpus_app.command("audit")
def audit_cmd(
    corpus: Annotated[Path, typer.Argument(help="Corpus folder (protocol.tsv + audio/).")],
    threshold: Annotated[float, typer.Option(help="Highest acceptable balanced accuracy.")] = 0.60,
    max_clips: Annotated[int, typer.Option(help="Audit at most N clips (random, seeded).")] = 3000,
) -> None:
    """Shortcut audit: exit 1 when duration/level/bandwidth/silence/codec features separate the labels."""
    from voxwarden.corpus.audit import shortcut_audit
    from voxwarden.corpus.build import CorpusError

    try:
        r = shortcut_audit(corpus, threshold=threshold, max_clips=max_clips)
    except CorpusError as e:
        err_console.print(f"[red]audit failed:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e
    typer.echo(json.dumps({"clips": r.n, "accuracy": round(r.accuracy, 4), "passed": r.passed,
                           "by_model": r.by_model, "worst_features": r.worst_features(5)}, indent=2))
    if not r.passed:
        raise typer.Exit(EXIT_FLAGGED)


@corpus_app.command("balance")
def balance_cmd(
    corpus: Annotated[Path, typer.Argument(help="Corpus folder (protocol.tsv + audio/).")],
    seed: Annotated[int, typer.Option(help="Random seed for which clips are dropped.")] = 0,
    threshold: Annotated[float, typer.Option(help="Balance until the audit is at or below this.")] = 0.58,
) -> None:
    """Drop clips until shortcut features no longer predict the label (rewrites protocol.tsv)."""
    from voxwarden.corpus.audit import balance_corpus
    from voxwarden.corpus.build import CorpusError

    try:
        b = balance_corpus(corpus, seed=seed, threshold=threshold)
    except CorpusError as e:
        err_console.print(f"[red]balance failed:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e
    typer.echo(json.dumps({"kept": b.kept, "dropped": b.dropped, "rounds": b.rounds,
                           "audit_before": round(b.audit_before, 4), "audit_after": round(b.audit_after, 4)}))


@corpus_app.command("heldout")
def heldout_cmd(
    corpus: Annotated[Path, typer.Argument(help="Corpus folder whose held-back bona fide clips are reused.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (audio/, protocol.tsv, manifest.json).")],
    system: Annotated[list[str], typer.Option(help="TTS system left out of training; repeatable.")],
    per_system: Annotated[int, typer.Option(help="Spoof clips per system.")] = 60,
    split: Annotated[str, typer.Option(help="Corpus split whose bona fide clips are used.")] = "val",
    seed: Annotated[int, typer.Option(help="Random seed; equal seeds give equal sets.")] = 0,
) -> None:
    """Build an unseen-generator test set: TTS systems absent from training vs the corpus's held-back bona fide."""
    from voxwarden.corpus.build import CorpusError
    from voxwarden.corpus.heldout import build_heldout_tts

    try:
        s = build_heldout_tts(out, corpus, system, per_system=per_system, seed=seed, split=split)
    except CorpusError as e:
        err_console.print(f"[red]held-out set failed:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e
    typer.echo(json.dumps({"out": str(s.out_dir), "bonafide": s.bonafide, "spoof": s.spoof}))
    for w in s.warnings[:10]:
        err_console.print(f"[yellow]warning:[/yellow] {w}")


@corpus_app.command("leave-out")
def leave_out_cmd(
    corpus: Annotated[Path, typer.Argument(help="Corpus folder (protocol.tsv + audio/).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (protocol.tsv, unseen.tsv, audio link).")],
    system: Annotated[list[str], typer.Option(help="Generator to leave out of training; repeatable.")],
    split: Annotated[str, typer.Option(help="Corpus split whose bona fide rows go beside the unseen clips.")] = "val",
) -> None:
    """Leave generators out: OUT/protocol.tsv without them, OUT/unseen.tsv = them + held-back bona fide."""
    from voxwarden.corpus.build import CorpusError
    from voxwarden.corpus.leaveout import leave_out

    try:
        s = leave_out(corpus, system, out, split=split)
    except CorpusError as e:
        err_console.print(f"[red]leave-out failed:[/red] {e}")
        raise typer.Exit(EXIT_FAILED) from e
    typer.echo(json.dumps({"out": str(s.out_dir), "kept": s.kept, "left_out": s.left_out,
                           "unseen_bonafide": s.unseen_bonafide, "systems": s.systems}))


if __name__ == "__main__":  # `python -m voxwarden.commands.corpus build ...` (used by recipes/)
    corpus_app()
