"""The store: scans, jobs, rooms, alerts, cases, evidence, audit log, webhooks, assessments.

SQLAlchemy 2 + Alembic; SQLite in a data directory by default, PostgreSQL by URL. Use the facade for
engine and transactions and the per-concern modules for reads and writes::

    from voxwarden.store import Store, scans
    store = Store(data_dir="/var/lib/voxwarden")        # migrates to the newest schema
    with store.session() as s:                          # one transaction
        saved = scans.record_scan(s, tenant_id, result, sha256=digest, idempotency_key=key)

Modules: `keys` (tenants, API keys, users), `scans`, `jobs`, `rooms` (rooms, sessions, window scores),
`alerts`, `cases`, `evidence`, `audit`, `webhooks`, `assessments`, `retention`, `migrations`.
"""

from voxwarden.store.audit import AuditCheck, AuditContext, verify_audit_chain
from voxwarden.store.db import Store, make_engine, sqlite_url
from voxwarden.store.errors import (
    AppendOnlyError,
    AuthError,
    ConflictError,
    EvidenceError,
    InvalidInputError,
    NotFoundError,
    RetentionError,
    SchemaError,
    StoreError,
    StoreUnavailableError,
)
from voxwarden.store.evidence import EvidenceRef, EvidenceStore
from voxwarden.store.repo import Saved
from voxwarden.store.retention import PurgeReport, RetentionPolicy, purge

__all__ = [
    "AppendOnlyError",
    "AuditCheck",
    "AuditContext",
    "AuthError",
    "ConflictError",
    "EvidenceError",
    "EvidenceRef",
    "EvidenceStore",
    "InvalidInputError",
    "NotFoundError",
    "PurgeReport",
    "RetentionError",
    "RetentionPolicy",
    "Saved",
    "SchemaError",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "make_engine",
    "purge",
    "sqlite_url",
    "verify_audit_chain",
]
