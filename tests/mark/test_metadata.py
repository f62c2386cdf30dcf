"""GB 45438-2025 AIGC metadata label: round trip, signatures and tamper detection in every container."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from voxwarden.audio.errors import (
    CorruptMediaError,
    EmptyFileError,
    NotMediaError,
    UnreadableError,
)
from voxwarden.mark.metadata import (
    AigcLabel,
    LabelKey,
    LabelKeyError,
    UnsupportedContainerError,
    audio_hash,
    read_label,
    remove_label,
    sniff_container,
    write_label,
)

SR = 16000
FORMATS = ["wav", "mp3", "flac", "ogg", "opus", "m4a"]


def _signal(seed: int, seconds: float = 0.5, channels: int = 1) -> np.ndarray:
    """A speech-like test signal: a few harmonics with a wobbling pitch plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    f0 = 120 + 40 * seed % 3 + 10 * np.sin(2 * np.pi * 3 * t)
    ph = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * ph) / k for k in range(1, 8)) * 0.2 + 0.01 * rng.standard_normal(len(t))
    x = x.astype(np.float32)
    return x if channels == 1 else np.stack([x, 0.8 * x], axis=1)


def make_audio(path: Path, x: np.ndarray, sr: int = SR) -> Path:
    """Encode `x` into the container named by the extension (soundfile; PyAV for M4A/AAC)."""
    ext = path.suffix.lower()
    if ext == ".m4a":
        import av

        layout = "mono" if x.ndim == 1 else "stereo"
        with av.open(str(path), "w", format="ipod") as c:
            st = c.add_stream("aac", rate=sr, layout=layout)
            arr = (x[None, :] if x.ndim == 1 else x.T).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format="fltp", layout=layout)
            frame.sample_rate = sr
            for pkt in st.encode(frame):
                c.mux(pkt)
            for pkt in st.encode(None):
                c.mux(pkt)
        return path
    import soundfile as sf

    fmt, sub = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
                ".opus": ("OGG", "OPUS"), ".mp3": ("MP3", "MPEG_LAYER_III")}[ext]
    sf.write(str(path), x, sr, format=fmt, subtype=sub)
    return path


@pytest.fixture(scope="module")
def key() -> LabelKey:
    return LabelKey.generate()


@pytest.fixture
def sample_label() -> AigcLabel:
    return AigcLabel(label="1", content_producer="acme-tts 备案号123", produce_id="clip-0001")


