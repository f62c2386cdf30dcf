"""iter_inputs: folder expansion, filters, order, symlink loops and bad entries."""

from __future__ import annotations

import os
from pathlib import Path

from voxwarden import audio
from voxwarden.audio import iter_inputs


def _tree(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    for rel in ["b.wav", "a.mp3", "notes.txt", "sub/c.flac", "sub/deeper/d.ogg", "sub/e.WAV"]:
        (root / rel).write_bytes(b"x")
    return root


def _rel(items, root: Path) -> list[str]:
    return [os.path.relpath(i.path, root) for i in items]


def test_flat_folder_filters_and_sorts(tmp_path):
    root = _tree(tmp_path)
    items = list(iter_inputs([str(root)]))
    assert _rel(items, root) == ["a.mp3", "b.wav"]
    assert all(i.ok for i in items)


def test_recursive_depth_first_sorted(tmp_path):
    root = _tree(tmp_path)
    items = list(iter_inputs([str(root)], recursive=True))
    assert _rel(items, root) == ["a.mp3", "b.wav", "sub/c.flac", "sub/deeper/d.ogg", "sub/e.WAV"]


def test_extension_filter_and_explicit_files(tmp_path):
    root = _tree(tmp_path)
    items = list(iter_inputs([str(root)], recursive=True, extensions={"flac", ".OGG"}))
    assert _rel(items, root) == ["sub/c.flac", "sub/deeper/d.ogg"]
    # explicit files are always taken, in the order given
    items = list(iter_inputs([str(root / "notes.txt"), str(root / "b.wav")]))
    assert _rel(items, root) == ["notes.txt", "b.wav"] and all(i.ok for i in items)


def test_missing_and_special_entries_become_error_items(tmp_path):
    root = _tree(tmp_path)
    (root / "dangling.wav").symlink_to(root / "gone.wav")
    os.mkfifo(root / "pipe.wav")
    items = list(iter_inputs([str(root / "missing.wav"), str(root)]))
    by = {os.path.basename(i.path): i for i in items}
    assert isinstance(by["missing.wav"].error, audio.UnreadableError)
    assert isinstance(by["dangling.wav"].error, audio.UnreadableError)
    assert "FIFO" in str(by["pipe.wav"].error)
    assert by["a.mp3"].ok and by["b.wav"].ok
    assert _rel(items, root)[1:] == ["a.mp3", "b.wav", "dangling.wav", "pipe.wav"]


def test_symlink_loop_is_reported_not_followed(tmp_path):
    root = _tree(tmp_path)
    (root / "sub" / "deeper" / "back").symlink_to(root)  # loop to the top
    (root / "sub" / "self").symlink_to(root / "sub")  # loop to itself
    items = list(iter_inputs([str(root)], recursive=True))
    errs = [i for i in items if i.error is not None]
    assert sorted(_rel(errs, root)) == ["sub/deeper/back", "sub/self"]
    assert all("symlink loop" in str(i.error) for i in errs)
    good = [i for i in items if i.ok]
    assert _rel(good, root) == ["a.mp3", "b.wav", "sub/c.flac", "sub/deeper/d.ogg", "sub/e.WAV"]


def test_alias_folder_not_scanned_twice(tmp_path):
    root = _tree(tmp_path)
    (root / "alias").symlink_to(root / "sub")
    items = list(iter_inputs([str(root)], recursive=True))
    reals = [os.path.realpath(i.path) for i in items]
    assert len(reals) == len(set(reals)) == 5


def test_unlistable_folder_is_an_error_item(tmp_path):
    root = _tree(tmp_path)
    # a path component that is a file makes listing fail even for root
    items = list(iter_inputs([str(root / "b.wav" / "x")]))
    assert len(items) == 1 and isinstance(items[0].error, audio.UnreadableError)


def test_deterministic(tmp_path):
    root = _tree(tmp_path)
    a = [i.path for i in iter_inputs([str(root)], recursive=True)]
    b = [i.path for i in iter_inputs([str(root)], recursive=True)]
    assert a == b


def test_unreadable_file_and_folder_as_other_user(open_tmp, as_nobody):
    (open_tmp / "ok.wav").write_bytes(b"x")
    (open_tmp / "locked.wav").write_bytes(b"x")
    (open_tmp / "locked.wav").chmod(0)
    (open_tmp / "closed").mkdir(mode=0o700)
    (open_tmp / "closed" / "inner.wav").write_bytes(b"x")

    def walk() -> str:
        items = iter_inputs([str(open_tmp)], recursive=True)
        return "\n".join(f"{os.path.basename(i.path)}|{type(i.error).__name__}|{i.error}" for i in items)

    lines = as_nobody(walk).splitlines()
    names = [ln.split("|")[0] for ln in lines]
    assert names == ["closed", "locked.wav", "ok.wav"], lines
    assert lines[0].split("|")[1] == "UnreadableError" and "permission denied" in lines[0]
    assert lines[1].split("|")[1] == "UnreadableError" and "permission denied" in lines[1]
    assert lines[2].split("|")[1] == "NoneType"
