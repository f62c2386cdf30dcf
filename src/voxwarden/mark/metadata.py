"""GB 45438-2025 implicit metadata label (``AIGC``) for audio files, bound to the audio by a signature.

The label is the standard's JSON object (``Label``, ``ContentProducer``, ``ProduceID``, ``ReservedCode1``,
``ContentPropagator``, ``PropagateID``, ``ReservedCode2``) stored under the key ``AIGC``:

=============  ===============================================================
container      where the JSON goes
=============  ===============================================================
WAV (RIFF)     a dedicated RIFF chunk with id ``AIGC`` placed before ``data``
MP3            ID3v2 ``TXXX`` frame with description ``AIGC``
FLAC/Ogg/Opus  Vorbis comment ``AIGC=<json>``
M4A/MP4        freeform atom ``----:com.apple.iTunes:AIGC`` (UTF-8)
=============  ===============================================================

Why a signature: a bare JSON label can be copied onto any other file or left on a file whose audio was
edited. The producer signs (Label, ContentProducer, ProduceID) plus a SHA-256 of the *decoded* audio
(16-bit PCM, so the hash ignores the metadata itself) and stores it in ``ReservedCode1`` — the field the
standard reserves for the producer's integrity data. A distribution platform signs all other fields
(including ``ReservedCode1``) plus the audio hash into ``ReservedCode2``. Ed25519 (``cryptography``) is
the default so that anyone holding the provider's *public* key can verify; HMAC-SHA256 with a shared
secret is the fallback. See docs/labels.md for the exact byte layout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from voxwarden.audio.errors import (
    AudioError,
    CorruptMediaError,
    EmptyFileError,
    NoAudioStreamError,
    NotMediaError,
    UnreadableError,
)

AIGC_KEY = "AIGC"
FIELDS: tuple[str, ...] = (
    "Label",
    "ContentProducer",
    "ProduceID",
    "ReservedCode1",
    "ContentPropagator",
    "PropagateID",
    "ReservedCode2",
)
# GB 45438-2025: 1 = AI-generated/synthesised, 2 = possibly, 3 = suspected
LABEL_VALUES = {"1": "ai-generated", "2": "possibly-ai-generated", "3": "suspected-ai-generated"}
PRODUCER_SIGNED = ("Label", "ContentProducer", "ProduceID")
PROPAGATOR_SIGNED = (
    "Label", "ContentProducer", "ProduceID", "ReservedCode1", "ContentPropagator", "PropagateID",
)
SIG_PREFIX = "vw1"
HASH_SCHEME = "pcm16-sha256"
MAX_LABEL_BYTES = 64 * 1024
MP4_FREEFORM = "----:com.apple.iTunes:AIGC"

Container = Literal["wav", "mp3", "flac", "ogg", "opus", "mp4"]
Role = Literal["producer", "propagator"]


class UnsupportedContainerError(AudioError):
    """A media file whose container we cannot carry a metadata label in (e.g. ADTS AAC, WebM, AMR)."""

    code = "unsupported_container"


class LabelKeyError(ValueError):
    """A key file or key object that cannot be used (bad PEM, wrong type, public key used to sign)."""


# ----------------------------------------------------------------------------------------------- label


@dataclass
class AigcLabel:
    """The GB 45438-2025 implicit label fields (all strings, as the standard's JSON uses)."""

    label: str = "1"
    content_producer: str = ""
    produce_id: str = ""
    reserved_code1: str = ""
    content_propagator: str = ""
    propagate_id: str = ""
    reserved_code2: str = ""

    def to_dict(self) -> dict[str, str]:
        """Field dict with the standard's key names, in the standard's order."""
        return {
            "Label": self.label,
            "ContentProducer": self.content_producer,
            "ProduceID": self.produce_id,
            "ReservedCode1": self.reserved_code1,
            "ContentPropagator": self.content_propagator,
            "PropagateID": self.propagate_id,
            "ReservedCode2": self.reserved_code2,
        }

    def to_json(self) -> str:
        """Compact UTF-8 JSON as stored in the file (non-ASCII kept as is)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AigcLabel:
        """Build from the standard's key names; unknown keys are ignored, values must be strings/numbers."""
        vals: dict[str, str] = {}
        for k in FIELDS:
            v = d.get(k, "")
            if v is None:
                v = ""
            if isinstance(v, bool) or not isinstance(v, str | int):
                raise ValueError(f"field {k!r} must be a string, got {type(v).__name__}")
            vals[k] = str(v)
        return cls(
            label=vals["Label"],
            content_producer=vals["ContentProducer"],
            produce_id=vals["ProduceID"],
            reserved_code1=vals["ReservedCode1"],
            content_propagator=vals["ContentPropagator"],
            propagate_id=vals["PropagateID"],
            reserved_code2=vals["ReservedCode2"],
        )

    @classmethod
    def from_json(cls, text: str) -> AigcLabel:
        """Parse the stored JSON (also accepts ``{"AIGC": {...}}``)."""
        if len(text.encode("utf-8", "surrogatepass")) > MAX_LABEL_BYTES:
            raise ValueError(f"label larger than {MAX_LABEL_BYTES} bytes")
        d = json.loads(text)
        if isinstance(d, dict) and AIGC_KEY in d and isinstance(d[AIGC_KEY], dict):
            d = d[AIGC_KEY]
        if not isinstance(d, dict):
            raise ValueError("label JSON is not an object")
        return cls.from_dict(d)

    @property
    def meaning(self) -> str | None:
        """What ``Label`` says, or None for a value the standard does not define."""
        return LABEL_VALUES.get(self.label)


@dataclass
class SignatureCheck:
    """Outcome of checking one signature field (ReservedCode1 = producer, ReservedCode2 = propagator)."""

    role: str
    field: str
    alg: str | None
    key_id: str | None
    valid: bool | None  # None: could not be checked (e.g. HMAC without the secret)
    trusted: bool | None  # True: made by a key the caller trusts; False: not; None: no trusted keys given
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "field": self.field,
            "alg": self.alg,
            "key_id": self.key_id,
            "valid": self.valid,
            "trusted": self.trusted,
            "reason": self.reason,
        }


