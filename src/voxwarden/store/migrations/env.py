"""Alembic environment: runs only on a connection handed in by `voxwarden.store.migrations.upgrade`."""

from __future__ import annotations

from alembic import context

from voxwarden.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run voxwarden migrations through voxwarden.store.migrations.upgrade(url), not the alembic CLI"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
