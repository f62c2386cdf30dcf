"""Watermark files and CLI: embed/detect files (rate, channels kept), JSON output, exit codes, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_watermark import PAYLOAD, speechlike
from typer.testing import CliRunner

from voxwarden.audio.errors import AudioError, EmptyFileError, NotMediaError, UnreadableError
from voxwarden.commands.mark import mark_app, parse_payload
from voxwarden.mark import Marker, payload_from_ids

runner = CliRunner()


@pytest.fixture(scope="module")
def stereo_wav(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("wm") / "in.wav"
    x = speechlike(3.0, 22050, seed=21)
    sf.write(p, np.stack([x, 0.7 * x], axis=1), 22050, subtype="PCM_16")
    return p


@pytest.fixture(scope="module")
def key_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("key") / "wm.key"
    res = runner.invoke(mark_app, ["keygen", str(p)])
    assert res.exit_code == 0, res.output
    return p


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3"])
def test_embed_file_keeps_rate_and_channels(tmp_path: Path, stereo_wav: Path, suffix: str) -> None:
    m = Marker(bytes(range(32)))
    out = tmp_path / f"out{suffix}"
    check = m.embed_file(stereo_wav, out, PAYLOAD)  # self-check on the written file
    assert check.present and check.payload == PAYLOAD
    r = Marker(bytes(range(32))).detect_file(out)
    assert r.present and r.payload == PAYLOAD and not Marker().detect_file(out).present
    if suffix != ".mp3":
        info = sf.info(str(out))
        assert info.samplerate == 22050 and info.channels == 2


def test_cli_embed_detect_json(tmp_path: Path, stereo_wav: Path, key_file: Path) -> None:
    out = tmp_path / "marked.flac"
    res = runner.invoke(mark_app, ["embed", str(stereo_wav), str(out), "--payload", "0a0b0c0d",
                                   "--key", str(key_file)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(mark_app, ["detect", str(out), "--key", str(key_file), "--format", "json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout.strip().splitlines()[-1])
    assert d["present"] is True and d["payload"] == "0a0b0c0d"
    assert 0.99 < d["confidence"] <= 1.0
    assert d["spans"] and all(len(s) == 2 and s[0] < s[1] for s in d["spans"])
    # the demo key does not see a mark made with a private key
    res = runner.invoke(mark_app, ["detect", str(out), "--format", "json"])
    assert res.exit_code == 1
    d = json.loads(res.stdout.strip().splitlines()[-1])
    assert d["present"] is False and d["payload"] is None and d["spans"] == []


def test_cli_ids_payload_and_text_output(tmp_path: Path, stereo_wav: Path) -> None:
    out = tmp_path / "marked.wav"
    res = runner.invoke(mark_app, ["embed", str(stereo_wav), str(out), "--provider", "acme",
                                   "--content-id", "c-1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(mark_app, ["detect", str(out)])
    assert res.exit_code == 0
    assert payload_from_ids("acme", "c-1").hex() in res.stdout


def test_cli_unmarked_and_bad_inputs(tmp_path: Path, stereo_wav: Path, key_file: Path) -> None:
    res = runner.invoke(mark_app, ["detect", str(stereo_wav), "--format", "json"])
    assert res.exit_code == 1 and json.loads(res.stdout.strip().splitlines()[-1])["present"] is False
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 50)
    res = runner.invoke(mark_app, ["detect", str(junk), "--format", "json"])
    assert res.exit_code == 2
    err = json.loads(res.stdout.strip().splitlines()[-1])["error"]
    assert err["type"] in ("not_media", "corrupt_media")
    res = runner.invoke(mark_app, ["detect", str(tmp_path / "missing.wav")])
    assert res.exit_code == 2
    res = runner.invoke(mark_app, ["embed", str(junk), str(tmp_path / "o.wav"), "--payload", "01020304"])
    assert res.exit_code == 2
    # usage errors: bad payload, both payload forms, unsupported suffix, bad key, existing key file
    for args in (["--payload", "xyz"], ["--payload", "0102"], ["--payload", "01020304", "--provider", "a"],
                 ["--provider", "a"]):
        res = runner.invoke(mark_app, ["embed", str(stereo_wav), str(tmp_path / "o.wav"), *args])
        assert res.exit_code == 3, args
    res = runner.invoke(mark_app, ["embed", str(stereo_wav), str(tmp_path / "o.xyz"), "--payload", "01"*4])
    assert res.exit_code == 3
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("zz\n")
    res = runner.invoke(mark_app, ["detect", str(stereo_wav), "--key", str(bad_key)])
    assert res.exit_code == 3
    res = runner.invoke(mark_app, ["keygen", str(key_file)])
    assert res.exit_code == 3


def test_parse_payload() -> None:
    assert parse_payload("0x01020304", None, None) == b"\x01\x02\x03\x04"
    assert parse_payload(None, "p", "c") == payload_from_ids("p", "c")
    with pytest.raises(ValueError):
        parse_payload(None, None, None)


def test_file_errors_are_typed(tmp_path: Path) -> None:
    m = Marker()
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(EmptyFileError):
        m.detect_file(empty)
    with pytest.raises(UnreadableError):
        m.detect_file(tmp_path / "nope.flac")
    with pytest.raises(UnreadableError):
        m.detect_file(tmp_path)
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(AudioError):
        m.detect_file(junk)
    txt = tmp_path / "notes.txt"
    txt.write_text("hello\n" * 100)
    with pytest.raises((NotMediaError, AudioError)):
        m.detect_file(txt)


def test_cli_embed_that_fails_its_self_check_leaves_nothing(tmp_path: Path) -> None:
    """A mark that cannot be verified (silent input) must not leave a file that looks marked, nor replace one."""
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(3 * 16000, dtype=np.float32), 16000)
    out = tmp_path / "out.wav"
    res = runner.invoke(mark_app, ["embed", str(silent), str(out), "--payload", "01020304"])
    assert res.exit_code == 2 and "nothing was written" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["silent.wav"]  # no output, no temp file
    out.write_bytes(b"an earlier file")
    res = runner.invoke(mark_app, ["embed", str(silent), str(out), "--payload", "01020304"])
    assert res.exit_code == 2 and out.read_bytes() == b"an earlier file"
    # the library default still writes and reports, for callers that decide themselves
    check = Marker().embed_file(silent, tmp_path / "kept.wav", PAYLOAD)
    assert not check.present and (tmp_path / "kept.wav").exists()
    with pytest.raises(AudioError):
        Marker().embed_file(silent, tmp_path / "no-such-dir" / "o.wav", PAYLOAD, publish_only_if_found=True)


def test_cli_embed_onto_a_directory_is_a_clear_error(tmp_path: Path, stereo_wav: Path) -> None:
    target = tmp_path / "taken.wav"
    target.mkdir()
    res = runner.invoke(mark_app, ["embed", str(stereo_wav), str(target), "--payload", "01020304"])
    assert res.exit_code == 2 and "cannot write" in res.output, res.output
    assert target.is_dir() and not list(tmp_path.glob(".vwm-*"))  # no temp file left beside it
