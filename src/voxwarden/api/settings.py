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

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """The configuration file is missing, unreadable, not TOML, or holds an unknown or invalid key."""

    code = "bad_config"


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
    # alert webhooks (docs/webhooks.md): sent only when a signing secret is set
    webhook_secret: str | None = field(default=None, repr=False)  # HMAC key (signatures); None: webhooks off
    webhook_urls: tuple[str, ...] = ()  # endpoints for every alert, besides the rules' webhook actions
    webhook_max_attempts: int = 8  # tries before a delivery is dead-lettered (1-100)

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
