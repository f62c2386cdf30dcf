"""Typed errors for audio intake. Every bad input maps to exactly one of these, with a clear message."""

from __future__ import annotations


class AudioError(Exception):
    """Base class: this one input could not be turned into usable speech audio."""

    code = "audio_error"

    def to_dict(self) -> dict[str, str]:
        return {"type": self.code, "message": str(self)}


class UnreadableError(AudioError):
    """Path missing, not a regular file, permission denied, or a symlink loop."""

    code = "unreadable"


class EmptyFileError(AudioError):
    """Zero-length file."""

    code = "empty_file"


class NotMediaError(AudioError):
    """The bytes are not a media container/codec we can open."""

    code = "not_media"


class CorruptMediaError(AudioError):
    """A media container that opens but whose audio cannot be decoded."""

    code = "corrupt_media"


class NoAudioStreamError(AudioError):
    """A media file (e.g. a video) that has no audio track."""

    code = "no_audio_stream"


class TooLongError(AudioError):
    """Longer than the configured maximum duration."""

    code = "too_long"


class SilenceError(AudioError):
    """Digital silence (or near it) throughout."""

    code = "silence"


class TooLittleSpeechError(AudioError):
    """Less speech than the configured minimum."""

    code = "too_little_speech"
