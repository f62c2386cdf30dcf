"""console_revocations: console logouts shared by every process using the store

A logout used to be remembered by the process that served it only; with several workers or replicas the
signed cookie stayed valid elsewhere until it expired.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_revocations",
        sa.Column("sid_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_console_revocations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sid_hash", name=op.f("pk_console_revocations")),
    )
    op.create_index(op.f("ix_console_revocations_expires_at"), "console_revocations", ["expires_at"])
    op.create_index(op.f("ix_console_revocations_tenant_id"), "console_revocations", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_console_revocations_tenant_id"), table_name="console_revocations")
    op.drop_index(op.f("ix_console_revocations_expires_at"), table_name="console_revocations")
    op.drop_table("console_revocations")
