"""voxwarden: detect, label and audit synthetic speech on voice platforms.

Three lines at the call site::

    from voxwarden import Detector
    det = Detector.load()
    res = det.score("call.m4a")
"""

__version__ = "0.1.0"

__all__ = ["Detector", "ScanResult", "Segment", "__version__"]


def __getattr__(name: str):  # lazy: importing voxwarden stays cheap (no onnxruntime at import)
    if name in ("Detector", "ScanResult", "Segment"):
        from voxwarden import detect

        return getattr(detect, name)
    raise AttributeError(name)
