"""`assessment.yaml`: what `voxwarden assess` measures, for which deployment, and what it declares.

The file names the platform and its feature types, the voxwarden store (data dir, tenant), the labelled
test set for the detector, the watermark/label checks, and the organisational facts voxwarden cannot
measure (``declared`` blocks, reported with source ``declared:config``). Relative paths are read against
the config file's folder. Every problem raises `AssessConfigError` with a message naming the file and key.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from voxwarden.assess.controls import FEATURE_TYPES
from voxwarden.assess.live_load import LiveLoadConfig

MAX_CONFIG_BYTES = 256 * 1024
DECLARED_SECTIONS = ("detection", "live", "labelling", "logging", "governance")
DEFAULT_DEGRADATIONS = ("mp3:64k", "opus:16k")
DEFAULT_LENGTH_BUCKETS = (2.0, 4.0, 8.0)
MAX_LIVE_ROOMS = 200
MAX_LIVE_SECONDS = 120.0


class AssessConfigError(ValueError):
    """The assessment config is missing, unreadable or invalid; the message names the file and key."""


@dataclass
class DetectionConfig:
    protocol: Path
    audio_dir: Path
    model: str | None = None
    threshold: float | None = None
    eval_dataset: str | None = None
    max_trials: int = 500
    degradations: list[str] = field(default_factory=lambda: list(DEFAULT_DEGRADATIONS))
    length_buckets: list[float] = field(default_factory=lambda: list(DEFAULT_LENGTH_BUCKETS))


@dataclass
class LabellingConfig:
    watermark_clips: list[Path] = field(default_factory=list)
    attacks: list[str] = field(default_factory=lambda: ["mp3:64k", "noise:20db"])
    watermark_key: Path | None = None
    label_sample_dir: Path | None = None
    max_files: int = 200


@dataclass
class LoggingConfig:
    required_days: int = 184
    retention_days: int | None = None  # declared; the tenant's stored policy wins when set


@dataclass
class AssessmentConfig:
    """The parsed `assessment.yaml`."""

    path: Path
    platform: str
    features: list[str]
    tenant: str
    data_dir: Path | None  # None: a fresh store in the output folder
    create_tenant: bool
    owner: str | None
    detection: DetectionConfig | None
    labelling: LabellingConfig
    logging: LoggingConfig
    control_files: list[Path] | None
    declared: dict[str, dict[str, Any]]
    live: LiveLoadConfig | None = None  # None: no load run (live facts only as declared)
    service: ServiceConfig | None = None  # None: score in-process with a local model


@dataclass
class ServiceConfig:
    """``service:``: the deployed voxwarden to measure; the API key comes from an environment variable."""

    url: str
    api_key_env: str
    api_key: str = field(repr=False, default="")
    timeout_s: float = 60.0
    retries: int = 2


_TOP = {"version", "platform", "store", "detection", "labelling", "logging", "live", "governance", "controls",
        "owner", "service"}


def _err(path: Path, key: str, msg: str) -> AssessConfigError:
    return AssessConfigError(f"{path}: {key}: {msg}")


def _mapping(path: Path, key: str, v: Any, allowed: set[str]) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _err(path, key, f"must be a mapping, got {type(v).__name__}")
    unknown = sorted(str(k) for k in v if k not in allowed)
    if unknown:
        raise _err(path, key, f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    return v


def _str(path: Path, key: str, v: Any, *, required: bool = False) -> str | None:
    if v is None:
        if required:
            raise _err(path, key, "is required")
        return None
    if not isinstance(v, str) or not v.strip():
        raise _err(path, key, "must be a non-empty string")
    return v


def _int(path: Path, key: str, v: Any, default: int | None, lo: int = 1) -> int | None:
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _err(path, key, f"must be an integer >= {lo}, got {v!r}")
    return v


def _path(base: Path, path: Path, key: str, v: Any, *, must_exist: bool = True) -> Path | None:
    s = _str(path, key, v)
    if s is None:
        return None
    p = Path(s).expanduser()
    p = p if p.is_absolute() else (base / p)
    if must_exist and not p.exists():
        raise _err(path, key, f"{p} does not exist")
    return p


def load_config(path: str | Path) -> AssessmentConfig:
    """Read and validate `assessment.yaml`; raises `AssessConfigError` on any problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise AssessConfigError(f"{p}: cannot read: {e.strerror or e}") from e
    if len(raw) > MAX_CONFIG_BYTES:
        raise AssessConfigError(f"{p}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        doc = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise AssessConfigError(f"{p}: not UTF-8") from e
    except yaml.YAMLError as e:
        raise AssessConfigError(f"{p}: invalid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise AssessConfigError(f"{p}: top level must be a mapping")
    return parse_config(doc, p)


def parse_config(doc: dict[str, Any], path: Path) -> AssessmentConfig:
    """Validate a loaded mapping; `path` names the file in errors and anchors relative paths."""
    base = path.parent.resolve()
    _mapping(path, "(top level)", doc, _TOP)
    if doc.get("version", 1) != 1:
        raise _err(path, "version", f"unsupported version {doc.get('version')!r} (expected 1)")
    plat = _mapping(path, "platform", doc.get("platform"), {"name", "features"})
    name = _str(path, "platform.name", plat.get("name"), required=True)
    feats = plat.get("features")
    if not isinstance(feats, list) or not feats or not all(isinstance(f, str) for f in feats):
        raise _err(path, "platform.features", f"must be a non-empty list of: {', '.join(FEATURE_TYPES)}")
    bad = [f for f in feats if f not in FEATURE_TYPES]
    if bad:
        raise _err(path, "platform.features", f"unknown feature(s) {bad} (known: {', '.join(FEATURE_TYPES)})")

    store = _mapping(path, "store", doc.get("store"), {"data_dir", "tenant", "create_tenant"})
    data_dir = _path(base, path, "store.data_dir", store.get("data_dir"), must_exist=False)
    tenant = _str(path, "store.tenant", store.get("tenant")) or "default"
    create = store.get("create_tenant", False)
    if not isinstance(create, bool):
        raise _err(path, "store.create_tenant", "must be true or false")

    declared: dict[str, dict[str, Any]] = {}
    det_doc = _mapping(path, "detection", doc.get("detection"),
                       {"protocol", "audio_dir", "model", "threshold", "eval_dataset", "max_trials", "declared",
                        "degradations", "length_buckets"})
    detection = None
    if det_doc.get("protocol") is not None:
        thr = det_doc.get("threshold")
        if thr is not None and (isinstance(thr, bool) or not isinstance(thr, int | float) or not 0 <= thr <= 1):
            raise _err(path, "detection.threshold", f"must be a number in [0, 1], got {thr!r}")
        proto = _path(base, path, "detection.protocol", det_doc["protocol"])
        assert proto is not None
        audio_dir = _path(base, path, "detection.audio_dir", det_doc.get("audio_dir")) or proto.parent
        detection = DetectionConfig(
            protocol=proto, audio_dir=audio_dir, model=_str(path, "detection.model", det_doc.get("model")),
            threshold=None if thr is None else float(thr),
            eval_dataset=_str(path, "detection.eval_dataset", det_doc.get("eval_dataset")) or proto.name,
            max_trials=_int(path, "detection.max_trials", det_doc.get("max_trials"), 500) or 500,
            degradations=_degradations(path, det_doc.get("degradations")),
            length_buckets=_buckets(path, det_doc.get("length_buckets")),
        )
    declared["detection"] = _declared(path, "detection", det_doc.get("declared"))

    lab = _mapping(path, "labelling", doc.get("labelling"),
                   {"watermark_clips", "attacks", "watermark_key", "label_sample_dir", "max_files", "declared"})
    clips = lab.get("watermark_clips") or []
    attacks = lab.get("attacks", ["mp3:64k", "noise:20db"])
    if not isinstance(clips, list) or not isinstance(attacks, list) or not all(isinstance(a, str) for a in attacks):
        raise _err(path, "labelling", "watermark_clips and attacks must be lists of strings")
    from voxwarden.audio.degrade import DegradeError, parse_spec

    for a in attacks:
        try:
            parse_spec(a)
        except DegradeError as e:
            raise _err(path, "labelling.attacks", f"{a!r}: {e}") from e
    labelling = LabellingConfig(
        watermark_clips=[_path(base, path, f"labelling.watermark_clips[{i}]", c) for i, c in enumerate(clips)],  # type: ignore[misc]
        attacks=list(attacks),
        watermark_key=_path(base, path, "labelling.watermark_key", lab.get("watermark_key")),
        label_sample_dir=_path(base, path, "labelling.label_sample_dir", lab.get("label_sample_dir")),
        max_files=_int(path, "labelling.max_files", lab.get("max_files"), 200) or 200,
    )
    declared["labelling"] = _declared(path, "labelling", lab.get("declared"))

    lg = _mapping(path, "logging", doc.get("logging"), {"required_days", "retention_days", "declared"})
    logging = LoggingConfig(
        required_days=_int(path, "logging.required_days", lg.get("required_days"), 184) or 184,
        retention_days=_int(path, "logging.retention_days", lg.get("retention_days"), None),
    )
    declared["logging"] = _declared(path, "logging", lg.get("declared"))
    live_load, declared["live"] = _live(base, path, doc.get("live"), detection is not None)
    declared["governance"] = _declared(path, "governance", doc.get("governance"))

    ctl = doc.get("controls")
    control_files = None
    if ctl is not None:
        if not isinstance(ctl, list) or not ctl:
            raise _err(path, "controls", "must be a non-empty list of control files or folders")
        control_files = [_path(base, path, f"controls[{i}]", c) for i, c in enumerate(ctl)]  # type: ignore[misc]
    return AssessmentConfig(
        path=path, platform=name, features=list(feats), tenant=tenant, data_dir=data_dir,  # type: ignore[arg-type]
        create_tenant=create, owner=_str(path, "owner", doc.get("owner")), detection=detection,
        labelling=labelling, logging=logging, control_files=control_files, declared=declared, live=live_load,
        service=_service(path, doc.get("service")),
    )


def _service(path: Path, v: Any) -> ServiceConfig | None:
    """``service: {url, api_key_env, timeout_s, retries}``; the key is read from the environment now, so a
    missing key is a config error before anything runs."""
    if v is None:
        return None
    svc = _mapping(path, "service", v, {"url", "api_key_env", "timeout_s", "retries"})
    url = _str(path, "service.url", svc.get("url"), required=True)
    assert url is not None
    why = check_url(url)
    if why:
        raise _err(path, "service.url", f"{url!r} {why}")
    var = _str(path, "service.api_key_env", svc.get("api_key_env")) or "VOXWARDEN_API_KEY"
    if not var.replace("_", "").isalnum():
        raise _err(path, "service.api_key_env", f"must name an environment variable, got {var!r}")
    key = os.environ.get(var, "").strip()
    if not key:
        raise _err(path, "service.api_key_env", f"environment variable {var} is not set (it must hold the API key; "
                                                "the key is never read from the config file)")
    t = svc.get("timeout_s", 60.0)
    if isinstance(t, bool) or not isinstance(t, int | float) or not 1 <= t <= 600:
        raise _err(path, "service.timeout_s", f"must be seconds in [1, 600], got {t!r}")
    retries = _int(path, "service.retries", svc.get("retries"), 2, lo=0)
    if retries is None or retries > 5:
        raise _err(path, "service.retries", f"must be an integer in [0, 5], got {retries!r}")
    return ServiceConfig(url=url.rstrip("/"), api_key_env=var, api_key=key, timeout_s=float(t), retries=retries)


def check_url(url: str) -> str | None:
    """Why `url` is not a usable service base URL (http/https with a host, no query), or None when it is."""
    try:
        u = urllib.parse.urlsplit(url)
        _ = u.port
    except ValueError as e:
        return f"is not a URL: {e}"
    if u.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not u.hostname:
        return "has no host"
    if u.query or u.fragment:
        return "must not have a query or fragment"
    if u.username or u.password:
        return "must not carry credentials (use api_key_env)"
    return None


def _declared(path: Path, key: str, v: Any) -> dict[str, Any]:
    """A flat mapping of facts the operator declares (bool, number, text or list of text)."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        where = key if "." in key or key in ("live", "governance") else f"{key}.declared"
        raise _err(path, where, "must be a mapping")
    for k, val in v.items():
        if not isinstance(k, str) or not k.replace("_", "").isalnum():
            raise _err(path, key, f"bad fact name {k!r}")
        ok = isinstance(val, bool | int | float | str) or (
            isinstance(val, list) and all(isinstance(x, str) for x in val))
        if not ok:
            raise _err(path, f"{key}.{k}", f"must be true/false, a number, text or a list of text, got {val!r}")
    return dict(v)


def _degradations(path: Path, v: Any) -> list[str]:
    if v is None:
        return list(DEFAULT_DEGRADATIONS)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _err(path, "detection.degradations", "must be a list of degradation specs (e.g. mp3:64k, opus:16k)")
    from voxwarden.audio.degrade import DegradeError, parse_spec

    for x in v:
        if x == "none":
            continue
        try:
            parse_spec(x)
        except DegradeError as e:
            raise _err(path, "detection.degradations", f"{x!r}: {e}") from e
    return list(dict.fromkeys(v))


def _buckets(path: Path, v: Any) -> list[float]:
    if v is None:
        return list(DEFAULT_LENGTH_BUCKETS)
    ok = isinstance(v, list) and v and all(not isinstance(x, bool) and isinstance(x, int | float) and x > 0 for x in v)
    if not ok or any(b <= a for a, b in zip(v, v[1:], strict=False)):
        raise _err(path, "detection.length_buckets", f"must be ascending positive seconds (e.g. [2, 4, 8]), got {v!r}")
    return [float(x) for x in v]


_LIVE_LOAD = {"rooms", "seconds", "synthetic_rooms", "rules", "model", "max_queue_s", "synthetic_clips",
              "bonafide_clips"}


def _live(base: Path, path: Path, v: Any, have_detection: bool) -> tuple[LiveLoadConfig | None, dict[str, Any]]:
    """``live:`` is ``{load: {...}, declared: {...}}``; a flat mapping of facts (the first format) is still
    read as declared facts, with no load run."""
    if v is None:
        return None, {}
    if not isinstance(v, dict):
        raise _err(path, "live", "must be a mapping")
    if not ({"load", "declared"} & set(v)):
        return None, _declared(path, "live", v)
    live = _mapping(path, "live", v, {"load", "declared"})
    declared = _declared(path, "live.declared", live.get("declared"))
    ld = live.get("load")
    if ld is None or ld is False:
        return None, declared
    ld = _mapping(path, "live.load", {} if ld is True else ld, _LIVE_LOAD)
    rooms = _int(path, "live.load.rooms", ld.get("rooms"), 4) or 4
    if rooms > MAX_LIVE_ROOMS:
        raise _err(path, "live.load.rooms", f"at most {MAX_LIVE_ROOMS}, got {rooms}")
    secs = ld.get("seconds", 6.0)
    if isinstance(secs, bool) or not isinstance(secs, int | float) or not 1.0 <= secs <= MAX_LIVE_SECONDS:
        raise _err(path, "live.load.seconds", f"must be a number of seconds in [1, {MAX_LIVE_SECONDS:g}], got {secs!r}")
    syn = _int(path, "live.load.synthetic_rooms", ld.get("synthetic_rooms"), None, lo=0)
    if syn is not None and syn > rooms:
        raise _err(path, "live.load.synthetic_rooms", f"must be at most rooms ({rooms}), got {syn}")
    q = ld.get("max_queue_s", 2.0)
    if isinstance(q, bool) or not isinstance(q, int | float) or not 0.05 <= q <= 60:
        raise _err(path, "live.load.max_queue_s", f"must be seconds in [0.05, 60], got {q!r}")
    clips = {}
    for key in ("synthetic_clips", "bonafide_clips"):
        c = ld.get(key) or []
        if not isinstance(c, list):
            raise _err(path, f"live.load.{key}", "must be a list of audio files")
        clips[key] = [_path(base, path, f"live.load.{key}[{i}]", x) for i, x in enumerate(c)]
    if not clips["synthetic_clips"] and not have_detection:
        import shutil

        if shutil.which("espeak-ng") is None:
            raise _err(path, "live.load", "needs synthetic speech: list synthetic_clips, configure detection.protocol, "
                                          "or install espeak-ng")
    rules = _path(base, path, "live.load.rules", ld.get("rules"))
    if rules is not None:
        from voxwarden.live import RulesError, load_rules_file

        try:
            load_rules_file(rules)
        except RulesError as e:
            raise _err(path, "live.load.rules", str(e)) from e
    return LiveLoadConfig(
        rooms=rooms, seconds=float(secs), synthetic_rooms=syn, rules=rules,
        model=_str(path, "live.load.model", ld.get("model")), max_queue_s=float(q),
        synthetic_clips=clips["synthetic_clips"], bonafide_clips=clips["bonafide_clips"],  # type: ignore[arg-type]
    ), declared
