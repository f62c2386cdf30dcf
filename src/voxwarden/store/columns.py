"""Column types and small helpers shared by the store's tables and repo functions.

Times are always timezone-aware UTC in Python. SQLite has no time-zone type, so `UTCDateTime` stores naive
UTC there and re-attaches UTC on the way out; PostgreSQL gets `timestamp with time zone`. The same value
then reads back identically on both, which the audit hash chain relies on.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# An auto-incrementing 64-bit key that is a real ROWID alias on SQLite.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC time (datetime.now(UTC))")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, aware UTC, truncated to microseconds (what both databases keep)."""
    return datetime.now(UTC)


def new_id() -> str:
    """Random 128-bit id as 32 hex chars: unguessable, portable, no sequence contention."""
    return uuid.uuid4().hex


def as_utc(value: datetime) -> datetime:
    """Reject naive datetimes early with a clear message; normalise aware ones to UTC."""
    if value.tzinfo is None:
        raise ValueError("naive datetime; pass an aware UTC time (datetime.now(UTC))")
    return value.astimezone(UTC)
