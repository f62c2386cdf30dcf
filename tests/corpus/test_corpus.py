"""End-to-end tests of the corpus builder on a tiny corpus, plus protocol, LOGO splits and sources.

Fixtures are synthetic 'speech' written by the tests themselves (a fake shared/data/train layout), so the
tests pass without shared/ and without the Debian speech packages; when those packages are installed, a
second test builds the real tiny corpus from them.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxwarden.corpus import (
    PROTOCOL_COLUMNS,
    CorpusError,
    build_corpus,
    logo_splits,
    read_protocol,
    write_protocol,
)
from voxwarden.corpus.sources import SourceItem, asterisk_items, klettres_items, load_item

SR = 16000
pytest.importorskip("scipy")


def _voice(seconds: float, f0: float, seed: int) -> np.ndarray:
    """Harmonic 'voiced speech' with syllable-rate amplitude modulation and pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.08 * np.sin(2 * np.pi * 1.5 * t + seed))
    ph = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.exp(-k / 8) * np.sin(k * ph + rng.uniform(0, 6)) for k in range(1, 30))
    env = np.clip(np.sin(2 * np.pi * 2.5 * t + seed), 0, None) ** 0.5
    x = x * env + 0.01 * rng.standard_normal(len(t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def make_fake_train(root: Path, speakers: int = 4, per_speaker: int = 2) -> Path:
    """A shared/data/train look-alike: audio/*.flac + protocol.tsv with a licence column."""
    (root / "audio").mkdir(parents=True)
    lines = ["file\tlabel\tsystem\tspeaker\tlanguage\tsource_repo\tsource_path\tlicence"]
    for s in range(speakers):
        for i in range(per_speaker):
            name = f"tr_{s}{i}.flac"
            sf.write(root / "audio" / name, _voice(2.5 + i, 100 + 40 * s, s * 10 + i), SR, subtype="PCM_16")
            lines.append(f"{name}\tbonafide\tbonafide\tspk{s}\ten\ttest/repo\tx/{name}\tCC0-1.0")
    (root / "protocol.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def fake_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("pyworld")
    base = tmp_path_factory.mktemp("corpus")
    train = make_fake_train(base / "train")
    out = base / "out"
    summary = build_corpus(out, seed=3, size="tiny", shared_train=train, tts=False, system_sources=False)
    assert summary.clips == summary.bonafide + summary.spoof
    return out


def test_tiny_corpus_layout(fake_corpus: Path) -> None:
    rows = read_protocol(fake_corpus / "protocol.tsv")
    header = (fake_corpus / "protocol.tsv").read_text().splitlines()[0].split("\t")
    assert header == PROTOCOL_COLUMNS
    assert header[:5] == ["file", "label", "system", "speaker", "language"]  # same as shared/data/dev
    labels = {r["label"] for r in rows}
    assert labels == {"bonafide", "spoof"}
    assert all(r["system"] == "bonafide" for r in rows if r["label"] == "bonafide")
    spoof_systems = {r["system"] for r in rows if r["label"] == "spoof"}
    assert spoof_systems == {"world", "griffinlim", "lpc"}
    for r in rows:
        info = sf.info(str(fake_corpus / "audio" / r["file"]))
        assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
        assert 0.9 <= info.duration <= 2.0 + 0.85  # crop 1-2 s (tiny) plus padding
        assert r["split"] in {"train", "val"} and r["licence"]


def test_copy_synthesis_is_paired(fake_corpus: Path) -> None:
    rows = read_protocol(fake_corpus / "protocol.tsv")
    bona = {r["file"]: r for r in rows if r["label"] == "bonafide"}
    copies = [r for r in rows if r["source"].startswith("copy-synthesis")]
    assert copies
    for r in copies:
        partner = bona[r["pair"]]  # pair names the bona fide clip it was vocoded from
        assert (partner["speaker"], partner["language"], partner["split"]) == (
            r["speaker"], r["language"], r["split"])


def test_manifest_has_licences_and_counts(fake_corpus: Path) -> None:
    m = json.loads((fake_corpus / "manifest.json").read_text())
    rows = read_protocol(fake_corpus / "protocol.tsv")
    assert m["clips"] == len(rows)
    assert m["bonafide"] + m["spoof"] == len(rows)
    assert m["bonafide_sources"]["shared-train"]["licence"] == "CC0-1.0"
    assert m["bonafide_sources"]["shared-train"]["speakers"] >= 3
    for g in ("world", "griffinlim", "lpc"):
        assert m["generators"][g]["kind"] == "copy-synthesis" and m["generators"][g]["licence"]
        assert m["generators"][g]["clips"] >= 1


def test_build_is_deterministic(tmp_path: Path, fake_corpus: Path) -> None:
    pytest.importorskip("pyworld")
    train = make_fake_train(tmp_path / "train")
    out = tmp_path / "again"
    build_corpus(out, seed=3, size="tiny", shared_train=train, tts=False, system_sources=False)
    a = (fake_corpus / "protocol.tsv").read_text()
    b = (out / "protocol.tsv").read_text()
    assert a == b
    first = read_protocol(out / "protocol.tsv")[0]["file"]
    assert np.array_equal(sf.read(out / "audio" / first)[0], sf.read(fake_corpus / "audio" / first)[0])


def test_no_sources_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no bona fide source"):
        build_corpus(tmp_path / "x", size="tiny", shared_train=None, tts=False, system_sources=False)
    with pytest.raises(CorpusError, match="unknown size"):
        build_corpus(tmp_path / "x", size="huge")


@pytest.mark.skipif(not asterisk_items() and not klettres_items(), reason="Debian speech packages absent")
def test_clip_counts_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    for counts in ({"copies": 3}, {"copy": -1}, {"bonafide": 0}, {"tts": 2.5}, {"copy": True}, {"copy": 10**6}):
        with pytest.raises(CorpusError, match="clip counts"):
            build_corpus(tmp_path / "x", size="tiny", counts=counts)  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()


def test_tiny_corpus_from_system_sources(tmp_path: Path) -> None:
    pytest.importorskip("pyworld")
    s = build_corpus(tmp_path / "c", seed=0, size="tiny")
    rows = read_protocol(s.protocol)
    assert s.bonafide >= 8 and s.spoof >= 8
    sources = {r["source"] for r in rows if r["label"] == "bonafide"}
    assert any(x.startswith("asterisk") or x == "klettres" for x in sources)
    if shutil.which("espeak-ng"):
        assert any(r["source"].startswith("tts:") for r in rows)
        tts_rows = [r for r in rows if r["source"].startswith("tts:")]
        assert all(r["pair"] in {b["file"] for b in rows if b["label"] == "bonafide"} for r in tts_rows)


# ------------------------------------------------------------------------------------- protocol/logo


def _rows() -> list[dict[str, str]]:
    rows = []
    for i in range(6):
        split = "val" if i < 2 else "train"
        rows.append({"file": f"b{i}", "label": "bonafide", "system": "bonafide", "split": split})
    for s in ("A", "B", "C"):
        for i in range(3):
            split = "val" if i == 0 else "train"
            rows.append({"file": f"{s}{i}", "label": "spoof", "system": s, "split": split})
    return rows


def test_logo_splits() -> None:
    rows = _rows()
    folds = logo_splits(rows)
    assert [f.held_out for f in folds] == ["A", "B", "C"]
    for f in folds:
        assert not set(f.train) & set(f.test)
        assert all(rows[i]["system"] != f.held_out for i in f.train)
        assert all(rows[i]["split"] == "train" for i in f.train)
        held = {i for i, r in enumerate(rows) if r["system"] == f.held_out}
        assert held <= set(f.test)
        assert {rows[i]["label"] for i in f.test} == {"bonafide", "spoof"}
        assert {rows[i]["system"] for i in f.test} == {"bonafide", f.held_out}
    assert logo_splits(rows) == folds  # deterministic


def test_protocol_round_trip_and_errors(tmp_path: Path) -> None:
    rows = [{c: f"{c}-value" for c in PROTOCOL_COLUMNS}]
    rows[0]["licence"] = "has\ttab and\nnewline"
    p = tmp_path / "p.tsv"
    write_protocol(p, rows)
    back = read_protocol(p)
    assert back[0]["licence"] == "has tab and newline"
    assert back[0]["file"] == "file-value"
    (tmp_path / "bad.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(CorpusError, match="file"):
        read_protocol(tmp_path / "bad.tsv")
    with pytest.raises(CorpusError):
        read_protocol(tmp_path / "missing.tsv")


# ------------------------------------------------------------------------------------------ sources


def test_asterisk_layout_parsing(tmp_path: Path) -> None:
    """Transcripts come from the doc .txt.gz; tones are skipped; WAV is 8 kHz, G.722 16 kHz."""
    av = pytest.importorskip("av")
    root, doc = tmp_path / "sounds", tmp_path / "doc"
    voice = root / "en_US_f_Test"
    voice.mkdir(parents=True)
    (root / "en").symlink_to(voice)
    (doc / "asterisk-core-sounds-en").mkdir(parents=True)
    with gzip.open(doc / "asterisk-core-sounds-en" / "core-sounds-en.txt.gz", "wt") as f:
        f.write("; header\nhello: Hello there.\nbeep: [a beep]\n")
    x = _voice(1.2, 180, 1)
    sf.write(voice / "hello.wav", x[::2], 8000, subtype="PCM_16")
    sf.write(voice / "beep.wav", x[::2], 8000, subtype="PCM_16")
    with av.open(str(voice / "hello.g722"), "w", format="g722") as out:
        st = out.add_stream("g722", rate=16000)
        st.layout = "mono"
        frame = av.AudioFrame.from_ndarray((x * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate = 16000
        for pkt in list(st.encode(frame)) + list(st.encode(None)):
            out.mux(pkt)
    items = asterisk_items(root, doc)
    assert {(i.source, i.channel, i.text) for i in items} == {
        ("asterisk-en-wav", "resample:8k", "Hello there."), ("asterisk-en-g722", "g722", "Hello there.")}
    assert all(i.speaker == "asterisk-test" for i in items)
    for it in items:
        y = load_item(it)
        assert abs(len(y) / SR - 1.2) < 0.05


def test_load_item_errors(tmp_path: Path) -> None:
    from voxwarden.audio.errors import AudioError

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 10)
    for p in (bad, tmp_path / "missing.wav"):
        it = SourceItem("k", "s", p, "spk", "en", "x", 16000)
        with pytest.raises(AudioError):
            load_item(it)


def test_missing_generators_are_warned_about() -> None:
    from voxwarden.corpus.build import EXPECTED_TTS_SYSTEMS, missing_tts_warnings

    assert missing_tts_warnings(set(EXPECTED_TTS_SYSTEMS)) == []
    w = missing_tts_warnings({"espeak-ng", "flite-cg"})
    assert len(w) == len(EXPECTED_TTS_SYSTEMS) - 2
    assert any("piper-vits" in x for x in w) and not any("espeak-ng" in x for x in w)


@pytest.mark.skipif(not asterisk_items() and not klettres_items(), reason="Debian speech packages absent")
def test_tts_weights_draw_a_system_more_often(tmp_path: Path) -> None:
    pytest.importorskip("pyworld")
    if not shutil.which("flite") or not shutil.which("espeak-ng"):
        pytest.skip("flite and espeak-ng needed")

    def tts_counts(weights: dict[str, float] | None, name: str) -> dict[str, int]:
        s = build_corpus(tmp_path / name, seed=0, size="tiny", tts_weights=weights, balance=False)
        rows = read_protocol(s.protocol)
        counts: dict[str, int] = {}
        for r in rows:
            if r["source"].startswith("tts:"):
                counts[r["system"]] = counts.get(r["system"], 0) + 1
        return counts

    plain, heavy = tts_counts(None, "plain"), tts_counts({"flite-cg": 20.0}, "heavy")
    assert heavy.get("flite-cg", 0) > plain.get("flite-cg", 0)
    assert sum(heavy.values()) == sum(plain.values())  # the same number of TTS clips, shared differently
    manifest = json.loads((tmp_path / "heavy" / "manifest.json").read_text())
    assert manifest["tts_weights"] == {"flite-cg": 20.0}
    s = build_corpus(tmp_path / "typo", seed=0, size="tiny", tts_weights={"kokor": 3.0}, balance=False)
    assert any("not installed here: kokor" in w for w in s.warnings)
    with pytest.raises(CorpusError, match="TTS weights"):
        build_corpus(tmp_path / "bad", size="tiny", tts_weights={"kokoro": 0})


def test_match_spectra_changes_only_the_copies_and_is_recorded(tmp_path: Path, fake_corpus: Path) -> None:
    pytest.importorskip("pyworld")
    train = make_fake_train(tmp_path / "train")
    out = tmp_path / "matched"
    build_corpus(out, seed=3, size="tiny", shared_train=train, tts=False, system_sources=False, match_spectra=True)
    assert json.loads((out / "manifest.json").read_text())["match_spectra"] is True
    assert json.loads((fake_corpus / "manifest.json").read_text())["match_spectra"] is False
    rows = {r["file"]: r for r in read_protocol(fake_corpus / "protocol.tsv")}
    differ = {"bonafide": 0, "spoof": 0}
    for r in read_protocol(out / "protocol.tsv"):
        if r["file"] in rows:
            a, b = sf.read(out / "audio" / r["file"])[0], sf.read(fake_corpus / "audio" / r["file"])[0]
            differ[r["label"]] += int(len(a) != len(b) or not np.array_equal(a, b))
    assert differ["bonafide"] == 0 and differ["spoof"] > 0
