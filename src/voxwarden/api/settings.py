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
from dataclasses import dataclass, fields, replace
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
            elif k in ("database_url", "model", "host"):
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
