"""Typed errors of the store. The service maps them to HTTP statuses, the CLI to exit codes."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for everything the store refuses or cannot do."""

    code = "store_error"

    def to_dict(self) -> dict[str, str]:
        return {"type": self.code, "message": str(self)}


class StoreUnavailableError(StoreError):
    """The database cannot be reached or opened (bad URL, server down, unwritable data directory)."""

    code = "store_unavailable"


class SchemaError(StoreError):
    """The database schema is missing or older than this code expects: run the migrations."""

    code = "schema_outdated"


class NotFoundError(StoreError):
    """No such row for this tenant (rows of other tenants are reported the same way)."""

    code = "not_found"


class ConflictError(StoreError):
    """The write contradicts what is stored (e.g. same idempotency key with different content)."""

    code = "conflict"


class InvalidInputError(StoreError, ValueError):
    """A value the store will not keep (bad scope, role, status, negative size, oversized field)."""

    code = "invalid_input"


class AppendOnlyError(StoreError):
    """An attempt to change or delete an audit-log row."""

    code = "append_only"


class RetentionError(StoreError):
    """A retention setting below the legal minimum without an explicit, reasoned override."""

    code = "retention_too_short"


class EvidenceError(StoreError):
    """An evidence file is missing, unreadable, or its bytes no longer match its sha256."""

    code = "evidence_error"


class AuthError(StoreError):
    """Unknown, revoked or expired credential, or wrong password (deliberately unspecific)."""

    code = "auth_failed"