@dataclass
class LabelReadResult:
    """What `read_label` found: the label (None if absent/malformed), whether its signatures hold, why."""

    label: AigcLabel | None
    signature_valid: bool | None
    reason: str
    container: str | None = None
    signatures: list[SignatureCheck] = field(default_factory=list)
    audio_hash: str | None = None
    malformed: bool = False

    @property
    def present(self) -> bool:
        return self.label is not None or self.malformed

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label.to_dict() if self.label else None,
            "signature_valid": self.signature_valid,
            "reason": self.reason,
            "container": self.container,
            "signatures": [s.to_dict() for s in self.signatures],
            "audio_hash": self.audio_hash,
            "malformed": self.malformed,
        }


# ------------------------------------------------------------------------------------------------ keys


def _b64e(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@dataclass(frozen=True)
class LabelKey:
    """A signing or verification key: Ed25519 (private or public) or an HMAC-SHA256 shared secret.

    Key files: Ed25519 keys are PEM (PKCS#8 private / SubjectPublicKeyInfo public — the same files
    ``openssl genpkey -algorithm ed25519`` writes); HMAC keys are a text line ``hmac-sha256:<base64url>``.
    """

    alg: Literal["ed25519", "hmac-sha256"]
    private: Any = None  # cryptography Ed25519PrivateKey
    public: Any = None  # cryptography Ed25519PublicKey
    secret: bytes | None = None

    @classmethod
    def generate(cls, alg: str = "ed25519") -> LabelKey:
        """A fresh random key (Ed25519 by default)."""
        if alg == "hmac-sha256":
            return cls(alg="hmac-sha256", secret=os.urandom(32))
        if alg != "ed25519":
            raise LabelKeyError(f"unknown key algorithm {alg!r} (use ed25519 or hmac-sha256)")
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        priv = Ed25519PrivateKey.generate()
        return cls(alg="ed25519", private=priv, public=priv.public_key())

    @classmethod
    def hmac(cls, secret: bytes) -> LabelKey:
        """An HMAC-SHA256 key from a shared secret (at least 16 bytes)."""
        if len(secret) < 16:
            raise LabelKeyError("HMAC secret must be at least 16 bytes")
        return cls(alg="hmac-sha256", secret=bytes(secret))

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelKey:
        """Parse key file contents (PEM Ed25519 private/public, or ``hmac-sha256:<base64url>``)."""
        text = data.strip()
        if text.startswith(b"hmac-sha256:"):
            try:
                secret = _b64d(text.split(b":", 1)[1].decode("ascii").strip())
            except (ValueError, UnicodeDecodeError) as e:
                raise LabelKeyError(f"bad HMAC key encoding: {e}") from e
            return cls.hmac(secret)
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

        if b"PRIVATE KEY" in text:
            try:
                k = serialization.load_pem_private_key(text, password=None)
            except (ValueError, TypeError) as e:
                raise LabelKeyError(f"cannot load PEM private key: {e}") from e
            if not isinstance(k, Ed25519PrivateKey):
                raise LabelKeyError("PEM private key is not Ed25519")
            return cls(alg="ed25519", private=k, public=k.public_key())
        if b"PUBLIC KEY" in text:
            try:
                p = serialization.load_pem_public_key(text)
            except (ValueError, TypeError) as e:
                raise LabelKeyError(f"cannot load PEM public key: {e}") from e
            if not isinstance(p, Ed25519PublicKey):
                raise LabelKeyError("PEM public key is not Ed25519")
            return cls(alg="ed25519", public=p)
        raise LabelKeyError("not a key file: expected Ed25519 PEM or 'hmac-sha256:<base64url>'")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> LabelKey:
        """Load a key file; unreadable or oversized files raise LabelKeyError."""
        p = Path(path)
        try:
            if p.stat().st_size > 16 * 1024:
                raise LabelKeyError(f"{p}: key file too large")
            data = p.read_bytes()
        except OSError as e:
            raise LabelKeyError(f"{p}: cannot read key file: {e.strerror or e}") from e
        try:
            return cls.from_bytes(data)
        except LabelKeyError as e:
            raise LabelKeyError(f"{p}: {e}") from e

    def public_bytes(self) -> bytes | None:
        """Raw 32-byte Ed25519 public key (None for HMAC)."""
        if self.alg != "ed25519" or self.public is None:
            return None
        from cryptography.hazmat.primitives import serialization

        return self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        """Short stable fingerprint (16 hex chars); for HMAC it reveals nothing usable about the secret."""
        if self.alg == "ed25519":
            return hashlib.sha256(b"vw-ed25519:" + (self.public_bytes() or b"")).hexdigest()[:16]
        return hashlib.sha256(b"vw-hmac-id:" + (self.secret or b"")).hexdigest()[:16]

    @property
    def can_sign(self) -> bool:
        return self.private is not None or self.secret is not None

    def public_key(self) -> LabelKey:
        """The verification-only half (HMAC keys are returned as is: the secret is needed to verify)."""
        if self.alg == "ed25519":
            return LabelKey(alg="ed25519", public=self.public)
        return self

    def to_pem(self, *, private: bool = True) -> bytes:
        """Serialise for a key file (PEM for Ed25519, ``hmac-sha256:...`` line for HMAC)."""
        if self.alg == "hmac-sha256":
            return b"hmac-sha256:" + _b64e(self.secret or b"").encode("ascii") + b"\n"
        from cryptography.hazmat.primitives import serialization

        if private:
            if self.private is None:
                raise LabelKeyError("this is a public key; no private key to write")
            return self.private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        return self.public.public_bytes(serialization.Encoding.PEM, spki)

    def save(self, path: str | os.PathLike[str], *, private: bool = True) -> None:
        """Write the key file (private files get mode 0600)."""
        data = self.to_pem(private=private)
        p = Path(path)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def sign(self, message: bytes) -> bytes:
        if self.alg == "hmac-sha256":
            return hmac.new(self.secret or b"", message, hashlib.sha256).digest()
        if self.private is None:
            raise LabelKeyError("cannot sign with a public key; give the private key file")
        return self.private.sign(message)

    def verify(self, message: bytes, sig: bytes) -> bool:
        if self.alg == "hmac-sha256":
            return hmac.compare_digest(self.sign(message), sig)
        from cryptography.exceptions import InvalidSignature

        try:
            self.public.verify(sig, message)
            return True
        except InvalidSignature:
            return False


KeyLike = LabelKey | str | os.PathLike[str]


def as_key(key: KeyLike) -> LabelKey:
    """A LabelKey from a LabelKey or a key file path."""
    if isinstance(key, LabelKey):
        return key
    if isinstance(key, str | os.PathLike):
        return LabelKey.from_file(key)
    raise LabelKeyError(f"not a key or key file path: {type(key).__name__}")


def as_keys(keys: KeyLike | Sequence[KeyLike] | None) -> list[LabelKey]:
    """Normalise None / one key / several keys to a list of LabelKey."""
    if keys is None:
        return []
    if isinstance(keys, LabelKey | str | os.PathLike):
        return [as_key(keys)]
    return [as_key(k) for k in keys]


# ------------------------------------------------------------------------------------- file inspection


def _check_file(path: Path) -> int:
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise UnreadableError(f"{path}: no such file") from e
    except OSError as e:
        raise UnreadableError(f"{path}: cannot stat: {e.strerror or e}") from e
    import stat as _stat

    if not _stat.S_ISREG(st.st_mode):
        raise UnreadableError(f"{path}: not a regular file")
    if st.st_size == 0:
        raise EmptyFileError(f"{path}: empty file")
    return st.st_size


def sniff_container(path: str | os.PathLike[str]) -> Container:
    """Which labelable container the file is, from its first bytes (never from the extension)."""
    p = Path(path)
    _check_file(p)
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise UnreadableError(f"{p}: cannot read: {e.strerror or e}") from e
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] in (b"RF64", b"BW64", b"riff"):  # RF64 / BW64 / Sony Wave64
        raise UnsupportedContainerError(f"{p}: RF64/W64 WAV cannot carry a label here (use RIFF WAV ≤ 4 GiB)")
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        if b"OpusHead" in head:
            return "opus"
        if b"\x01vorbis" in head:
            return "ogg"
        raise UnsupportedContainerError(f"{p}: Ogg stream that is neither Vorbis nor Opus")
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:3] == b"ID3":
        # ID3 may prefix FLAC too (rare); look behind the tag (and any padding / second tag) for the audio
        size = _syncsafe(head[6:10]) + 10 + (10 if head[5] & 0x10 else 0)
        try:
            with open(p, "rb") as f:
                f.seek(size)
                after = f.read(65536)
        except OSError as e:
            raise UnreadableError(f"{p}: cannot read: {e.strerror or e}") from e
        if after[:4] == b"fLaC":
            return "flac"
        for i in range(len(after) - 1):
            if after[i] == 0xFF and (after[i + 1] & 0xE0) == 0xE0 and (after[i + 1] & 0x06) != 0:
                return "mp3"
        raise UnsupportedContainerError(f"{p}: ID3-tagged file whose audio is not MPEG audio or FLAC")
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        layer = (head[1] >> 1) & 0x03
        if layer in (1, 2, 3):  # MPEG layer III/II/I (layer bits 0 = reserved, used by ADTS AAC)
            return "mp3"
        raise UnsupportedContainerError(f"{p}: ADTS AAC has no metadata container; remux to .m4a to label it")
    if head[:4] == b"\x1aE\xdf\xa3":
        raise UnsupportedContainerError(f"{p}: Matroska/WebM is not supported for labels")
    if head[:6] == b"#!AMR\n":
        raise UnsupportedContainerError(f"{p}: AMR has no metadata container")
    raise NotMediaError(f"{p}: not a WAV, MP3, FLAC, Ogg Vorbis/Opus or MP4/M4A file")


