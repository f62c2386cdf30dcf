"""Read and write audio files at their native sample rate and channel count (for embedding a mark).

`voxwarden.audio.load` gives 16 kHz mono for the detector; marking must instead keep the file's own rate
and channels, so this module decodes with soundfile (WAV/FLAC/Ogg, exact PCM) and falls back to PyAV
(MP3, AAC/M4A, Opus, video containers). Every failure is one typed `AudioError` naming the file.
Writing picks the format from the output suffix and replaces the target atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from voxwarden.audio.decode import check_readable_file
from voxwarden.audio.errors import (
    AudioError,
    CorruptMediaError,
    EmptyFileError,
    NoAudioStreamError,
    NotMediaError,
    TooLongError,
    UnreadableError,
)

__all__ = ["read_audio", "write_audio", "WRITE_FORMATS", "MAX_SECONDS"]

MAX_SECONDS = 1800.0
#: output suffix -> (writer, format/codec, subtype/bit rate)
WRITE_FORMATS: dict[str, tuple[str, str, str | int]] = {
    ".wav": ("sf", "WAV", "PCM_16"),
    ".flac": ("sf", "FLAC", "PCM_16"),
    ".ogg": ("sf", "OGG", "VORBIS"),
    ".mp3": ("av", "libmp3lame", 192_000),
    ".m4a": ("av", "aac", 192_000),
    ".aac": ("av", "aac", 192_000),
    ".opus": ("av", "libopus", 96_000),
}
_AV_CONTAINER = {".mp3": "mp3", ".m4a": "ipod", ".aac": "adts", ".opus": "opus"}


def read_audio(path: str | os.PathLike[str], max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, int]:
    """Decode `path` -> (float32 samples (N,) or (N, C) in [-1, 1], sample rate)."""
    name = os.fspath(path)
    st = check_readable_file(name)
    if st.st_size == 0:
        raise EmptyFileError(f"{name}: empty file (0 bytes)")
    data: np.ndarray | None = None
    sr = 0
    try:
        import soundfile as sf

        info = sf.info(name)
        if info.frames > max_seconds * info.samplerate:
            raise TooLongError(f"{name}: {info.duration:.0f} s is longer than the {max_seconds:.0f} s limit")
        data, sr = sf.read(name, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception:  # not something libsndfile reads: let FFmpeg try
        data = None
    if data is None:
        data, sr = _read_av(name, max_seconds)
    if data.shape[0] == 0:
        raise EmptyFileError(f"{name}: no audio samples")
    if not np.all(np.isfinite(data)):
        data = np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0)
    return (data[:, 0].copy() if data.shape[1] == 1 else data), int(sr)


def _read_av(name: str, max_seconds: float) -> tuple[np.ndarray, int]:
    import av

    try:
        container = av.open(name, "r")
    except PermissionError:
        raise UnreadableError(f"{name}: permission denied") from None
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as e:
        raise NotMediaError(f"{name}: not an audio/video file FFmpeg can open ({e})") from None
    try:
        streams = [s for s in container.streams.audio if (s.codec_context.sample_rate or 0) > 0]
        if not streams:
            raise NoAudioStreamError(f"{name}: no audio track")
        stream = streams[0]
        sr = int(stream.codec_context.sample_rate)
        layout = stream.codec_context.layout
        n_ch = max(1, int(getattr(layout, "nb_channels", 0) or stream.codec_context.channels or 1))
        if n_ch > 2:
            layout_name = "stereo"
            n_ch = 2
        else:
            layout_name = "stereo" if n_ch == 2 else "mono"
        rs = av.AudioResampler(format="fltp", layout=layout_name, rate=sr)
        chunks: list[np.ndarray] = []
        total = 0
        errors = 0
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except (av.FFmpegError, ValueError):
                errors += 1
                if errors > 200:
                    raise CorruptMediaError(f"{name}: too many undecodable packets") from None
                continue
            for frame in frames:
                for f in rs.resample(frame):
                    a = f.to_ndarray()
                    chunks.append(a)
                    total += a.shape[1]
                if total > max_seconds * sr:
                    raise TooLongError(f"{name}: longer than the {max_seconds:.0f} s limit")
        for f in rs.resample(None):
            chunks.append(f.to_ndarray())
        if not chunks:
            if errors:
                raise CorruptMediaError(f"{name}: no audio could be decoded")
            raise EmptyFileError(f"{name}: no audio samples")
        return np.concatenate(chunks, axis=1).T.astype(np.float32), sr
    except AudioError:
        raise
    except Exception as e:  # any other decoder failure is this input's problem
        raise CorruptMediaError(f"{name}: decoding failed ({type(e).__name__}: {e})") from None
    finally:
        container.close()


def write_audio(path: str | os.PathLike[str], samples: np.ndarray, sr: int) -> None:
    """Write (N,) or (N, C) float samples to `path` in the format of its suffix (see `WRITE_FORMATS`)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in WRITE_FORMATS:
        known = ", ".join(WRITE_FORMATS)
        raise ValueError(f"cannot write {suffix or 'files without a suffix'}; use one of {known}")
    if not p.parent.exists() or not p.parent.is_dir():
        raise UnreadableError(f"{p.parent}: output directory does not exist")
    kind, fmt, sub = WRITE_FORMATS[suffix]
    x = np.asarray(samples)
    if x.dtype.kind != "f":
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    fd, tmp = tempfile.mkstemp(prefix=".vwm-", suffix=suffix, dir=str(p.parent))
    os.close(fd)
    try:
        if kind == "sf":
            import soundfile as sf

            # Vorbis at its default quality blurs the mark: ask for high quality
            extra = {"compression_level": 0.1} if fmt == "OGG" else {}
            sf.write(tmp, x, int(sr), format=fmt, subtype=str(sub), **extra)
        else:
            _write_av(tmp, x, int(sr), fmt, int(sub), _AV_CONTAINER[suffix])
        os.replace(tmp, p)
    except OSError as e:
        raise UnreadableError(f"{p}: cannot write ({e.strerror or e})") from None
    except Exception as e:
        raise ValueError(f"{p}: cannot encode {suffix} at {sr} Hz ({type(e).__name__}: {e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_av(path: str, x: np.ndarray, sr: int, codec: str, bit_rate: int, container_fmt: str) -> None:
    import av

    x2 = x[:, None] if x.ndim == 1 else x
    n_ch = x2.shape[1]
    if n_ch > 2:
        raise ValueError("lossy output supports mono or stereo only")
    layout = "stereo" if n_ch == 2 else "mono"
    with av.open(path, "w", format=container_fmt) as out:
        st: Any = out.add_stream(codec, rate=sr)
        st.bit_rate = bit_rate
        st.layout = layout
        fs = st.codec_context.frame_size or 1024
        pcm = (x2 * 32767.0).astype(np.int16)
        pts = 0
        for i in range(0, len(pcm), fs):
            chunk = np.ascontiguousarray(pcm[i : i + fs])
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
            frame.sample_rate = sr
            frame.pts = pts
            pts += len(chunk)
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)
