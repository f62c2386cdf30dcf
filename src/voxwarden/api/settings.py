"""Service settings: embedded defaults, optionally overridden by a TOML file and command-line flags.

A config file is a flat TOML table (or the same keys under ``[server]``)::

    data_dir = "/var/lib/voxwarden"
    database_url = "postgresql+psycopg://vw@db:5432/voxwarden"   # optional; SQLite in data_dir if absent
    host = "0.0.0.0"
    port = 8080
    max_upload_bytes = 52428800

Unknown keys and wrong types are refused with `SettingsError`, so a typo never silently falls back to a
default.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """The configuration file is missing, unreadable, not TOML, or holds an unknown or invalid key."""

    code = "bad_config"


LIVE_WATERMARK_MODES = ("tenant", "off")  # live rooms: check with the tenant's own watermark key, or never


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to start; the defaults run a single-node SQLite service."""

    data_dir: Path = Path("voxwarden-data")
    database_url: str | None = None  # None: SQLite file inside data_dir
    evidence_dir: Path | None = None  # None: data_dir/evidence
    host: str = "127.0.0.1"
    port: int = 8080
    max_upload_bytes: int = 50 * 1024 * 1024
    max_concurrent_scans: int = 2  # scoring threads at once; more requests wait their turn
    model: str | None = None  # packaged model name or model directory; None: the default model
    page_size_default: int = 50
    page_size_max: int = 500
    rules_path: Path | None = None  # live alert rules (YAML, docs/live.md); None: live rooms raise no alerts
    # live overload policy (docs/live.md): seconds of complete windows a speaker may have waiting for scoring
    # before the oldest are skipped and reported; None: no bound (latency then grows without limit)
    live_max_backlog: float | None = 10.0
    live_score_threads: int | None = None  # threads scoring live windows; None: the CPU count, 2..8
    # live watermark checks (docs/api-rooms.md "Watermarks"): "tenant" checks each tenant's streams with its own
    # watermark key when it has one; "off" never checks. A check costs ~0.03 s CPU on marked, ~0.4 s on unmarked
    # speech, so they run every `live_watermark_every` seconds of stream time per speaker (first after 8 s), in one
    # worker thread off the window path; `live_watermark_budget` caps its duty cycle (due checks wait, newest wins)
    live_watermark: str = "tenant"
    live_watermark_every: float = 8.0
    live_watermark_budget: float = 0.25
    # alert webhooks (docs/webhooks.md): sent only when a signing secret is set
    webhook_secret: str | None = field(default=None, repr=False)  # HMAC key (signatures); None: webhooks off
    webhook_urls: tuple[str, ...] = ()  # endpoints for every alert, besides the rules' webhook actions
    webhook_max_attempts: int = 8  # tries before a delivery is dead-lettered (1-100)
    # long uploads become jobs (docs/api.md "Jobs"); a spool file in data_dir/spool holds the bytes meanwhile
    sync_max_seconds: float = 60.0  # declared duration above which POST /v1/scans answers 202 with a job
    sync_max_bytes: int = 20 * 1024 * 1024  # uploads larger than this are jobs too, whatever their duration
    job_workers: int = 1  # job threads in this process (0: this process only enqueues)
    job_lease_seconds: int = 60  # a worker heartbeats every third of this; a lease this old is requeued
    job_max_attempts: int = 3  # tries (crashed workers included) before a job is failed
    job_result_hours: int = 24  # how long a mark job's output file (marked/labelled audio) stays downloadable
    # reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs or CIDRs); none by default
    trusted_proxies: tuple[str, ...] = ()
    # review console (docs/console.md): signed session cookies; the secret is made and kept in data_dir if unset
    console_secret: str | None = field(default=None, repr=False)  # HMAC key for session cookies (>= 32 chars)
    console_secure_cookies: bool = True  # False only for plain-http localhost: cookies then lack `Secure`
    console_session_minutes: int = 480  # a login lasts this long (absolute, 5-10080)
    console_login_max_failures: int = 5  # failed logins of one account within the lockout window before it locks
    console_lockout_minutes: int = 15  # lockout window and duration (1-1440)

    def __post_init__(self) -> None:
        for name in ("data_dir", "evidence_dir", "rules_path"):  # accept str paths from callers
            v = getattr(self, name)
            if isinstance(v, str):
                object.__setattr__(self, name, Path(v).expanduser())
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be 0-65535, got {self.port!r}")
        for name in ("max_upload_bytes", "max_concurrent_scans", "page_size_default", "page_size_max"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise SettingsError(f"{name} must be a positive integer, got {v!r}")
        if self.page_size_default > self.page_size_max:
            raise SettingsError("page_size_default must not exceed page_size_max")
        if not isinstance(self.host, str) or not self.host:
            raise SettingsError("host must be a non-empty string")
        self._check_webhooks()
        self._check_console()
        self._check_jobs()
        self._check_live()
        self._check_live_watermark()

    def _check_live(self) -> None:
        v = self.live_max_backlog
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
                              or not 0 < v <= 3600):
            raise SettingsError(f"live_max_backlog must be a number of seconds in (0, 3600] or unset, got {v!r}")
        if v is not None:
            object.__setattr__(self, "live_max_backlog", float(v))
        n = self.live_score_threads
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 256):
            raise SettingsError(f"live_score_threads must be an integer in [1, 256] or unset, got {n!r}")

    def _check_live_watermark(self) -> None:
        if self.live_watermark not in LIVE_WATERMARK_MODES:
            raise SettingsError(f"live_watermark must be one of {', '.join(map(repr, LIVE_WATERMARK_MODES))}, "
                                f"got {self.live_watermark!r}")
        v = self.live_watermark_every
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 86400:
            raise SettingsError(f"live_watermark_every must be a number of seconds in [0, 86400], got {v!r}")
        object.__setattr__(self, "live_watermark_every", float(v))
        v = self.live_watermark_budget
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 256:
            raise SettingsError(f"live_watermark_budget must be a number in (0, 256] (seconds of checking per "
                                f"second), got {v!r}")
        object.__setattr__(self, "live_watermark_budget", float(v))

    def _check_jobs(self) -> None:
        v = self.sync_max_seconds
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 86400:
            raise SettingsError(f"sync_max_seconds must be a number in (0, 86400], got {v!r}")
        object.__setattr__(self, "sync_max_seconds", float(v))
        for name, lo, hi in (("sync_max_bytes", 1, 1 << 40), ("job_workers", 0, 64),
                             ("job_lease_seconds", 3, 86400), ("job_max_attempts", 1, 100),
                             ("job_result_hours", 1, 8760)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise SettingsError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
        proxies = self.trusted_proxies
        if isinstance(proxies, str):
            proxies = (proxies,)
        if not isinstance(proxies, list | tuple):
            raise SettingsError("trusted_proxies must be a list of IP addresses or CIDR networks")
        import ipaddress

        for p in proxies:
            try:
                if not isinstance(p, str):
                    raise TypeError(p)
                ipaddress.ip_network(p.strip(), strict=False)
            except (TypeError, ValueError) as e:
                raise SettingsError(f"trusted_proxies: {p!r} is not an IP address or CIDR network") from e
        object.__setattr__(self, "trusted_proxies", tuple(p.strip() for p in proxies))

    def _check_console(self) -> None:
        v = self.console_secret
        if v is not None and (not isinstance(v, str) or len(v) < 32):
            raise SettingsError("console_secret must be a string of at least 32 characters")
        if not isinstance(self.console_secure_cookies, bool):
            raise SettingsError(f"console_secure_cookies must be true or false, got {self.console_secure_cookies!r}")
        for name, lo, hi in (("console_session_minutes", 5, 10080), ("console_login_max_failures", 1, 100),
                             ("console_lockout_minutes", 1, 1440)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise SettingsError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")

    def _check_webhooks(self) -> None:
        if isinstance(self.webhook_urls, (list, str)):  # accept a list (TOML) or one URL
            urls = [self.webhook_urls] if isinstance(self.webhook_urls, str) else self.webhook_urls
            object.__setattr__(self, "webhook_urls", tuple(urls))
        if not isinstance(self.webhook_urls, tuple):
            raise SettingsError("webhook_urls must be a list of http(s) URLs")
        for u in self.webhook_urls:
            if (not isinstance(u, str) or len(u) > 2000 or not u.lower().startswith(("http://", "https://"))
                    or len(u.split("://", 1)[1].split("/", 1)[0]) == 0):
                raise SettingsError(f"webhook_urls: {u!r} is not an http(s)://host/... URL")
        if self.webhook_secret is not None and (not isinstance(self.webhook_secret, str)
                                                or len(self.webhook_secret) < 16):
            raise SettingsError("webhook_secret must be a string of at least 16 characters")
        if self.webhook_urls and self.webhook_secret is None:
            raise SettingsError("webhook_urls needs webhook_secret (deliveries are always signed)")
        v = self.webhook_max_attempts
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 100:
            raise SettingsError(f"webhook_max_attempts must be 1-100, got {v!r}")

    @property
    def resolved_evidence_dir(self) -> Path:
        return self.evidence_dir if self.evidence_dir is not None else self.data_dir / "evidence"

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with the given non-None values replaced (command-line flags win over the file)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Settings:
        """Build from a parsed config table; refuses unknown keys and wrong types."""
        if not isinstance(data, dict):
            raise SettingsError("configuration must be a table of key = value pairs")
        if "server" in data and isinstance(data["server"], dict):
            data = {**{k: v for k, v in data.items() if k != "server"}, **data["server"]}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for k, v in data.items():
            if k in ("data_dir", "evidence_dir", "rules_path"):
                if not isinstance(v, str) or not v:
                    raise SettingsError(f"{k} must be a path string")
                values[k] = Path(v).expanduser()
            elif k in ("live_max_backlog", "live_score_threads") and isinstance(v, str):
                if v.strip().lower() != "none":  # TOML has no null: "none" unsets the bound
                    raise SettingsError(f"{k} must be a positive number or \"none\", got {v!r}")
                values[k] = None
            elif k in ("database_url", "model", "host", "webhook_secret"):
                if not isinstance(v, str):
                    raise SettingsError(f"{k} must be a string")
                values[k] = v
            else:
                values[k] = v  # integers: checked in __post_init__
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> Settings:
        """Read a TOML config file (see the module docstring)."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise SettingsError(f"cannot read config file {p}: {e.strerror or e}") from e
        if len(raw) > 1_000_000:
            raise SettingsError(f"config file {p} is larger than 1 MB")
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise SettingsError(f"config file {p} is not valid TOML: {e}") from e
        return cls.from_mapping(data)
