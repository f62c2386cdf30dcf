"""Helpers shared by the CLI commands: stderr console, progress bars, atomic output files, exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

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


@contextlib.contextmanager
def output_stream(out: Path | None) -> Iterator[IO[str]]:
    """stdout, or a file written atomically (temp file + rename) so a crash never leaves half a file."""
    if out is None:
        yield sys.stdout
        return
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
