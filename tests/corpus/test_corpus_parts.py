"""recipes/corpus_parts.py: a corpus split into tar parts for the device tool, and checked on arrival."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from _recipes import load_recipe

cp = load_recipe("corpus_parts")


def _corpus(root: Path) -> Path:
    c = root / "corpus"
    (c / "audio").mkdir(parents=True)
    (c / "protocol.tsv").write_text("file\tlabel\tsystem\nclip0.flac\tbonafide\tbonafide\n")
    (c / "manifest.json").write_text("{}")
    rng = np.random.default_rng(0)
    for i in range(12):
        (c / "audio" / f"clip{i}.flac").write_bytes(rng.bytes(int(rng.integers(100_000, 400_000))))
    return c


def _tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and cp.DONE_DIR not in p.parts}


def test_pack_then_unpack_restores_the_corpus_exactly(tmp_path: Path) -> None:
    c = _corpus(tmp_path)
    m = cp.pack(c, tmp_path / "parts", 1 << 20)
    assert len(m["parts"]) >= 3 and m["files"] == 14
    assert all(p["bytes"] <= 1 << 20 for p in m["parts"])
    again = cp.pack(c, tmp_path / "parts2", 1 << 20)  # deterministic: same corpus, same parts
    assert [p["sha256"] for p in again["parts"]] == [p["sha256"] for p in m["parts"]]
    assert cp.main(["unpack", str(tmp_path / "parts" / "parts.json"), "--dest", str(tmp_path / "dest")]) == 0
    assert _tree(tmp_path / "dest") == _tree(c)


def test_parts_arriving_one_call_at_a_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = _corpus(tmp_path)
    m = cp.pack(c, tmp_path / "all", 1 << 20)
    carry = tmp_path / "carry"
    carry.mkdir()
    (carry / "parts.json").write_bytes((tmp_path / "all" / "parts.json").read_bytes())
    dest = tmp_path / "dest"
    names = [p["file"] for p in m["parts"]]
    for i, name in enumerate(names):
        for old in carry.glob("part-*.tar"):  # like the device tool: each call carries only its own part
            old.unlink()
        (carry / name).write_bytes((tmp_path / "all" / name).read_bytes())
        rc = cp.main(["unpack", str(carry / "parts.json"), "--dest", str(dest)])
        assert rc == (0 if i == len(names) - 1 else 3)
    assert "all" in capsys.readouterr().out.splitlines()[-1]
    assert _tree(dest) == _tree(c)


def test_a_corrupt_part_is_rejected_and_nothing_of_it_extracted(tmp_path: Path) -> None:
    c = _corpus(tmp_path)
    m = cp.pack(c, tmp_path / "parts", 1 << 20)
    first = tmp_path / "parts" / m["parts"][0]["file"]
    data = bytearray(first.read_bytes())
    data[5000] ^= 0xFF
    first.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    with pytest.raises(cp.PartsError, match="sha256"):
        cp.unpack(tmp_path / "parts" / "parts.json", dest)
    assert not any(p.is_file() for p in dest.rglob("*.flac"))
    assert cp.main(["unpack", str(tmp_path / "parts" / "parts.json"), "--dest", str(dest)]) == 2


def test_a_hostile_part_cannot_write_outside_the_destination(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    (parts / "part-000.tar").write_bytes(buf.getvalue())
    manifest = {"parts": [{"file": "part-000.tar", "sha256": cp._sha256(parts / "part-000.tar"),
                           "members": ["../evil.txt"]}]}
    (parts / "parts.json").write_text(json.dumps(manifest))
    with pytest.raises(cp.PartsError):
        cp.unpack(parts / "parts.json", tmp_path / "dest")
    assert not (tmp_path / "evil.txt").exists()
    manifest["parts"][0]["file"] = "../part-000.tar"
    (parts / "parts.json").write_text(json.dumps(manifest))
    with pytest.raises(cp.PartsError, match="bad part name"):
        cp.unpack(parts / "parts.json", tmp_path / "dest")


def test_bad_input_gives_exit_2(tmp_path: Path) -> None:
    assert cp.main(["pack", str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2
    (tmp_path / "parts.json").write_text("not json")
    assert cp.main(["unpack", str(tmp_path / "parts.json"), "--dest", str(tmp_path / "d")]) == 2
    assert cp.main(["unpack", str(tmp_path / "absent.json"), "--dest", str(tmp_path / "d")]) == 2


def test_a_parts_folder_inside_the_corpus_is_refused(tmp_path: Path) -> None:
    c = _corpus(tmp_path)
    with pytest.raises(cp.PartsError, match="outside the corpus"):
        cp.pack(c, c / "parts", 1 << 20)
    assert not (c / "parts").exists()
