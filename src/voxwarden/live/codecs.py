"""Frame decoders for live streams: PCM16 (numpy) and Opus (PyAV's libopus/opus decoder).

A decoder turns one frame's payload into mono float32 samples at the codec's own rate; the session
resamples to the model's rate. Decoders refuse bad frames with a ``FrameError`` and stay usable.

Wire format of a binary frame (what ``split_frame`` reads): a 4-byte big-endian unsigned sequence number,
then the codec payload (PCM16 little-endian interleaved samples, or one Opus packet).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from voxwarden.live.events import MalformedFrameError, OversizedFrameError

PCM16_RATES = (8000, 16000, 48000)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
CODECS = ("pcm16", "opus")
FRAME_HEADER = struct.Struct(">I")
MAX_SEQ = 2**32 - 1
#: An Opus packet holds at most 120 ms; 1275 bytes per frame, 48 frames in a code-3 packet.
OPUS_MAX_PACKET = 1275 * 48


@dataclass(frozen=True)
class CodecSpec:
    """What the hello promised: codec, sample rate and channel count of the frames."""

    codec: str
    sample_rate: int
    channels: int = 1


class FrameDecoder(Protocol):
    """One stream's decoder: payload bytes → mono float32 samples at ``sample_rate``."""

    sample_rate: int

    def decode(self, payload: bytes) -> np.ndarray: ...


def split_frame(data: bytes | bytearray | memoryview) -> tuple[int, bytes]:
    """Split a binary frame into (sequence number, payload); raises ``MalformedFrameError`` if too short."""
    b = bytes(data)
    if len(b) <= FRAME_HEADER.size:
        raise MalformedFrameError(
            f"frame of {len(b)} bytes: expected a {FRAME_HEADER.size}-byte sequence number and a payload")
    (seq,) = FRAME_HEADER.unpack_from(b)
    return int(seq), b[FRAME_HEADER.size:]


def pack_frame(seq: int, payload: bytes) -> bytes:
    """The inverse of ``split_frame`` (for clients, tests and benchmarks)."""
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"sequence number {seq} out of range 0..{MAX_SEQ}")
    return FRAME_HEADER.pack(seq) + bytes(payload)


class Pcm16Decoder:
    """Signed 16-bit little-endian PCM, channels interleaved; multi-channel audio is averaged to mono."""

    def __init__(self, spec: CodecSpec, *, max_frame_seconds: float = 1.0) -> None:
        self.sample_rate = spec.sample_rate
        self.channels = spec.channels
        self.max_bytes = int(round(max_frame_seconds * spec.sample_rate)) * 2 * spec.channels

    def decode(self, payload: bytes) -> np.ndarray:
        n = len(payload)
        if n == 0:
            raise MalformedFrameError("empty PCM16 frame")
        if n > self.max_bytes:
            raise OversizedFrameError(f"PCM16 frame of {n} bytes exceeds the maximum {self.max_bytes} bytes")
        step = 2 * self.channels
        if n % step:
            raise MalformedFrameError(
                f"PCM16 frame of {n} bytes is not a whole number of {self.channels}-channel 16-bit samples")
        x = np.frombuffer(payload, dtype="<i2").astype(np.float32) * (1.0 / 32768.0)
        if self.channels > 1:
            x = x.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
        return x


class OpusDecoder:
    """One Opus packet per frame, decoded with PyAV (FFmpeg's libopus wrapper, or its native decoder)."""

    def __init__(self, spec: CodecSpec, *, max_packet_bytes: int = OPUS_MAX_PACKET) -> None:
        import av  # heavy: imported only when an Opus stream opens

        self._av = av
        self.channels = spec.channels
        self.max_bytes = int(max_packet_bytes)
        ctx = None
        for name in ("libopus", "opus"):
            try:
                ctx = av.codec.CodecContext.create(name, "r")
                break
            except Exception:  # noqa: BLE001 - try the next decoder FFmpeg may have been built with
                continue
        if ctx is None:
            raise RuntimeError("this FFmpeg build has no Opus decoder (libopus or opus)")
        ctx.sample_rate = 48000  # Opus decodes at 48 kHz whatever the encoder's input rate was
        ctx.layout = "stereo" if spec.channels == 2 else "mono"
        self._ctx = ctx
        self.sample_rate = 48000

    def decode(self, payload: bytes) -> np.ndarray:
        n = len(payload)
        if n == 0:
            raise MalformedFrameError("empty Opus packet")
        if n > self.max_bytes:
            raise OversizedFrameError(f"Opus packet of {n} bytes exceeds the maximum {self.max_bytes} bytes")
        try:
            frames = self._ctx.decode(self._av.Packet(payload))
        except (self._av.error.FFmpegError, ValueError) as e:
            raise MalformedFrameError(f"undecodable Opus packet of {n} bytes ({e})") from None
        parts = [_to_mono(f) for f in frames]
        if not parts:
            return np.zeros(0, dtype=np.float32)
        if any(f.sample_rate != self.sample_rate for f in frames):
            raise MalformedFrameError(f"Opus decoder produced {frames[0].sample_rate} Hz, expected 48000 Hz")
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _to_mono(frame) -> np.ndarray:  # noqa: ANN001 - av.AudioFrame, imported lazily
    a = frame.to_ndarray()
    ch = len(frame.layout.channels)
    if frame.format.is_planar:
        a = a.reshape(ch, -1)
    else:
        a = a.reshape(-1, ch).T
    if a.dtype == np.int16:
        a = a.astype(np.float32) * (1.0 / 32768.0)
    elif a.dtype == np.int32:
        a = a.astype(np.float32) * (1.0 / 2147483648.0)
    else:
        a = a.astype(np.float32, copy=False)
    x = a.mean(axis=0, dtype=np.float32) if ch > 1 else a[0]
    return np.ascontiguousarray(np.clip(np.nan_to_num(x), -1.0, 1.0), dtype=np.float32)


def make_decoder(spec: CodecSpec, *, max_frame_seconds: float = 1.0) -> FrameDecoder:
    """The decoder for a validated codec spec."""
    if spec.codec == "pcm16":
        return Pcm16Decoder(spec, max_frame_seconds=max_frame_seconds)
    if spec.codec == "opus":
        return OpusDecoder(spec)
    raise ValueError(f"unknown codec {spec.codec!r}")
