"""Decode any common audio/video file (or bytes) into a mono float32 `Clip` at a fixed rate.

Decoding is done by PyAV (FFmpeg), reading from an open file object so format probing goes by content.
Every failure maps to one typed `AudioError` naming the input:

* missing path, directory, FIFO/device, dangling symlink, symlink loop, permission denied -> UnreadableError
  (checked with `stat` *before* opening, so a FIFO never blocks us);
* zero bytes (or a valid container holding no samples) -> EmptyFileError;
* bytes FFmpeg cannot identify, images, text, subtitles -> NotMediaError;
* a real video (or other media) with no audio track -> NoAudioStreamError;
* declared or decoded length over `max_duration` -> TooLongError. The declared length is checked before
  decoding; the decoded length is checked frame by frame, so a file lying about its length is stopped as
  soon as it passes the limit and is never held in memory whole;
* corrupt or truncated audio -> CorruptMediaError, under this policy: packets the decoder rejects are
  skipped and counted. The clip is kept if something decoded and it covers at least `MIN_DECODED_FRACTION`
  of the container's declared duration (when one is declared) and the rejected packets are not the
  majority; the shortfall/errors are recorded in `SourceInfo.warnings` and `SourceInfo.decode_errors`.
  Otherwise CorruptMediaError.

Audio is downmixed (channel mean) and resampled (`StreamResampler`, identical to `resample`) while
decoding, so memory is bounded by the output at `sr`.
"""

from __future__ import annotations

import io
import os
import stat
from typing import Any, BinaryIO

import numpy as np

from .clip import Clip, SourceInfo
from .errors import (
    AudioError,
    CorruptMediaError,
    EmptyFileError,
    NoAudioStreamError,
    NotMediaError,
    TooLongError,
    UnreadableError,
)
from .resample import StreamResampler, resample

__all__ = ["load", "check_readable_file", "MIN_DECODED_FRACTION"]

# Keep a partially decodable file if at least this share of its declared duration decoded.
MIN_DECODED_FRACTION = 0.5
# Give up after this many consecutive packets the decoder rejects (hostile/garbage streams).
_MAX_CONSECUTIVE_ERRORS = 200
# Demuxers that FFmpeg uses for stills and text: a "video" from them means "not media" for us.
_NOT_MEDIA_FORMATS = {"image2", "image2pipe", "tty", "apng", "gif", "webp", "ico", "bin", "lrc", "srt"}

# Leading bytes of media containers: if FFmpeg cannot open a file that starts like one of these, the file
# is damaged media (CorruptMediaError), not some other kind of file (NotMediaError).
_MEDIA_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"RIFF"),
    (0, b"RIFX"),
    (0, b"RF64"),
    (0, b"fLaC"),
    (0, b"OggS"),
    (0, b"ID3"),
    (0, b"\x1aE\xdf\xa3"),
    (0, b"#!AMR"),
    (4, b"ftyp"),
    (4, b"moov"),
    (4, b"mdat"),
    (0, b"FORM"),
    (0, b"caff"),
    (0, b".snd"),
    (0, b"0&\xb2u\x8ef\xcf\x11"),
)


def _looks_like_media(head: bytes) -> bool:
    if any(head[o : o + len(m)] == m for o, m in _MEDIA_MAGIC):
        return True
    # MPEG audio / ADTS frame sync (11-12 set bits).
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0


_INT_SCALE = {
    np.dtype(np.int16): 32768.0,
    np.dtype(np.int32): 2147483648.0,
    np.dtype(np.int64): 9223372036854775808.0,
}


def _describe(src: str | os.PathLike[str] | bytes) -> str:
    if isinstance(src, bytes | bytearray | memoryview):
        return f"<{len(src)} bytes>"
    return os.fspath(src)


