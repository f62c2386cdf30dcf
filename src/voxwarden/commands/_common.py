"""Helpers shared by the CLI commands: stderr console, progress bars, atomic output files, exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

EXIT_OK = 0
EXIT_FLAGGED = 1
EXIT_FAILED = 2  # wins over EXIT_FLAGGED
EXIT_USAGE = 3

err_console = Console(stderr=True)


def exit_code(flagged: bool, failed: bool) -> int:
    """0 clean, 1 something flagged, 2 some inputs failed (2 wins over 1)."""
    if failed:
        return EXIT_FAILED
    return EXIT_FLAGGED if flagged else EXIT_OK


def progress_bar(label: str) -> Progress:
    """A rich progress bar on stderr (hidden when stderr is not a terminal and CI is quiet)."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
        disable=not err_console.is_terminal and os.environ.get("VOXWARDEN_PROGRESS") != "1",
    )


def _output_problem(out: Path, *, directory: bool) -> str | None:
    """Why `out` cannot be written (None when it can): creates missing parent folders on the way."""
    folder = out if directory else out.parent
    if not directory and out.is_dir():
        return f"{out} is a directory"
    if directory and out.exists() and not out.is_dir():
        return f"{out} exists and is not a directory"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        return f"{folder} is not a directory"
    except OSError as e:
        return f"cannot create {folder} ({e.strerror or e})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable"
    return None


def check_output(out: Path | None, *, directory: bool = False, option: str = "--out") -> None:
    """Refuse an output path that cannot be written *before* any work starts (exit 3), so an hour of
    scanning is never lost to a typo at the end. ``directory=True`` for commands that write a folder."""
    if out is None:
        return
    problem = _output_problem(Path(out), directory=directory)
    if problem is not None:
        err_console.print(f"[red]usage:[/red] {option}: {problem}")
        raise typer.Exit(EXIT_USAGE)


@contextlib.contextmanager
def output_stream(out: Path | None) -> Iterator[IO[str]]:
    """stdout, or a file written atomically (temp file + rename) so a crash never leaves half a file.
    Call `check_output(out)` first; a write that still fails (disk full, a race) exits 2 with the reason."""
    if out is None:
        yield sys.stdout
        return
    out = Path(out)
    tmp: str | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as e:
        err_console.print(f"[red]error:[/red] cannot write {out}: {e.strerror or e}")
        raise typer.Exit(EXIT_FAILED) from e
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
