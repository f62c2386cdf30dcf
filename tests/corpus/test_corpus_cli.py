"""The thin `corpus` typer app: build a tiny corpus from test-made audio, then audit it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voxwarden.commands.corpus import corpus_app


def test_cli_build_and_audit(tmp_path: Path) -> None:
    pytest.importorskip("pyworld")
    from test_corpus import make_fake_train  # tests/corpus is on sys.path (rootdir-relative import)

    train = make_fake_train(tmp_path / "train", speakers=3, per_speaker=2)
    runner = CliRunner()
    out = tmp_path / "c"
    args = ["build", "--out", str(out), "--size", "tiny", "--shared-train", str(train), "--no-tts",
            "--no-system-sources", "--seed", "1", "--match-spectra", "--copy-clips", "5"]
    res = runner.invoke(corpus_app, args)
    assert res.exit_code == 0, res.output
    assert (out / "protocol.tsv").is_file() and (out / "manifest.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["match_spectra"] is True
    assert manifest["plan"]["copy"] == 5 and manifest["plan"]["bonafide"] == 12  # only the named count changes
    copies = [ln for ln in (out / "protocol.tsv").read_text().splitlines() if "\tcopy-synthesis:" in ln]
    assert len(copies) == 5
    res = runner.invoke(corpus_app, ["audit", str(out), "--threshold", "1.0"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["passed"] is True and report["clips"] >= 10


def test_cli_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = str(tmp_path / "no")
    res = runner.invoke(corpus_app, ["build", "--out", str(tmp_path / "c"), "--shared-train", missing])
    assert res.exit_code == 3
    res = runner.invoke(corpus_app, ["build", "--out", str(tmp_path / "c"), "--size", "gigantic"])
    assert res.exit_code == 2
    res = runner.invoke(corpus_app, ["build", "--out", str(tmp_path / "c"), "--copy-clips", "-1"])
    assert res.exit_code == 2 and "clip counts" in res.output  # a clear error, nothing built
    assert not (tmp_path / "c").exists()
    res = runner.invoke(corpus_app, ["audit", str(tmp_path / "nothing")])
    assert res.exit_code == 2
    res = runner.invoke(corpus_app, ["build", "--out", str(tmp_path / "c"), "--tts-weight", "kokoro=lots"])
    assert res.exit_code == 3 and "SYSTEM=NUMBER" in res.output
    res = runner.invoke(corpus_app, ["build", "--out", str(tmp_path / "c"), "--size", "tiny", "--no-system-sources",
                                     "--tts-weight", "kokoro=-1"])
    assert res.exit_code != 0 and "TTS weights" in res.output
