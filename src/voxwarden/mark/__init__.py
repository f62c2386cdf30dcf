"""Labelling AI-generated speech: the keyed audio watermark (and, beside it, metadata and notices).

    from voxwarden.mark import Marker
    m = Marker.from_key_file("wm.key")
    y = m.embed(samples, sr, payload=b"\\x01\\x02\\x03\\x04")
    r = m.detect(y, sr)   # MarkResult(present=True, payload=b"\\x01\\x02\\x03\\x04", ...)
"""

from voxwarden.mark.keys import DEMO_KEY, KeyFileError, generate_key, payload_from_ids
from voxwarden.mark.watermark import Marker, MarkResult, WatermarkError

__all__ = [
    "DEMO_KEY",
    "KeyFileError",
    "MarkResult",
    "Marker",
    "WatermarkError",
    "generate_key",
    "payload_from_ids",
]
