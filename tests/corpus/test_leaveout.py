"""`voxwarden.corpus.leaveout`: a training protocol without some generators and an unseen set made of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from voxwarden.commands.corpus import corpus_app
from voxwarden.corpus.build import CorpusError, read_protocol, write_protocol
from voxwarden.corpus.leaveout import leave_out


def _corpus(root: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A corpus folder with one short FLAC per (label, system, split) row."""
    (root / "audio").mkdir(parents=True)
    out = []
    for i, (label, system, split) in enumerate(rows):
        name = f"c{i:03d}.flac"
        sf.write(root / "audio" / name, np.zeros(1600, dtype=np.float32), 16000)
        out.append({"file": name, "label": label, "system": system, "speaker": f"s{i % 3}", "split": split})
    write_protocol(root / "protocol.tsv", out)
    return root


ROWS = [("bonafide", "bonafide", "train")] * 3 + [("bonafide", "bonafide", "val")] * 2 + [
    ("spoof", "world", "train"), ("spoof", "world", "val"), ("spoof", "voc-a", "train"), ("spoof", "voc-a", "val"),
    ("spoof", "voc-b", "train"), ("spoof", "voc-b", "val")]


def test_leave_out_splits_rows_and_links_audio(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c", ROWS)
    s = leave_out(corpus, ["voc-a"], tmp_path / "o")
    kept = read_protocol(s.protocol)
    unseen = read_protocol(s.unseen)
    assert [r["system"] for r in kept].count("voc-a") == 0 and len(kept) == len(ROWS) - 2
    # every voc-a row (both splits) + the val bona fide, in the corpus's order
    assert [(r["system"], r["split"]) for r in unseen] == [("voc-a", "train"), ("voc-a", "val"),
                                                           ("bonafide", "val"), ("bonafide", "val")]
    assert all((tmp_path / "o" / "audio" / r["file"]).is_file() for r in kept + unseen)
    info = json.loads((tmp_path / "o" / "leave-out.json").read_text())
    assert info["left_out_by_system"] == {"voc-a": 2} and info["kept"] == 9 and info["unseen_bonafide"] == 2
    # the source protocol is untouched, and a second run gives the same files (the audio link is reused)
    assert len(read_protocol(corpus / "protocol.tsv")) == len(ROWS)
    before = (s.protocol.read_bytes(), s.unseen.read_bytes())
    s2 = leave_out(corpus, ["voc-a"], tmp_path / "o")
    assert (s2.protocol.read_bytes(), s2.unseen.read_bytes()) == before
    # two systems at once
    s3 = leave_out(corpus, ["voc-a", "voc-b", "voc-a"], tmp_path / "o3")
    assert s3.systems == ["voc-a", "voc-b"] and s3.left_out == 4
    assert {r["system"] for r in read_protocol(s3.protocol)} == {"bonafide", "world"}


@pytest.mark.parametrize(
    ("systems", "message"),
    [([], "at least one system"), ([""], "at least one system"), (["bonafide"], "real-speech label"),
     (["nope"], "systems not in"), (["world", "voc-a", "voc-b"], "no bona fide or no spoof")],
)
def test_leave_out_rejects_bad_systems_and_writes_nothing(tmp_path: Path, systems: list[str], message: str) -> None:
    corpus = _corpus(tmp_path / "c", ROWS)
    with pytest.raises(CorpusError, match=message):
        leave_out(corpus, systems, tmp_path / "o")
    assert not (tmp_path / "o" / "protocol.tsv").exists()


def test_leave_out_rejects_bad_folders(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c", ROWS)
    with pytest.raises(CorpusError, match="no protocol.tsv"):
        leave_out(tmp_path / "missing", ["voc-a"], tmp_path / "o")
    with pytest.raises(CorpusError, match="must not be the corpus itself"):
        leave_out(corpus, ["voc-a"], corpus)
    (tmp_path / "o" / "audio").mkdir(parents=True)  # a real folder, not the corpus's audio
    with pytest.raises(CorpusError, match="is not a link"):
        leave_out(corpus, ["voc-a"], tmp_path / "o")
    assert not (tmp_path / "o" / "protocol.tsv").exists()
    no_val = _corpus(tmp_path / "nv", [r for r in ROWS if not (r[0] == "bonafide" and r[2] == "val")])
    with pytest.raises(CorpusError, match="no bona fide row in split"):
        leave_out(no_val, ["voc-a"], tmp_path / "o2")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "protocol.tsv").write_text("file\tlabel\nx.flac\tspoof\n")
    with pytest.raises(CorpusError, match="'system' and 'split'"):
        leave_out(bad, ["voc-a"], tmp_path / "o3")
    short = _corpus(tmp_path / "short", ROWS)
    with (short / "protocol.tsv").open("a") as f:
        f.write("x.flac\tspoof\n")  # a truncated last line
    with pytest.raises(CorpusError, match="line 13 has fewer columns"):
        leave_out(short, ["voc-a"], tmp_path / "o4")
    assert not (tmp_path / "o4").exists()


def test_cli_leave_out(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c", ROWS)
    runner = CliRunner()
    res = runner.invoke(corpus_app, ["leave-out", str(corpus), "--system", "world", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"out": str(tmp_path / "o"), "kept": 9, "left_out": 2, "unseen_bonafide": 2,
                                      "systems": ["world"]}
    res = runner.invoke(corpus_app, ["leave-out", str(corpus), "--system", "nope", "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "nope" in res.output


def test_building_a_corpus_into_a_leave_out_folder_refuses_and_keeps_the_parent_audio(tmp_path: Path) -> None:
    """A build replaces its folder's audio; through a leave-out's link it would delete the parent corpus's clips."""
    from voxwarden.corpus.build import build_corpus

    corpus = _corpus(tmp_path / "c", ROWS)
    view = tmp_path / "view"
    leave_out(corpus, ["world"], view)
    before = sorted(p.name for p in (corpus / "audio").iterdir())
    with pytest.raises(CorpusError, match="leave-out view"):
        build_corpus(view, size="tiny")
    assert sorted(p.name for p in (corpus / "audio").iterdir()) == before
    # a link alone (leave-out.json gone) is refused too
    (view / "leave-out.json").unlink()
    with pytest.raises(CorpusError, match="leave-out view"):
        build_corpus(view, size="tiny")
    assert sorted(p.name for p in (corpus / "audio").iterdir()) == before
