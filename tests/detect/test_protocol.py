"""Protocol readers: our TSV, ASVspoof 2019 / 2021 keys, In-the-Wild CSV, malformed lines, paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxwarden.detect.protocol import ProtocolError, ProtocolRow, read_protocol, resolve_audio


def _write(tmp_path: Path, text: str, name: str = "p.txt") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_voxwarden_tsv(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "file\tlabel\tsystem\tspeaker\tlanguage\tsource_repo\n"
        "a.flac\tspoof\tTortoise\tspk1\ten\tx/y\n"
        "b.flac\tbonafide\tbonafide\tspk2\ten\tx/z\n",
    )
    rows = read_protocol(p)
    assert rows == [
        ProtocolRow("a.flac", "spoof", "Tortoise", "spk1", "en", {"source_repo": "x/y"}),
        ProtocolRow("b.flac", "bonafide", "bonafide", "spk2", "en", {"source_repo": "x/z"}),
    ]


def test_asvspoof2019(tmp_path: Path) -> None:
    p = _write(tmp_path, "LA_0079 LA_T_1138215 - - bonafide\nLA_0079 LA_T_1271820 - A01 spoof\n\n")
    rows = read_protocol(p)
    assert [(r.file, r.label, r.system, r.speaker) for r in rows] == [
        ("LA_T_1138215.flac", "bonafide", "bonafide", "LA_0079"),
        ("LA_T_1271820.flac", "spoof", "A01", "LA_0079"),
    ]


def test_asvspoof2021_la_and_df(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval\n"
        "LA_0023 DF_E_2000011 nocodec asvspoof A14 spoof notrim progress traditional_vocoder - - - -\n"
        "LA_0043 DF_E_2000026 mp3m4a asvspoof - bonafide notrim eval bonafide - - - -\n",
    )
    rows = read_protocol(p)
    assert rows[0].file == "LA_E_9332881.flac" and rows[0].system == "A07"
    assert rows[0].extra == {"codec": "alaw", "transmission": "ita_tx", "trim": "notrim", "subset": "eval"}
    assert rows[1].extra["vocoder"] == "traditional_vocoder" and rows[1].extra["subset"] == "progress"
    assert rows[2].label == "bonafide" and rows[2].system == "bonafide"


def test_asvspoof5(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "T_4850 T_0000000000 F - - - AC3 A05 spoof -\n"
        "T_1138 T_0000000001 M mp3 2 7 - - bonafide -\n",
    )
    rows = read_protocol(p)
    assert [(r.file, r.label, r.system, r.speaker) for r in rows] == [
        ("T_0000000000.flac", "spoof", "A05", "T_4850"),
        ("T_0000000001.flac", "bonafide", "bonafide", "T_1138"),
    ]
    assert rows[0].extra == {"gender": "F", "attack_tag": "AC3"}
    assert rows[1].extra["codec"] == "mp3"


def test_in_the_wild_csv(tmp_path: Path) -> None:
    p = _write(tmp_path, "file,speaker,label\n0.wav,Alec Guinness,spoof\n1.wav,Alec Guinness,bona-fide\n")
    rows = read_protocol(p)
    assert [(r.file, r.label, r.system, r.speaker) for r in rows] == [
        ("0.wav", "spoof", "in-the-wild", "Alec Guinness"),
        ("1.wav", "bonafide", "bonafide", "Alec Guinness"),
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("file\tlabel\na.flac\tmaybe\n", r"p\.txt:2: unknown label"),
        ("file\tlabel\na.flac\tspoof\tx\n", r"p\.txt:2: 3 columns"),
        ("LA_1 LA_T_1 - - bonafide\nLA_1 LA_T_2 - spoof\n", r"p\.txt:2: expected 5 columns"),
        ("a b c\n", "unrecognised protocol layout"),
        ("", "empty protocol"),
        ("name\tkind\na\tb\n", "header with 'file' and 'label'"),
        ("file\tlabel\n", "no trials"),
        ("file\tlabel\n\tspoof\n", r"p\.txt:2: empty file name"),
    ],
)
def test_malformed(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        read_protocol(_write(tmp_path, text))


def test_unreadable_and_binary(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="cannot read"):
        read_protocol(tmp_path / "missing.tsv")
    b = tmp_path / "bin"
    b.write_bytes(b"\x00\x01\x02fLaC")
    with pytest.raises(ProtocolError, match="binary"):
        read_protocol(b)
    latin = tmp_path / "latin"
    latin.write_bytes("file\tlabel\nä.flac\tspoof\n".encode("latin-1"))
    with pytest.raises(ProtocolError, match="UTF-8"):
        read_protocol(latin)


def test_resolve_audio(tmp_path: Path) -> None:
    (tmp_path / "flac").mkdir()
    (tmp_path / "flac" / "LA_T_1.flac").write_bytes(b"x")
    (tmp_path / "x.wav").write_bytes(b"x")
    got = resolve_audio(ProtocolRow("LA_T_1.flac", "spoof", "A01"), tmp_path)
    assert got == tmp_path / "flac" / "LA_T_1.flac"
    assert resolve_audio(ProtocolRow("x.flac", "spoof", "A01"), tmp_path) == tmp_path / "x.wav"
    assert resolve_audio(ProtocolRow("none.flac", "spoof", "A01"), tmp_path) == tmp_path / "none.flac"
    for bad in ("../etc/passwd", "/etc/passwd", "a/../../b.flac"):
        with pytest.raises(ProtocolError, match="escapes"):
            resolve_audio(ProtocolRow(bad, "spoof", "A01"), tmp_path)



def test_fold_dir_refuses_names_that_leave_the_folder(tmp_path) -> None:
    from voxwarden.detect.protocol import ProtocolError, fold_dir

    assert fold_dir(tmp_path, "kokoro") == tmp_path / "kokoro"
    assert fold_dir(tmp_path, "vocos+hifigan-v2") == tmp_path / "vocos+hifigan-v2"
    for bad in ("", " ", ".", "..", "../x", "a/b", "/etc", "a\\b", "a\0b"):
        with pytest.raises(ProtocolError, match="cannot name a folder"):
            fold_dir(tmp_path, bad)
