"""The unseen-generator test set: held-back bona fide reused, new TTS spoofs with the corpus treatment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
from test_corpus import make_fake_train
from typer.testing import CliRunner

from voxwarden.cli import app
from voxwarden.corpus import CorpusError, build_corpus, read_protocol
from voxwarden.corpus.heldout import build_heldout_tts

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("pyworld")
    base = tmp_path_factory.mktemp("heldout")
    out = base / "corpus"
    build_corpus(out, seed=1, size="tiny", shared_train=make_fake_train(base / "train"), tts=False,
                 system_sources=False)
    return out


def _split(corpus: Path) -> str:
    splits = {r["split"] for r in read_protocol(corpus / "protocol.tsv") if r["label"] == "bonafide"}
    return "val" if "val" in splits else "train"


def test_heldout_set(corpus: Path, tmp_path: Path) -> None:
    split = _split(corpus)
    s = build_heldout_tts(tmp_path / "h", corpus, ["espeak-ng"], per_system=3, seed=0, split=split)
    rows = read_protocol(s.protocol)
    bona = [r for r in rows if r["label"] == "bonafide"]
    spoof = [r for r in rows if r["label"] == "spoof"]
    src = [r for r in read_protocol(corpus / "protocol.tsv") if r["label"] == "bonafide" and r["split"] == split]
    assert {r["file"] for r in bona} == {r["file"] for r in src}
    assert len(spoof) == 3 and s.spoof == {"espeak-ng": 3}
    assert {r["system"] for r in spoof} == {"espeak-ng"}
    assert all(r["pair"] in {b["file"] for b in bona} for r in spoof)
    for r in rows:
        x, sr = sf.read(tmp_path / "h" / "audio" / r["file"])
        assert sr == 16000 and 0.5 < len(x) / sr < 7.0 and abs(x).max() <= 1.0
    man = json.loads((tmp_path / "h" / "manifest.json").read_text())
    assert man["spoof"] == {"espeak-ng": 3} and man["bonafide"] == len(bona)
    again = build_heldout_tts(tmp_path / "h2", corpus, ["espeak-ng"], per_system=3, seed=0, split=split)
    a = sorted(sf.read(tmp_path / "h" / "audio" / r["file"])[0].sum() for r in spoof)
    b = sorted(sf.read(tmp_path / "h2" / "audio" / r["file"])[0].sum()
               for r in read_protocol(again.protocol) if r["label"] == "spoof")
    assert a == pytest.approx(b)


def test_heldout_rebuild_that_fails_leaves_no_stale_protocol(corpus: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import voxwarden.corpus.tts as tts

    out = tmp_path / "h"
    build_heldout_tts(out, corpus, ["espeak-ng"], per_system=2, split=_split(corpus))
    assert (out / "protocol.tsv").is_file()

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("engine crashed")

    monkeypatch.setattr(tts, "synthesize", boom)
    with pytest.raises(RuntimeError):
        build_heldout_tts(out, corpus, ["espeak-ng"], per_system=2, split=_split(corpus))
    assert not (out / "protocol.tsv").exists() and not (out / "manifest.json").exists()


def test_heldout_errors(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not installed"):
        build_heldout_tts(tmp_path / "x", corpus, ["no-such-tts"], per_system=2)
    with pytest.raises(CorpusError, match="no bona fide"):
        build_heldout_tts(tmp_path / "x", corpus, ["espeak-ng"], split="nosuchsplit")
    with pytest.raises(CorpusError, match="cannot read"):
        build_heldout_tts(tmp_path / "x", tmp_path / "missing", ["espeak-ng"])


def test_heldout_cli(corpus: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["corpus", "heldout", str(corpus), "--out", str(tmp_path / "c"), "--system",
                                 "espeak-ng", "--per-system", "2", "--split", _split(corpus)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["spoof"] == {"espeak-ng": 2}
    bad = CliRunner().invoke(app, ["corpus", "heldout", str(corpus), "--out", str(tmp_path / "d"),
                                   "--system", "nope"])
    assert bad.exit_code != 0
