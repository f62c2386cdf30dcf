"""Small helpers shared by the repo modules: idempotent insert, tenant-scoped lookup, input checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from voxwarden.store.errors import InvalidInputError, NotFoundError

T = TypeVar("T")


@dataclass(frozen=True)
class Saved(Generic[T]):
    """A row written idempotently: `created` is False when the key was already there (a replay)."""

    row: T
    created: bool


def get_or_create(
    session: Session, model: type[T], *, lookup: dict[str, Any], values: dict[str, Any]
) -> tuple[T, bool]:
    """Return the row matching the unique `lookup`, inserting it with `values` if absent.

    The insert runs in a savepoint: if a concurrent writer inserted the same key first, the unique
    constraint fires, the savepoint rolls back and we return the row the other writer committed.
    """
    q = select(model).filter_by(**lookup)
    row = session.scalars(q).first()
    if row is not None:
        return row, False
    try:
        with session.begin_nested():
            row = model(**lookup, **values)
            session.add(row)
            session.flush()
        return row, True
    except IntegrityError:
        row = session.scalars(q).first()
        if row is None:
            raise  # some other constraint (bad foreign key, check): not a duplicate key
        return row, False


def get_scoped(session: Session, model: type[T], tenant_id: str, row_id: str, *, lock: bool = False) -> T:
    """The row with this id if it belongs to `tenant_id`; `NotFoundError` otherwise (no cross-tenant leak)."""
    q = select(model).where(model.id == row_id, model.tenant_id == tenant_id)  # type: ignore[attr-defined]
    if lock:
        q = q.with_for_update()
    row = session.scalars(q).first()
    if row is None:
        raise NotFoundError(f"{model.__tablename__} {row_id!r} not found")  # type: ignore[attr-defined]
    return row


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """`value` if it is one of `choices`, else a clear `InvalidInputError`."""
    if value not in choices:
        raise InvalidInputError(f"bad {what} {value!r}: one of {', '.join(choices)}")
    return value


def check_text(value: str | None, max_len: int, what: str, *, required: bool = False) -> str | None:
    """Strings within the column's length and free of NUL (PostgreSQL refuses NUL in text)."""
    if value is None:
        if required:
            raise InvalidInputError(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise InvalidInputError(f"{what} must not be empty")
    if len(value) > max_len:
        raise InvalidInputError(f"{what} longer than {max_len} characters")
    if "\x00" in value:
        raise InvalidInputError(f"{what} contains a NUL character")
    return value


def normalise_json(value: Any, what: str) -> Any:
    """Round-trip through JSON so what we hash is exactly what the database will give back."""
    try:
        return json.loads(json.dumps(value, allow_nan=False, ensure_ascii=False))
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{what} must be JSON-serialisable without NaN/Infinity: {e}") from e
