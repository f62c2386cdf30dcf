"""Audio intake: decode any media to mono float32, resample, find speech, cut analysis windows.

Importing this package is cheap: PyAV, onnxruntime and scipy are imported on first use.
"""

from __future__ import annotations

from .clip import Clip, SourceInfo
from .decode import load
from .errors import (
    AudioError,
    CorruptMediaError,
    EmptyFileError,
    NoAudioStreamError,
    NotMediaError,
    SilenceError,
    TooLittleSpeechError,
    TooLongError,
    UnreadableError,
)
from .inputs import MEDIA_EXTENSIONS, InputItem, iter_inputs
from .resample import StreamResampler, resample
from .segment import Window, windows
from .vad import VadStream, check_silence, check_speech, speech_probs, speech_regions

__all__ = [
    "Clip",
    "SourceInfo",
    "AudioError",
    "CorruptMediaError",
    "EmptyFileError",
    "NoAudioStreamError",
    "NotMediaError",
    "SilenceError",
    "TooLittleSpeechError",
    "TooLongError",
    "UnreadableError",
    "load",
    "resample",
    "StreamResampler",
    "speech_regions",
    "speech_probs",
    "VadStream",
    "check_speech",
    "check_silence",
    "windows",
    "Window",
    "iter_inputs",
    "InputItem",
    "MEDIA_EXTENSIONS",
]