# --------------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("fmt", FORMATS)
def test_unsigned_round_trip(tmp_path: Path, fmt: str, sample_label: AigcLabel) -> None:
    p = make_audio(tmp_path / f"a.{fmt}", _signal(1))
    assert read_label(p).label is None
    write_label(p, sample_label)
    r = read_label(p)
    assert r.label == sample_label
    assert r.signature_valid is None and "not signed" in r.reason
    assert r.container == ("mp4" if fmt == "m4a" else fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_signed_round_trip_and_tamper(
    tmp_path: Path, fmt: str, key: LabelKey, sample_label: AigcLabel
) -> None:
    a = make_audio(tmp_path / f"a.{fmt}", _signal(1))
    b = make_audio(tmp_path / f"b.{fmt}", _signal(2))
    h0 = audio_hash(a)
    write_label(a, sample_label, key=key)
    assert audio_hash(a) == h0, "writing metadata must not change the decoded audio"

    r = read_label(a)  # no trusted key: checked against the embedded public key (integrity)
    assert r.signature_valid is True and r.label is not None
    assert r.label.reserved_code1.startswith("vw1;alg=ed25519;")
    assert read_label(a, key=key.public_key()).signature_valid is True
    assert read_label(a, key=LabelKey.generate().public_key()).signature_valid is False  # untrusted signer

    # 1. label copied onto other audio -> invalid
    write_label(b, r.label)
    rb = read_label(b)
    assert rb.signature_valid is False and "audio differs" in rb.reason

    # 2. a field edited (signature kept) -> invalid
    forged = AigcLabel(**vars(r.label))
    forged.content_producer = "someone-else"
    write_label(a, forged)
    assert read_label(a).signature_valid is False
    write_label(a, r.label)  # restore
    assert read_label(a).signature_valid is True

    # 3. audio edited: same content with 100 ms muted, re-encoded, label carried over -> invalid
    x = _signal(1)
    x[2000:3600] = 0.0
    c = make_audio(tmp_path / f"c.{fmt}", x)
    write_label(c, r.label)
    assert read_label(c).signature_valid is False


def test_wav_in_place_audio_edit_detected(tmp_path: Path, key: LabelKey, sample_label: AigcLabel) -> None:
    p = make_audio(tmp_path / "a.wav", _signal(3))
    write_label(p, sample_label, key=key)
    data = bytearray(p.read_bytes())
    i = data.index(b"data") + 8 + 1000
    data[i] ^= 0x40  # flip one bit of one sample, metadata untouched
    p.write_bytes(bytes(data))
    r = read_label(p)
    assert r.label is not None and r.signature_valid is False


def test_wav_chunk_layout(tmp_path: Path, sample_label: AigcLabel) -> None:
    """The AIGC chunk sits before 'data', the RIFF size is right, and rewriting replaces (not adds)."""
    import soundfile as sf

    p = make_audio(tmp_path / "a.wav", _signal(4, channels=2))
    write_label(p, sample_label)
    write_label(p, sample_label)
    raw = p.read_bytes()
    assert raw.count(b"AIGC") == 1
    assert raw.index(b"AIGC") < raw.index(b"data")
    assert int.from_bytes(raw[4:8], "little") == len(raw) - 8
    x, sr = sf.read(str(p))
    assert sr == SR and x.shape == (8000, 2)
    stored = json.loads(raw[raw.index(b"AIGC") + 8: raw.index(b"data")].rstrip(b"\x00").decode())
    assert stored["ContentProducer"] == sample_label.content_producer


def test_propagator_signature(tmp_path: Path, key: LabelKey, sample_label: AigcLabel) -> None:
    platform = LabelKey.generate()
    p = make_audio(tmp_path / "a.flac", _signal(5))
    write_label(p, sample_label, key=key)
    lab = read_label(p).label
    assert lab is not None
    lab.content_propagator, lab.propagate_id = "voice-platform", "room42/msg7"
    write_label(p, lab, key=platform, role="propagator")
    r = read_label(p, key=[key.public_key(), platform.public_key()])
    assert r.signature_valid is True
    assert [c.role for c in r.signatures] == ["producer", "propagator"]
    assert all(c.trusted and c.valid for c in r.signatures)
    # only the producer trusted: the platform's signature still verifies against its embedded key
    assert read_label(p, key=key.public_key()).signature_valid is True
    # tamper with a propagation field -> the platform's signature fails
    bad = read_label(p).label
    assert bad is not None
    bad.propagate_id = "room42/msg8"
    write_label(p, bad)
    r2 = read_label(p)
    assert r2.signature_valid is False
    assert {c.role: c.valid for c in r2.signatures} == {"producer": True, "propagator": False}


def test_hmac_key(tmp_path: Path, sample_label: AigcLabel) -> None:
    k = LabelKey.hmac(b"a shared secret of 32 bytes!!!!!")
    p = make_audio(tmp_path / "a.mp3", _signal(6))
    write_label(p, sample_label, key=k)
    assert read_label(p).signature_valid is None  # cannot check HMAC without the secret
    assert read_label(p, key=k).signature_valid is True
    assert read_label(p, key=LabelKey.hmac(b"another secret of 32 bytes!!!!!!")).signature_valid is False
    lab = read_label(p).label
    assert lab is not None
    lab.produce_id = "other"
    write_label(p, lab)
    assert read_label(p, key=k).signature_valid is False


def test_key_files(tmp_path: Path) -> None:
    k = LabelKey.generate()
    k.save(tmp_path / "k.pem")
    k.save(tmp_path / "k.pub", private=False)
    assert oct((tmp_path / "k.pem").stat().st_mode & 0o777) == "0o600"
    priv = LabelKey.from_file(tmp_path / "k.pem")
    pub = LabelKey.from_file(tmp_path / "k.pub")
    assert priv.key_id == pub.key_id == k.key_id
    assert priv.can_sign and not pub.can_sign
    h = LabelKey.generate("hmac-sha256")
    h.save(tmp_path / "h.key")
    assert LabelKey.from_file(tmp_path / "h.key").secret == h.secret
    (tmp_path / "junk.key").write_text("hello")
    with pytest.raises(LabelKeyError):
        LabelKey.from_file(tmp_path / "junk.key")
    with pytest.raises(LabelKeyError):
        LabelKey.from_file(tmp_path / "missing.key")
    with pytest.raises(LabelKeyError):
        LabelKey.hmac(b"short")


def test_cannot_sign_with_public_key(tmp_path: Path, sample_label: AigcLabel) -> None:
    p = make_audio(tmp_path / "a.wav", _signal(7))
    before = p.read_bytes()
    with pytest.raises(LabelKeyError):
        write_label(p, sample_label, key=LabelKey.generate().public_key())
    assert p.read_bytes() == before


def test_key_file_path_accepted(tmp_path: Path, sample_label: AigcLabel) -> None:
    k = LabelKey.generate()
    k.save(tmp_path / "k.pem")
    k.save(tmp_path / "k.pub", private=False)
    p = make_audio(tmp_path / "a.ogg", _signal(8))
    write_label(p, sample_label, key=str(tmp_path / "k.pem"))
    assert read_label(p, key=tmp_path / "k.pub").signature_valid is True


def test_remove_label(tmp_path: Path, sample_label: AigcLabel) -> None:
    for fmt in ("wav", "mp3", "m4a"):
        p = make_audio(tmp_path / f"r.{fmt}", _signal(9))
        write_label(p, sample_label)
        remove_label(p)
        assert read_label(p).label is None


# ------------------------------------------------------------------------------------------- bad input


def test_malformed_label_reported(tmp_path: Path) -> None:
    from mutagen.flac import FLAC

    p = make_audio(tmp_path / "a.flac", _signal(10))
    f = FLAC(str(p))
    f["AIGC"] = ["{not json"]
    f.save()
    r = read_label(p)
    assert r.label is None and r.malformed and r.signature_valid is False and "malformed" in r.reason
    f = FLAC(str(p))
    f["AIGC"] = ['{"Label": ["1"]}']
    f.save()
    assert read_label(p).malformed


def test_forged_signature_field_rejected(tmp_path: Path, key: LabelKey, sample_label: AigcLabel) -> None:
    p = make_audio(tmp_path / "a.wav", _signal(11))
    write_label(p, sample_label, key=key)
    lab = read_label(p).label
    assert lab is not None
    lab.reserved_code1 = lab.reserved_code1.replace("sig=", "sig=AAAA")
    write_label(p, lab)
    assert read_label(p).signature_valid is False
    lab.reserved_code1 = "vw1;alg=ed25519;kid=zz"
    write_label(p, lab)
    r = read_label(p)
    assert r.signature_valid is False and "malformed signature" in r.reason


def test_bad_inputs(tmp_path: Path, sample_label: AigcLabel) -> None:
    with pytest.raises(UnreadableError):
        read_label(tmp_path / "missing.wav")
    with pytest.raises(UnreadableError):
        read_label(tmp_path)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(EmptyFileError):
        read_label(tmp_path / "empty.wav")
    (tmp_path / "text.mp3").write_text("this is not audio at all\n" * 20)
    with pytest.raises(NotMediaError):
        read_label(tmp_path / "text.mp3")
    (tmp_path / "adts.aac").write_bytes(b"\xff\xf1\x50\x80" + bytes(400))
    with pytest.raises(UnsupportedContainerError):
        write_label(tmp_path / "adts.aac", sample_label)
    (tmp_path / "v.webm").write_bytes(b"\x1aE\xdf\xa3" + bytes(100))
    with pytest.raises(UnsupportedContainerError):
        read_label(tmp_path / "v.webm")


def test_truncated_files_fail_cleanly_and_atomically(tmp_path: Path, key: LabelKey,
                                                     sample_label: AigcLabel) -> None:
    for fmt in FORMATS:
        full = make_audio(tmp_path / f"full.{fmt}", _signal(12))
        p = tmp_path / f"cut.{fmt}"
        p.write_bytes(full.read_bytes()[:200])
        before = p.read_bytes()
        try:
            write_label(p, sample_label, key=key)
        except (CorruptMediaError, NotMediaError, UnsupportedContainerError):
            assert p.read_bytes() == before, f"{fmt}: failed write must leave the file untouched"
        else:  # only a WAV whose data chunk overruns the file (streamed WAV) is accepted: data runs to EOF
            assert fmt == "wav"
            r = read_label(p)
            assert r.label is not None and r.label.produce_id == sample_label.produce_id
            assert r.signature_valid is True
        leftovers = [f for f in os.listdir(tmp_path) if "tmp" in f]
        assert leftovers == []


def test_oversized_label_rejected(tmp_path: Path) -> None:
    p = make_audio(tmp_path / "a.wav", _signal(13))
    with pytest.raises(ValueError):
        write_label(p, AigcLabel(produce_id="x" * 70000))
    assert read_label(p).label is None


def test_symlink_target_is_labelled(tmp_path: Path, sample_label: AigcLabel) -> None:
    target = make_audio(tmp_path / "real.flac", _signal(15))
    link = tmp_path / "link.flac"
    link.symlink_to(target)
    write_label(link, sample_label)
    assert link.is_symlink()
    assert read_label(target).label == sample_label


def test_sniff_ignores_extension(tmp_path: Path) -> None:
    p = make_audio(tmp_path / "a.flac", _signal(14))
    q = tmp_path / "renamed.mp3"
    shutil.copy(p, q)
    assert sniff_container(q) == "flac"


def test_label_dataclass_json() -> None:
    lab = AigcLabel(content_producer="生产者", produce_id="42")
    s = lab.to_json()
    assert list(json.loads(s)) == ["Label", "ContentProducer", "ProduceID", "ReservedCode1",
                                    "ContentPropagator", "PropagateID", "ReservedCode2"]
    assert "生产者" in s
    assert AigcLabel.from_json(s) == lab
    assert AigcLabel.from_json(json.dumps({"AIGC": lab.to_dict()})) == lab
    assert AigcLabel(label="3").meaning == "suspected-ai-generated"
    assert AigcLabel(label="9").meaning is None
    with pytest.raises(ValueError):
        AigcLabel.from_json("[1, 2]")


@pytest.mark.parametrize("fmt", FORMATS)
def test_corrupted_files_only_raise_typed_errors(tmp_path: Path, fmt: str, key: LabelKey,
                                                 sample_label: AigcLabel) -> None:
    """Hostile input: random byte damage never escapes as anything but an AudioError (or a result)."""
    from voxwarden.audio.errors import AudioError
    from voxwarden.mark.metadata import LabelReadResult

    src = make_audio(tmp_path / f"src.{fmt}", _signal(16, seconds=0.3))
    write_label(src, sample_label, key=key)
    blob = src.read_bytes()
    rng = np.random.default_rng(0)
    outcomes = set()
    for i in range(12):
        b = bytearray(blob)
        for pos in rng.integers(0, min(len(b), 600 if i % 2 else len(b)), size=1 + i):
            b[int(pos)] = int(rng.integers(0, 256))
        p = tmp_path / f"bad{i}.{fmt}"
        p.write_bytes(bytes(b))
        try:
            r = read_label(p)
            assert isinstance(r, LabelReadResult)
            outcomes.add(r.signature_valid)
        except AudioError as e:
            outcomes.add(type(e).__name__)
    # every case ended in a result or a typed error, and damage was noticed in at least some of them
    assert outcomes - {True, None}, outcomes


def test_label_json_round_trip_any_text() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    text = st.text(max_size=40)

    @settings(max_examples=60, deadline=None)
    @given(text, text, text, st.sampled_from(["1", "2", "3"]))
    def prop(producer: str, pid: str, prop_id: str, value: str) -> None:
        lab = AigcLabel(label=value, content_producer=producer, produce_id=pid, propagate_id=prop_id)
        assert AigcLabel.from_json(lab.to_json()) == lab

    prop()