def check_readable_file(path: str | os.PathLike[str]) -> os.stat_result:
    """Return `stat` of `path` if it is a regular file we may read, else raise UnreadableError.

    Follows symlinks; a dangling symlink or a symlink loop is unreadable. Never opens the file, so FIFOs
    and devices are rejected without blocking.
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            raise UnreadableError(f"{p}: dangling symlink (target does not exist)") from None
        raise UnreadableError(f"{p}: no such file") from None
    except PermissionError:
        raise UnreadableError(f"{p}: permission denied") from None
    except OSError as e:  # ELOOP, ENAMETOOLONG, ENOTDIR, EIO, ...
        raise UnreadableError(f"{p}: cannot access ({e.strerror or e})") from None
    except ValueError as e:  # embedded NUL byte
        raise UnreadableError(f"{p!r}: invalid path ({e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableError(f"{p}: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
        raise UnreadableError(f"{p}: not a regular file ({kind})")
    if not os.access(p, os.R_OK):
        raise UnreadableError(f"{p}: permission denied")
    return st


def _frame_to_mono(frame: Any) -> np.ndarray:
    """One decoded audio frame -> mono float32 in [-1, 1] (channel mean).

    Sums channel views one at a time: far cheaper than `mean(axis=...)` over a strided int array."""
    arr = frame.to_ndarray()
    channels = max(1, int(frame.layout.nb_channels))
    if frame.format.is_planar:
        chans = [arr[c] for c in range(min(channels, arr.shape[0]))]
    else:
        packed = arr.reshape(-1, channels)
        chans = [packed[:, c] for c in range(channels)]
    mono = chans[0].astype(np.float32)  # always a fresh array
    for c in chans[1:]:
        mono += c
    dt = arr.dtype
    if dt in _INT_SCALE:
        mono *= np.float32(1.0 / (len(chans) * _INT_SCALE[dt]))
        return mono
    if dt == np.uint8:
        mono *= np.float32(1.0 / (128.0 * len(chans)))
        mono -= np.float32(1.0)
        return mono
    if len(chans) > 1:
        mono *= np.float32(1.0 / len(chans))
    if not np.isfinite(mono).all():
        mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(mono, -1.0, 1.0, out=mono)


def _declared_duration(container: Any, stream: Any) -> float | None:
    try:
        if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
            return float(stream.duration * stream.time_base)
        if container.duration is not None and container.duration > 0:
            return float(container.duration) / 1_000_000.0
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return None
    return None


def _pick_audio_stream(container: Any) -> Any:
    streams = list(container.streams.audio)
    for s in streams:
        try:
            if s.codec_context is not None and (s.codec_context.sample_rate or 0) > 0:
                return s
        except Exception:  # a broken stream header: try the next one
            continue
    return streams[0]


def _open_container(fobj: BinaryIO, name: str) -> Any:
    import av

    try:
        return av.open(fobj, mode="r", metadata_errors="replace")
    except (av.error.FFmpegError, EOFError) as e:
        try:
            fobj.seek(0)
            head = fobj.read(16)
        except (OSError, ValueError):
            head = b""
        if _looks_like_media(head):
            raise CorruptMediaError(f"{name}: damaged media file, cannot be opened ({e})") from None
        if isinstance(e, av.error.InvalidDataError):
            raise NotMediaError(f"{name}: not a recognised audio/video format") from None
        raise NotMediaError(f"{name}: cannot open as media ({e})") from None
    except (OSError, ValueError, RuntimeError, MemoryError) as e:
        raise CorruptMediaError(f"{name}: cannot open media ({type(e).__name__}: {e})") from None


def _decode(container: Any, name: str, path: str | None, sr: int, max_duration: float | None) -> Clip:
    import av

    fmt_name = str(getattr(container.format, "name", "") or "")
    if not container.streams.audio:
        has_video = bool(container.streams.video)
        if not has_video or fmt_name in _NOT_MEDIA_FORMATS or fmt_name.endswith("_pipe"):
            raise NotMediaError(f"{name}: not audio or video (FFmpeg format '{fmt_name or '?'}')")
        raise NoAudioStreamError(f"{name}: media file ({fmt_name}) has no audio stream")
    stream = _pick_audio_stream(container)
    cc = stream.codec_context
    codec = getattr(getattr(cc, "codec", None), "canonical_name", None) or getattr(cc, "name", None)
    declared = _declared_duration(container, stream)
    if max_duration is not None and declared is not None and declared > max_duration:
        raise TooLongError(f"{name}: {declared:.1f} s long, over the {max_duration:g} s limit")

    native_sr = 0
    channels = int(getattr(cc, "channels", 0) or 0) or None
    rs: StreamResampler | None = None
    out: list[np.ndarray] = []
    n_native = 0
    errors = 0
    consecutive = 0
    good_packets = 0
    stopped_early = ""

    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            break
        except (av.error.FFmpegError, EOFError, OSError, ValueError) as e:
            errors += 1
            stopped_early = f"demuxing stopped early ({type(e).__name__})"
            break
        try:
            frames = packet.decode()
        except (av.error.FFmpegError, EOFError, ValueError, RuntimeError):
            errors += 1
            consecutive += 1
            if consecutive >= _MAX_CONSECUTIVE_ERRORS:
                stopped_early = f"gave up after {consecutive} undecodable packets in a row"
                break
            continue
        consecutive = 0
        if packet.size:
            good_packets += 1
        for frame in frames:
            if frame.samples <= 0 or not frame.sample_rate:
                continue
            mono = _frame_to_mono(frame)
            if native_sr == 0:
                native_sr = int(frame.sample_rate)
                channels = int(frame.layout.nb_channels) or channels
                rs = StreamResampler(native_sr, sr)
            elif int(frame.sample_rate) != native_sr:  # mid-stream rate change (chained Ogg, HE-AAC)
                mono = resample(mono, int(frame.sample_rate), native_sr)
            n_native += mono.size
            if max_duration is not None and n_native > max_duration * native_sr:
                raise TooLongError(
                    f"{name}: longer than the {max_duration:g} s limit (stopped decoding at "
                    f"{n_native / native_sr:.1f} s)"
                )
            assert rs is not None
            y = rs.push(mono)
            if y.size:
                out.append(y)

    if rs is None or n_native == 0:
        if errors or (declared or 0) > 0:
            raise CorruptMediaError(f"{name}: audio stream ({codec}) could not be decoded")
        raise EmptyFileError(f"{name}: contains no audio samples")
    out.append(rs.flush())
    samples = np.concatenate(out) if len(out) > 1 else out[0]
    decoded = n_native / native_sr

    warnings: list[str] = []
    if errors and errors > good_packets:
        raise CorruptMediaError(
            f"{name}: audio stream ({codec}) is corrupt: {errors} bad packets vs {good_packets} good"
        )
    if declared and decoded < MIN_DECODED_FRACTION * declared:
        raise CorruptMediaError(
            f"{name}: truncated or corrupt: decoded {decoded:.2f} s of a declared {declared:.2f} s"
        )
    if errors:
        warnings.append(f"{errors} undecodable packet(s) skipped")
    if stopped_early:
        warnings.append(stopped_early)
    if declared and decoded < 0.98 * declared - 0.05:
        warnings.append(f"truncated: decoded {decoded:.2f} s of a declared {declared:.2f} s")

    info = SourceInfo(
        path=path,
        container=fmt_name or None,
        codec=codec,
        sample_rate=native_sr,
        channels=channels,
        duration=decoded,
        decode_errors=errors,
        warnings=tuple(warnings),
    )
    return Clip(samples=np.ascontiguousarray(samples, dtype=np.float32), sr=sr, source=info)


def load(
    src: str | os.PathLike[str] | bytes,
    *,
    sr: int = 16000,
    max_duration: float | None = 3600.0,
) -> Clip:
    """Decode a media file path (or its bytes) to a mono float32 `Clip` at `sr` Hz.

    Accepts WAV, FLAC, MP3, AAC/M4A, Ogg Vorbis/Opus, AMR, WebM and the audio track of MP4/MOV/MKV
    (anything FFmpeg reads). Raises an `AudioError` subclass naming the input on any bad input; see the
    module docstring for the mapping and the partial-decode policy. `max_duration=None` disables the
    length limit.
    """
    if int(sr) != sr or sr <= 0:
        raise ValueError(f"sr must be a positive integer, got {sr!r}")
    if max_duration is not None and not max_duration > 0:
        raise ValueError(f"max_duration must be positive or None, got {max_duration!r}")
    name = _describe(src)
    path: str | None = None
    fobj: BinaryIO
    if isinstance(src, bytes | bytearray | memoryview):
        if len(src) == 0:
            raise EmptyFileError("<0 bytes>: empty input")
        fobj = io.BytesIO(bytes(src))
    elif isinstance(src, str | os.PathLike):
        path = os.fspath(src)
        st = check_readable_file(path)
        if st.st_size == 0:
            raise EmptyFileError(f"{name}: empty file (0 bytes)")
        try:
            fobj = open(path, "rb")  # closed in the finally below
        except PermissionError:
            raise UnreadableError(f"{name}: permission denied") from None
        except OSError as e:
            raise UnreadableError(f"{name}: cannot open ({e.strerror or e})") from None
    else:
        raise TypeError(f"load() takes a path or bytes, not {type(src).__name__}")

    try:
        container = _open_container(fobj, name)
        try:
            return _decode(container, name, path, int(sr), max_duration)
        finally:
            container.close()
    except AudioError:
        raise
    except MemoryError:
        raise CorruptMediaError(f"{name}: out of memory while decoding") from None
    except Exception as e:  # any other decoder failure is this input's problem
        raise CorruptMediaError(f"{name}: decoding failed ({type(e).__name__}: {e})") from None
    finally:
        fobj.close()
