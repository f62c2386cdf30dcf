"""`voxwarden scan` end to end in a subprocess: formats, the JSONL contract, exit codes, bad inputs."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "audio"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "voxwarden", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_scan_examples_jsonl_contract():
    p = run("scan", str(EXAMPLES), "--format", "jsonl")
    assert p.returncode in (0, 1), p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(rows) == 5
    for r in rows:
        assert {"path", "score", "probability", "decision", "segments", "error"} <= set(r)
        assert r["error"] is None
        assert r["decision"] in ("synthetic", "bonafide")
        assert 0.0 <= r["probability"] <= 1.0
        assert all({"start", "end", "score"} <= set(s) for s in r["segments"])
    flagged = any(r["decision"] == "synthetic" for r in rows)
    assert p.returncode == (1 if flagged else 0)


def test_bad_inputs_give_exit_2_and_typed_errors(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.mp3").write_text("hello " * 100)
    (tmp_path / "loop").symlink_to(tmp_path)  # a symlink loop in the folder
    weird = tmp_path / "we ird;$(rm -rf x)'.wav"
    weird.write_bytes(b"\x00" * 10)
    out = tmp_path / "res" / "out.jsonl"
    p = run("scan", str(tmp_path), "--recursive", "--format", "jsonl", "--out", str(out),
            str(EXAMPLES / "human-allison-prompt.flac"), str(tmp_path / "missing.ogg"))
    assert p.returncode == 2, p.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    errors = {Path(r["path"]).name: r["error"]["type"] for r in rows if r["error"]}
    assert errors["empty.wav"] == "empty_file"
    assert errors["notes.mp3"] == "not_media"
    assert errors["missing.ogg"] == "unreadable"
    assert weird.name in errors
    good = [r for r in rows if not r["error"]]
    assert len(good) == 1 and good[0]["probability"] is not None
    assert not list(out.parent.glob(".out.jsonl.*"))  # no temp file left behind


def test_threshold_forces_flag_exit_1_and_csv():
    p = run("scan", str(EXAMPLES / "espeak-bank-call.m4a"), "--threshold", "0.0001", "--format", "csv")
    assert p.returncode == 1, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert rows[0]["decision"] == "synthetic"


def test_table_output_and_jobs():
    p = run("scan", str(EXAMPLES), "--jobs", "2")
    assert p.returncode in (0, 1), p.stderr
    assert "human-allison-prompt.flac" in p.stdout and "5 inputs" in p.stdout


@pytest.mark.parametrize("args", [["--model", "no-such-model"], ["--threshold", "1.5"]])
def test_usage_and_model_errors_exit_3(args):
    p = run("scan", str(EXAMPLES / "espeak-bank-call.m4a"), *args)
    assert p.returncode == 3
    assert "error" in p.stderr.lower()


def test_version_lists_default_model():
    p = run("version")
    assert p.returncode == 0 and "default" in p.stdout


def test_unwritable_out_is_refused_before_any_work(tmp_path):
    """A typo in --out must cost seconds, not the whole batch: exit 3 before scanning."""
    (tmp_path / "taken").mkdir()
    (tmp_path / "afile").write_text("x")
    clip = str(EXAMPLES / "human-allison-prompt.flac")
    protocol = tmp_path / "p.tsv"
    protocol.write_text("file\tlabel\tsystem\nhuman-allison-prompt.flac\tbonafide\tbonafide\n")
    for args, needle in (
        (["scan", clip, "--format", "jsonl", "--out", str(tmp_path / "taken")], "is a directory"),
        (["scan", clip, "--out", str(tmp_path / "afile" / "x.jsonl")], "is not a directory"),
        (["verify", clip, "--out", str(tmp_path / "taken")], "is a directory"),
        (["eval", "--protocol", str(protocol), "--audio-dir", str(EXAMPLES), "--out", str(tmp_path / "afile")],
         "is not a directory"),
    ):
        p = run(*args)
        err = " ".join(p.stderr.split())  # the console wraps long paths
        assert p.returncode == 3 and needle in err and "Traceback" not in err, (args, p.stderr)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["afile", "p.tsv", "taken"]


def test_output_stream_reports_a_failed_write_and_leaves_no_temp(tmp_path, monkeypatch):
    import typer

    from voxwarden.commands import _common

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_common.os, "replace", disk_full)
    with pytest.raises(typer.Exit) as e, _common.output_stream(tmp_path / "out.jsonl") as f:
        f.write("{}\n")
    assert e.value.exit_code == 2 and list(tmp_path.iterdir()) == []
