"""Watermark keys: generation, key files, the public demo key, and keyed derivations.

A key is 32 random bytes. Everything secret in the watermark comes from it: the tile-to-bit layout,
the spreading signs, the quantiser dithers, the interleaver and the MAC inside the payload. Without the
key a mark can neither be found (the detector sees noise) nor forged (the 20-bit MAC fails).

Key file format: one line of 64 hex digits (comments starting with ``#`` and blank lines are ignored),
or exactly 32 raw bytes. ``voxwarden mark keygen OUT`` writes the hex form with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = [
    "DEMO_KEY",
    "KEY_BYTES",
    "KeyFileError",
    "generate_key",
    "load_key_file",
    "mac_bits",
    "payload_from_ids",
    "pattern_seed",
    "write_key_file",
]

KEY_BYTES = 32
MAX_KEY_FILE_BYTES = 4096

#: Public demo key. It is NOT secret: anyone can read it here and find or forge marks made with it.
#: Use it only for demos and tests; production deployments must run ``voxwarden mark keygen``.
DEMO_KEY = hashlib.sha256(b"voxwarden public demo watermark key v1 - NOT SECRET").digest()


class KeyFileError(ValueError):
    """A key file is missing, unreadable, too big, or not 32 bytes / 64 hex digits."""



def generate_key() -> bytes:
    """32 bytes from the OS CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def check_key(key: bytes) -> bytes:
    """Validate a key given in code: bytes-like, at least 16 bytes (32 recommended)."""
    if not isinstance(key, bytes | bytearray | memoryview):
        raise TypeError(f"watermark key must be bytes, got {type(key).__name__}")
    key = bytes(key)
    if len(key) < 16:
        raise ValueError(f"watermark key too short ({len(key)} bytes); use 32 random bytes")
    return key


def write_key_file(path: str | os.PathLike[str], key: bytes | None = None, overwrite: bool = False) -> bytes:
    """Write `key` (new random key if None) as hex to `path` with permissions 0600; return the key."""
    key = check_key(key) if key is not None else generate_key()
    p = Path(path)
    if p.exists() and not overwrite:
        raise KeyFileError(f"{p} already exists; refusing to overwrite a key")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(p, flags, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# voxwarden watermark key (secret: keep it private)\n")
            f.write(key.hex() + "\n")
    except OSError as e:
        raise KeyFileError(f"cannot write key file {p}: {e.strerror or e}") from None
    return key


def load_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read a key file (64 hex digits, or 32 raw bytes); raise `KeyFileError` with the reason."""
    p = Path(path)
    try:
        if not p.is_file():
            raise KeyFileError(f"key file {p} does not exist or is not a regular file")
        if p.stat().st_size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"key file {p} is too big to be a key")
        raw = p.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read key file {p}: {e.strerror or e}") from None
    if len(raw) == KEY_BYTES and not _looks_hex(raw):
        return raw
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"key file {p} is neither 32 raw bytes nor hex text") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    hexstr = "".join(lines)
    try:
        key = bytes.fromhex(hexstr)
    except ValueError:
        raise KeyFileError(f"key file {p} does not contain hex digits") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"key file {p} holds {len(key)} bytes; expected {KEY_BYTES}")
    return key


def _looks_hex(raw: bytes) -> bool:
    try:
        bytes.fromhex(raw.decode("ascii"))
        return True
    except (UnicodeDecodeError, ValueError):
        return False


def pattern_seed(key: bytes, label: bytes) -> int:
    """A 256-bit integer seed for numpy's PCG64, derived from the key and a purpose label."""
    return int.from_bytes(hmac.new(key, b"voxwarden-wm-v1/" + label, hashlib.sha256).digest(), "big")


def mac_bits(key: bytes, payload: bytes, n_bits: int) -> int:
    """Keyed MAC (HMAC-SHA256, truncated to `n_bits`) of a payload, as an integer."""
    d = hmac.new(key, b"voxwarden-wm-v1/mac/" + payload, hashlib.sha256).digest()
    return int.from_bytes(d[:8], "big") >> (64 - n_bits)


def payload_from_ids(provider: str, content_id: str, n_bytes: int = 4) -> bytes:
    """Map (provider id, content id) to the 32-bit payload: the first bytes of SHA-256 of both.

    The payload is a fingerprint to look up in the platform's records (the store), not the ids
    themselves: 32 bits cannot hold arbitrary strings. Collisions are possible across ~65 000 items
    (birthday bound); the store should keep the full ids next to the payload.
    """
    for name, v in (("provider", provider), ("content_id", content_id)):
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"{name} must be a non-empty string")
        if len(v) > 1024:
            raise ValueError(f"{name} longer than 1024 characters")
    h = hashlib.sha256(provider.strip().encode("utf-8") + b"\x00" + content_id.strip().encode("utf-8"))
    return h.digest()[:n_bytes]
