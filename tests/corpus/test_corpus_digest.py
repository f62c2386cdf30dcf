"""recipes/corpus/digest.py: per-generator digests that say where two builds of a corpus part."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests._recipes import load_recipe

dg = load_recipe("corpus/digest")


def _corpus(root: Path, audio: dict[str, bytes], augment: str = "none") -> Path:
    (root / "audio").mkdir(parents=True)
    lines = ["file\tlabel\tsystem\taugment"]
    for name, blob in audio.items():
        (root / "audio" / name).write_bytes(blob)
        system = name.split("_")[0]
        lines.append(f"{name}\t{'bonafide' if system == 'bonafide' else 'spoof'}\t{system}\t{augment}")
    (root / "protocol-full.tsv").write_text("\n".join(lines) + "\n")
    (root / "protocol.tsv").write_text("\n".join(lines[:2]) + "\n")
    return root


AUDIO = {"bonafide_1.flac": b"aa", "world_1.flac": b"bb", "world_2.flac": b"cc", "kokoro_1.flac": b"dd"}


def test_equal_builds_agree_and_one_changed_clip_names_its_system(tmp_path: Path) -> None:
    a = dg.digest(_corpus(tmp_path / "a", AUDIO))
    assert a == dg.digest(_corpus(tmp_path / "b", AUDIO))
    assert a["clips"] == 4 and a["systems"]["world"]["clips"] == 2
    c = dg.digest(_corpus(tmp_path / "c", {**AUDIO, "world_2.flac": b"cC"}))
    assert dg.differences(c, a) == ["world: differs in audio"]  # the rows (draws) are the same


def test_different_draws_show_in_rows_and_missing_audio_is_hashed(tmp_path: Path) -> None:
    a = dg.digest(_corpus(tmp_path / "a", AUDIO))
    d = _corpus(tmp_path / "d", AUDIO, augment="mp3:64k")
    (d / "audio" / "kokoro_1.flac").unlink()
    diff = dg.differences(dg.digest(d), a)
    assert "protocol_full_md5" in diff[0]
    assert "kokoro: differs in rows, audio" in diff and "world: differs in rows" in diff


def test_cli_writes_compares_and_refuses_a_non_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = _corpus(tmp_path / "a", AUDIO)
    out = tmp_path / "d.json"
    assert dg.main([str(corpus), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["systems"]["kokoro"]["clips"] == 1
    assert dg.main([str(corpus), "--against", str(out)]) == 0
    (corpus / "audio" / "world_1.flac").write_bytes(b"zz")
    assert dg.main([str(corpus), "--against", str(out)]) == 1
    assert "world: differs in audio" in capsys.readouterr().out
    assert dg.main([str(tmp_path / "nothing")]) == 2
    assert "not a built corpus" in capsys.readouterr().err