def _syncsafe(b: bytes) -> int:
    if len(b) < 4:
        return 0
    return (b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F)


# ------------------------------------------------------------------------------------------ audio hash


def audio_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of the decoded audio: interleaved little-endian int16 PCM of the first audio stream,
    prefixed by sample rate and channel count. Metadata is not decoded audio, so (re)writing the label does
    not change it; any edit of the sound does. Streams frame by frame (constant memory)."""
    import av
    import numpy as np

    p = Path(path)
    _check_file(p)
    h = hashlib.sha256()
    n = 0
    try:
        with av.open(str(p), metadata_errors="ignore") as c:
            streams = [s for s in c.streams if s.type == "audio"]
            if not streams:
                raise NoAudioStreamError(f"{p}: no audio stream")
            st = streams[0]
            rate = int(st.codec_context.sample_rate or 0)
            chans = int(st.codec_context.channels or 0)
            h.update(f"{HASH_SCHEME};sr={rate};ch={chans};".encode())
            for frame in c.decode(st):
                a = frame.to_ndarray()
                fmt = frame.format.name
                planar = frame.format.is_planar
                ch = len(frame.layout.channels)
                if planar:
                    a = a.T  # (samples, channels)
                else:
                    a = a.reshape(-1, ch)
                if fmt.startswith("flt") or fmt.startswith("dbl"):
                    q = np.clip(np.rint(a.astype(np.float64) * 32767.0), -32768, 32767).astype("<i2")
                elif fmt.startswith("s16"):
                    q = a.astype("<i2")
                elif fmt.startswith("s32"):
                    q = (a.astype(np.int64) >> 16).astype("<i2")
                elif fmt.startswith("u8"):
                    q = ((a.astype(np.int16) - 128) << 8).astype("<i2")
                elif fmt.startswith("s64"):
                    q = (a.astype(np.int64) >> 48).astype("<i2")
                else:  # pragma: no cover - every ffmpeg sample format is covered above
                    raise CorruptMediaError(f"{p}: unsupported sample format {fmt}")
                h.update(np.ascontiguousarray(q).tobytes())
                n += q.shape[0]
    except AudioError:
        raise
    except av.error.InvalidDataError as e:  # type: ignore[attr-defined]
        raise CorruptMediaError(f"{p}: cannot decode audio: {e}") from e
    except (av.error.FFmpegError, ValueError, IndexError) as e:  # type: ignore[attr-defined]
        raise CorruptMediaError(f"{p}: cannot decode audio: {e}") from e
    if n == 0:
        raise CorruptMediaError(f"{p}: no decodable audio samples")
    return h.hexdigest()


# ------------------------------------------------------------------------------------ signature codec


def _canonical(fields: dict[str, str], names: Iterable[str]) -> bytes:
    return json.dumps({k: fields.get(k, "") for k in names}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def signing_message(label: AigcLabel, role: Role, alg: str, key_id: str, ahash: str) -> bytes:
    """The exact bytes that are signed for `role` (see docs/labels.md)."""
    names = PRODUCER_SIGNED if role == "producer" else PROPAGATOR_SIGNED
    return b"\n".join([
        b"voxwarden-aigc-label/v1",
        role.encode(),
        alg.encode(),
        key_id.encode(),
        f"{HASH_SCHEME}:{ahash}".encode(),
        _canonical(label.to_dict(), names),
    ])


def encode_signature(alg: str, key_id: str, ahash: str, sig: bytes, pub: bytes | None) -> str:
    """``vw1;alg=...;kid=...;h=pcm16-sha256:<b64>;pk=<b64>;sig=<b64>`` (pk only for Ed25519)."""
    parts = [SIG_PREFIX, f"alg={alg}", f"kid={key_id}", f"h={HASH_SCHEME}:{_b64e(bytes.fromhex(ahash))}"]
    if pub is not None:
        parts.append(f"pk={_b64e(pub)}")
    parts.append(f"sig={_b64e(sig)}")
    return ";".join(parts)


@dataclass
class _ParsedSig:
    alg: str
    kid: str
    ahash: str
    sig: bytes
    pub: bytes | None


def decode_signature(text: str) -> _ParsedSig | None:
    """Parse a voxwarden signature string; None if the field holds something else (or nothing)."""
    if not text.startswith(SIG_PREFIX + ";"):
        return None
    kv: dict[str, str] = {}
    for part in text.split(";")[1:]:
        if "=" not in part:
            raise ValueError(f"bad signature part {part[:20]!r}")
        k, v = part.split("=", 1)
        kv[k] = v
    for need in ("alg", "kid", "h", "sig"):
        if need not in kv:
            raise ValueError(f"signature lacks {need!r}")
    scheme, _, hb = kv["h"].partition(":")
    if scheme != HASH_SCHEME:
        raise ValueError(f"unknown audio hash scheme {scheme!r}")
    try:
        ahash = _b64d(hb).hex()
        sig = _b64d(kv["sig"])
        pub = _b64d(kv["pk"]) if "pk" in kv else None
    except (ValueError, base64.binascii.Error) as e:  # type: ignore[attr-defined]
        raise ValueError(f"bad base64 in signature: {e}") from e
    if len(ahash) != 64:
        raise ValueError("audio hash is not 32 bytes")
    return _ParsedSig(alg=kv["alg"], kid=kv["kid"], ahash=ahash, sig=sig, pub=pub)


def sign_label(label: AigcLabel, ahash: str, key: LabelKey, role: Role = "producer") -> AigcLabel:
    """A copy of `label` with the `role` signature field filled in for audio hash `ahash`."""
    if not key.can_sign:
        raise LabelKeyError("cannot sign with a public key; give the private key file")
    out = AigcLabel(**vars(label))
    if role == "producer":
        out.reserved_code1 = ""
        out.reserved_code2 = ""  # the platform's signature covered the old producer fields: it is void now
    msg = signing_message(out, role, key.alg, key.key_id, ahash)
    enc = encode_signature(key.alg, key.key_id, ahash, key.sign(msg), key.public_bytes())
    if role == "producer":
        out.reserved_code1 = enc
    else:
        out.reserved_code2 = enc
    return out


def check_signatures(
    label: AigcLabel, ahash: str | None, keys: Sequence[LabelKey] = ()
) -> list[SignatureCheck]:
    """Check every voxwarden signature present in the label against the audio hash and keys."""
    out: list[SignatureCheck] = []
    by_kid = {k.key_id: k for k in keys}
    for role, fld, text in (("producer", "ReservedCode1", label.reserved_code1),
                            ("propagator", "ReservedCode2", label.reserved_code2)):
        try:
            ps = decode_signature(text)
        except ValueError as e:
            out.append(SignatureCheck(role, fld, None, None, False, None, f"{fld}: malformed signature: {e}"))
            continue
        if ps is None:
            continue
        trusted: bool | None = (ps.kid in by_kid) if keys else None
        if ahash is None:
            out.append(SignatureCheck(role, fld, ps.alg, ps.kid, None, trusted, f"{fld}: audio not hashed"))
            continue
        if ps.ahash != ahash:
            out.append(SignatureCheck(role, fld, ps.alg, ps.kid, False, trusted,
                                      f"{fld}: audio differs from the audio that was signed"))
            continue
        msg = signing_message(label, role, ps.alg, ps.kid, ps.ahash)  # type: ignore[arg-type]
        if ps.kid in by_kid:
            k = by_kid[ps.kid]
            if k.alg != ps.alg:
                ok, why = False, f"{fld}: key {ps.kid} is {k.alg}, signature says {ps.alg}"
            elif k.alg == "ed25519" and ps.pub is not None and ps.pub != k.public_bytes():
                ok, why = False, f"{fld}: embedded public key does not match trusted key {ps.kid}"
            else:
                ok = k.verify(msg, ps.sig)
                why = f"{fld}: {'valid' if ok else 'INVALID'} {ps.alg} signature by trusted key {ps.kid}"
            out.append(SignatureCheck(role, fld, ps.alg, ps.kid, ok, True, why))
            continue
        if ps.alg == "ed25519" and ps.pub is not None:
            try:
                from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

                emb = LabelKey(alg="ed25519", public=Ed25519PublicKey.from_public_bytes(ps.pub))
            except ValueError:
                out.append(SignatureCheck(role, fld, ps.alg, ps.kid, False, trusted,
                                          f"{fld}: bad embedded public key"))
                continue
            if emb.key_id != ps.kid:
                out.append(SignatureCheck(role, fld, ps.alg, ps.kid, False, trusted,
                                          f"{fld}: key id does not match embedded public key"))
                continue
            ok = emb.verify(msg, ps.sig)
            note = "not a trusted key" if keys else "no trusted key given: integrity only, not authenticity"
            out.append(SignatureCheck(role, fld, ps.alg, ps.kid, ok, trusted,
                                      f"{fld}: {'valid' if ok else 'INVALID'} ed25519 signature by embedded "
                                      f"key {ps.kid} ({note})"))
            continue
        out.append(SignatureCheck(role, fld, ps.alg, ps.kid, None, trusted,
                                  f"{fld}: {ps.alg} signature by key {ps.kid} cannot be checked without "
                                  "that key"))
    return out


def summarise(checks: list[SignatureCheck], keys: Sequence[LabelKey]) -> tuple[bool | None, str]:
    """Overall validity: False if any signature fails or (with trusted keys) none is by a trusted key;
    True if all present signatures verify; None if there is nothing checkable."""
    if not checks:
        return None, "label is not signed (no voxwarden signature in ReservedCode1/ReservedCode2)"
    reasons = "; ".join(c.reason for c in checks)
    if any(c.valid is False for c in checks):
        return False, reasons
    if keys and not any(c.trusted and c.valid for c in checks):
        return False, reasons + "; no signature by a trusted key"
    if all(c.valid is None for c in checks):
        return None, reasons
    if any(c.valid is None for c in checks):
        return None, reasons
    return True, reasons


# -------------------------------------------------------------------------------- container read/write


def _read_raw(path: Path, container: Container) -> str | None:
    """The stored AIGC JSON text, or None when the file has no label."""
    if container == "wav":
        return _wav_read(path)
    try:
        if container == "mp3":
            from mutagen.id3 import ID3, ID3NoHeaderError

            try:
                tags = ID3(str(path))
            except ID3NoHeaderError:
                return None
            frames = tags.getall(f"TXXX:{AIGC_KEY}")
            if not frames:
                return None
            return str(frames[0].text[0]) if frames[0].text else ""
        if container in ("flac", "ogg", "opus"):
            obj = _vorbis_obj(path, container)
            if obj.tags is None:
                return None
            vals = obj.tags.get(AIGC_KEY) or obj.tags.get(AIGC_KEY.lower())
            return str(vals[0]) if vals else None
        if container == "mp4":
            from mutagen.mp4 import MP4

            obj = MP4(str(path))
            if obj.tags is None:
                return None
            vals = obj.tags.get(MP4_FREEFORM)
            if not vals:
                return None
            return bytes(vals[0]).decode("utf-8", "replace")
    except AudioError:
        raise
    except Exception as e:  # mutagen raises many types for hostile files
        raise CorruptMediaError(f"{path}: cannot read {container} metadata: {e}") from e
    return None  # pragma: no cover


def _vorbis_obj(path: Path, container: str) -> Any:
    if container == "flac":
        from mutagen.flac import FLAC

        return FLAC(str(path))
    if container == "ogg":
        from mutagen.oggvorbis import OggVorbis

        return OggVorbis(str(path))
    from mutagen.oggopus import OggOpus

    return OggOpus(str(path))


def _write_raw(path: Path, container: Container, text: str | None) -> None:
    """Store (or with text=None remove) the AIGC JSON in the file at `path`, in place."""
    if container == "wav":
        _wav_write(path, text)
        return
    try:
        if container == "mp3":
            from mutagen.id3 import ID3, TXXX, ID3NoHeaderError

            try:
                tags = ID3(str(path))
            except ID3NoHeaderError:
                tags = ID3()
            tags.delall(f"TXXX:{AIGC_KEY}")
            if text is not None:
                tags.add(TXXX(encoding=3, desc=AIGC_KEY, text=[text]))
            tags.save(str(path))
            return
        if container in ("flac", "ogg", "opus"):
            obj = _vorbis_obj(path, container)
            if obj.tags is None:
                obj.add_tags()
            for k in list(obj.tags.keys()):
                if k.upper() == AIGC_KEY:
                    del obj.tags[k]
            if text is not None:
                obj.tags[AIGC_KEY] = [text]
            obj.save()
            return
        if container == "mp4":
            from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm

            obj = MP4(str(path))
            if obj.tags is None:
                obj.add_tags()
            if MP4_FREEFORM in obj.tags:
                del obj.tags[MP4_FREEFORM]
            if text is not None:
                obj.tags[MP4_FREEFORM] = [MP4FreeForm(text.encode("utf-8"), dataformat=AtomDataType.UTF8)]
            obj.save()
            return
    except AudioError:
        raise
    except Exception as e:
        raise CorruptMediaError(f"{path}: cannot write {container} metadata: {e}") from e


# --- RIFF/WAVE: a dedicated 'AIGC' chunk. Hand-rolled so we control placement and never touch 'data'.

_WAV_CHUNK = AIGC_KEY.encode("ascii")


def _wav_chunks(f: Any, size: int, path: Path) -> list[tuple[bytes, int, int]]:
    """(id, payload offset, payload size) of each top-level chunk, validated against the file size."""
    f.seek(0)
    hdr = f.read(12)
    if len(hdr) < 12 or hdr[:4] != b"RIFF" or hdr[8:12] != b"WAVE":
        raise NotMediaError(f"{path}: not a RIFF/WAVE file")
    chunks: list[tuple[bytes, int, int]] = []
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        ch = f.read(8)
        cid, csize = ch[:4], struct.unpack("<I", ch[4:8])[0]
        if pos + 8 + csize > size:
            if cid == b"data":  # streamed WAV with a placeholder size: data runs to end of file
                csize = size - pos - 8
            else:
                raise CorruptMediaError(f"{path}: truncated RIFF chunk {cid!r}")
        chunks.append((cid, pos + 8, csize))
        pos += 8 + csize + (csize & 1)
        if len(chunks) > 10000:
            raise CorruptMediaError(f"{path}: too many RIFF chunks")
    if not any(c[0] == b"data" for c in chunks):
        raise CorruptMediaError(f"{path}: WAV has no data chunk")
    return chunks


def _wav_read(path: Path) -> str | None:
    size = _check_file(path)
    try:
        with open(path, "rb") as f:
            for cid, off, csize in _wav_chunks(f, size, path):
                if cid == _WAV_CHUNK:
                    if csize > MAX_LABEL_BYTES:
                        raise CorruptMediaError(f"{path}: AIGC chunk larger than {MAX_LABEL_BYTES} bytes")
                    f.seek(off)
                    return f.read(csize).rstrip(b"\x00").decode("utf-8", "replace")
    except OSError as e:
        raise UnreadableError(f"{path}: cannot read: {e.strerror or e}") from e
    return None


def _wav_write(path: Path, text: str | None) -> None:
    """Rewrite the WAV with all chunks in order, old AIGC chunks dropped, the new one just before 'data'."""
    size = _check_file(path)
    payload = text.encode("utf-8") if text is not None else None
    tmp = path.with_name(path.name + ".riff-tmp")
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            chunks = _wav_chunks(src, size, path)
            dst.write(b"RIFF\x00\x00\x00\x00WAVE")
            for cid, off, csize in chunks:
                if cid == _WAV_CHUNK:
                    continue
                if cid == b"data" and payload is not None:
                    pad = b"\x00" * (len(payload) & 1)
                    dst.write(_WAV_CHUNK + struct.pack("<I", len(payload)) + payload + pad)
                    payload = None
                dst.write(cid + struct.pack("<I", csize))
                src.seek(off)
                _copy_n(src, dst, csize)
                if csize & 1:
                    dst.write(b"\x00")
            total = dst.tell()
            if total - 8 > 0xFFFFFFFF:
                raise UnsupportedContainerError(f"{path}: WAV would exceed 4 GiB")
            dst.seek(4)
            dst.write(struct.pack("<I", total - 8))
        os.replace(tmp, path)
    except OSError as e:
        raise UnreadableError(f"{path}: cannot rewrite WAV: {e.strerror or e}") from e
    finally:
        if tmp.exists():
            tmp.unlink()


def _copy_n(src: Any, dst: Any, n: int) -> None:
    while n > 0:
        buf = src.read(min(n, 1 << 20))
        if not buf:
            raise CorruptMediaError("unexpected end of file while copying RIFF chunk")
        dst.write(buf)
        n -= len(buf)


# ------------------------------------------------------------------------------------------ public API


def write_label(
    path: str | os.PathLike[str],
    label: AigcLabel,
    *,
    key: KeyLike | None = None,
    role: Role = "producer",
) -> None:
    """Write `label` into the audio file at `path`, atomically (temp copy, then rename).

    With `key`, sign it first: role="producer" fills ReservedCode1 (and clears ReservedCode2, whose
    platform signature would cover the old producer fields), role="propagator" fills ReservedCode2 and
    keeps ReservedCode1 as given. The audio itself is never re-encoded. A symlink is followed (its
    target gets the label).
    """
    p = Path(os.path.realpath(path))
    container = sniff_container(p)
    if not isinstance(label, AigcLabel):
        raise TypeError("label must be an AigcLabel")
    if role not in ("producer", "propagator"):
        raise ValueError(f"role must be 'producer' or 'propagator', not {role!r}")
    if key is not None:
        k = as_key(key)
        label = sign_label(label, audio_hash(p), k, role)
    text = label.to_json()
    if len(text.encode("utf-8")) > MAX_LABEL_BYTES:
        raise ValueError(f"label larger than {MAX_LABEL_BYTES} bytes")
    fd, tmpname = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".label-tmp", dir=str(p.parent))
    tmp = Path(tmpname)
    try:
        os.close(fd)
        shutil.copyfile(p, tmp)
        shutil.copymode(p, tmp)
        _write_raw(tmp, container, text)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        raise UnreadableError(f"{p}: cannot write label: {e.strerror or e}") from e
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_label(path: str | os.PathLike[str]) -> None:
    """Remove the AIGC label from the file (atomic, audio untouched). For tests and re-labelling tools."""
    p = Path(os.path.realpath(path))
    container = sniff_container(p)
    fd, tmpname = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".label-tmp", dir=str(p.parent))
    tmp = Path(tmpname)
    try:
        os.close(fd)
        shutil.copyfile(p, tmp)
        shutil.copymode(p, tmp)
        _write_raw(tmp, container, None)
        os.replace(tmp, p)
    except OSError as e:
        raise UnreadableError(f"{p}: cannot remove label: {e.strerror or e}") from e
    finally:
        if tmp.exists():
            tmp.unlink()


def read_label(
    path: str | os.PathLike[str],
    *,
    key: KeyLike | Sequence[KeyLike] | None = None,
) -> LabelReadResult:
    """Read the AIGC label and check its signatures against the decoded audio.

    `key`: trusted verification key(s) (public Ed25519 PEM, private PEM, or HMAC key). Without one, an
    Ed25519 signature is checked against the public key embedded in it — that proves the label belongs to
    this exact audio (integrity) but not who signed it. Unreadable/non-media files raise AudioError
    subclasses; a malformed label is reported in the result, not raised.
    """
    p = Path(path)
    keys = as_keys(key)
    container = sniff_container(p)
    raw = _read_raw(p, container)
    if raw is None:
        return LabelReadResult(None, None, "no AIGC label in file metadata", container=container)
    try:
        label = AigcLabel.from_json(raw)
    except (ValueError, RecursionError) as e:
        return LabelReadResult(None, False, f"malformed AIGC label: {e}", container=container, malformed=True)
    has_sig = any(t.startswith(SIG_PREFIX + ";") for t in (label.reserved_code1, label.reserved_code2))
    ahash = audio_hash(p) if has_sig else None
    checks = check_signatures(label, ahash, keys)
    valid, reason = summarise(checks, keys)
    if label.meaning is None:
        reason = f"Label value {label.label!r} is not one defined by GB 45438-2025 (1, 2, 3); " + reason
    return LabelReadResult(label, valid, reason, container=container, signatures=checks, audio_hash=ahash)
