"""Content-addressed evidence files: layout, dedup, verify, atomic writes, hostile input."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from voxwarden.store import EvidenceError, EvidenceRef, EvidenceStore, InvalidInputError


def _wav_bytes(seed: int = 0, n: int = 1600) -> bytes:
    """A tiny 16 kHz PCM WAV made here (noise burst), no external files."""
    import wave

    rng = np.random.default_rng(seed)
    pcm = (rng.standard_normal(n) * 3000).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm)
    return buf.getvalue()


def test_put_layout_and_verify(tmp_path: Path) -> None:
    ev = EvidenceStore(tmp_path / "ev")
    data = _wav_bytes()
    ref = ev.put(data, suffix=".WAV")
    sha = hashlib.sha256(data).hexdigest()
    assert ref == EvidenceRef(sha, f"{sha[:2]}/{sha[2:4]}/{sha}.wav", len(data))
    assert (tmp_path / "ev" / ref.path).read_bytes() == data
    assert ev.verify(ref) and ev.read(ref) == data
    assert not [p for p in (tmp_path / "ev").rglob("*") if p.name.startswith(".tmp-")]


def test_dedup_same_bytes_one_file(tmp_path: Path) -> None:
    ev = EvidenceStore(tmp_path)
    a, b = ev.put(_wav_bytes(1), suffix="wav"), ev.put(_wav_bytes(1), suffix="wav")
    c = ev.put(_wav_bytes(2), suffix="wav")
    assert a == b and a != c
    assert len([p for p in tmp_path.rglob("*.wav")]) == 2


def test_verify_detects_tampering_and_loss(tmp_path: Path) -> None:
    ev = EvidenceStore(tmp_path)
    ref = ev.put(_wav_bytes(), suffix="wav")
    p = tmp_path / ref.path
    raw = bytearray(p.read_bytes())
    raw[100] ^= 0xFF
    p.write_bytes(bytes(raw))
    assert not ev.verify(ref)
    with pytest.raises(EvidenceError, match="does not match"):
        ev.read(ref)
    assert ev.put(_wav_bytes(), suffix="wav") == ref and ev.verify(ref)  # a re-put heals the file
    p.unlink()
    assert not ev.verify(ref)
    with pytest.raises(EvidenceError):
        ev.read(ref)


def test_crash_during_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ev = EvidenceStore(tmp_path)
    data = _wav_bytes()

    def crash(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(EvidenceError, match="No space"):
        ev.put(data, suffix="wav")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # neither final nor temp file
    monkeypatch.undo()
    ref = ev.put(data, suffix="wav")
    assert ev.verify(ref)


def test_put_stream_matches_put(tmp_path: Path) -> None:
    ev = EvidenceStore(tmp_path)
    data = _wav_bytes(3, n=40_000)
    assert ev.put_stream(io.BytesIO(data), suffix="wav") == ev.put(data, suffix="wav")
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("suffix", ["", "../../etc", "w a v", "x" * 20, "wav/../../x"])
def test_bad_suffixes_refused(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(InvalidInputError):
        EvidenceStore(tmp_path).put(b"abc", suffix=suffix)


def test_empty_oversized_and_non_bytes_refused(tmp_path: Path) -> None:
    ev = EvidenceStore(tmp_path, max_bytes=1000)
    with pytest.raises(InvalidInputError):
        ev.put(b"", suffix="wav")
    with pytest.raises(InvalidInputError):
        ev.put(b"x" * 1001, suffix="wav")
    with pytest.raises(InvalidInputError):
        ev.put("text", suffix="wav")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        ev.put_stream(io.BytesIO(b"x" * 5000), suffix="wav")
    with pytest.raises(InvalidInputError):
        ev.put_stream(io.BytesIO(b""), suffix="wav")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_hostile_ref_path_cannot_escape_root(tmp_path: Path) -> None:
    ev = EvidenceStore(tmp_path / "root")
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"top secret")
    sha = hashlib.sha256(b"top secret").hexdigest()
    ref = EvidenceRef(sha, "../secret.wav", 10)  # e.g. a doctored database row
    assert ev.abspath(ref).is_relative_to(ev.root)
    assert not ev.verify(ref)
    with pytest.raises(InvalidInputError):
        ev.abspath(EvidenceRef("../" * 10 + "x", "p.wav", 1))


def test_concurrent_puts_of_same_bytes(tmp_path: Path) -> None:
    ev = EvidenceStore(tmp_path)
    data = _wav_bytes(4, n=20_000)
    refs: list[EvidenceRef] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            refs.append(ev.put(data, suffix="wav"))
        except BaseException as e:  # noqa: BLE001 - collected for the assert
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(refs)) == 1 and ev.verify(refs[0])


def test_delete_tidies_directories(tmp_path: Path) -> None:
    ev = EvidenceStore(tmp_path)
    ref = ev.put(_wav_bytes(), suffix="wav")
    assert ev.delete(ref) and not ev.delete(ref)
    assert not ev.exists(ref)
    assert [p for p in tmp_path.rglob("*")] == []
