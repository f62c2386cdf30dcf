"""Expand command-line inputs (files and folders) into a deterministic list of files to scan.

* Explicit file arguments are always taken, whatever their extension; arguments are kept in the order
  given. Folder members are taken only if their extension is in `extensions` (default `MEDIA_EXTENSIONS`).
* Folders are listed in sorted (byte-wise name) order; subfolders are entered only with `recursive=True`,
  in that same sorted order, depth first.
* Symlinks are followed. A folder whose real path is one of the folders we are currently inside is a
  symlink loop: it is reported as an item with UnreadableError and not entered. A folder reached a second
  time by another path (not a loop) is skipped silently, and so is a file already yielded under the same
  real path, so nothing is scanned twice.
* One bad entry never stops the walk: missing paths, dangling symlinks, FIFOs/devices, unreadable files or
  folders come out as `InputItem(path, error)`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .decode import check_readable_file
from .errors import AudioError, UnreadableError

__all__ = ["InputItem", "iter_inputs", "MEDIA_EXTENSIONS"]

MEDIA_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".mp3",
        ".aac",
        ".m4a",
        ".m4b",
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".ogg",
        ".oga",
        ".opus",
        ".amr",
        ".3gp",
        ".3g2",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".caf",
        ".wma",
        ".wmv",
        ".avi",
        ".ts",
        ".mpg",
        ".mpeg",
        ".mp2",
        ".ac3",
        ".spx",
    }
)


@dataclass(frozen=True)
class InputItem:
    """One input file; `error` is set when it cannot be read (the caller reports it and moves on)."""

    path: str
    error: AudioError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _norm_exts(extensions: set[str] | frozenset[str] | None) -> frozenset[str]:
    if extensions is None:
        return MEDIA_EXTENSIONS
    return frozenset(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)


def _file_item(path: str, seen_files: set[str]) -> InputItem | None:
    try:
        check_readable_file(path)
    except UnreadableError as e:
        return InputItem(path, e)
    real = os.path.realpath(path)
    if real in seen_files:
        return None
    seen_files.add(real)
    return InputItem(path, None)


def _walk(
    folder: str,
    exts: frozenset[str],
    recursive: bool,
    stack: list[str],
    seen_dirs: set[str],
    seen_files: set[str],
) -> Iterator[InputItem]:
    real = os.path.realpath(folder)
    if real in stack:
        yield InputItem(folder, UnreadableError(f"{folder}: symlink loop (leads back to {real})"))
        return
    if real in seen_dirs:
        return
    seen_dirs.add(real)
    try:
        names = sorted(os.listdir(folder))
    except PermissionError:
        yield InputItem(folder, UnreadableError(f"{folder}: permission denied (cannot list folder)"))
        return
    except OSError as e:
        yield InputItem(folder, UnreadableError(f"{folder}: cannot list folder ({e.strerror or e})"))
        return
    stack.append(real)
    try:
        for name in names:
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
                is_dir = stat.S_ISDIR(st.st_mode)
            except OSError:
                is_dir = False  # dangling link, loop of file links, ...: judged below by extension
            if is_dir:
                if recursive:
                    yield from _walk(path, exts, recursive, stack, seen_dirs, seen_files)
                continue
            if os.path.splitext(name)[1].lower() not in exts:
                continue
            item = _file_item(path, seen_files)
            if item is not None:
                yield item
    finally:
        stack.pop()


def iter_inputs(
    paths: Iterable[str],
    *,
    recursive: bool = False,
    extensions: set[str] | None = None,
) -> Iterator[InputItem]:
    """Yield one `InputItem` per file to scan (see module docstring); never raises for a bad entry."""
    exts = _norm_exts(extensions)
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()
    for raw in paths:
        path = os.fspath(raw)
        try:
            is_dir = os.path.isdir(path)
        except (OSError, ValueError):
            is_dir = False
        if is_dir:
            yield from _walk(path, exts, recursive, [], seen_dirs, seen_files)
            continue
        item = _file_item(path, seen_files)
        if item is not None:
            yield item
