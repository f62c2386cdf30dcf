"""watermark_checks: every live watermark check of a session span, alert or not

Before, a check was kept only when it fired an alert (in the alert's details); an auditor could not see
which stretches of a room were checked for a label, nor what was found where no rule fired.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watermark_checks",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("result IN ('present', 'absent', 'error', 'skipped')",
                           name=op.f("ck_watermark_checks_result")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["room_sessions.id"],
            name=op.f("fk_watermark_checks_session_id_room_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_watermark_checks_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watermark_checks")),
        sa.UniqueConstraint("session_id", "start", "end", name=op.f("uq_watermark_checks_session_id_start_end")),
    )
    op.create_index(op.f("ix_watermark_checks_created_at"), "watermark_checks", ["created_at"])
    op.create_index(op.f("ix_watermark_checks_tenant_id"), "watermark_checks", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_watermark_checks_tenant_id"), table_name="watermark_checks")
    op.drop_index(op.f("ix_watermark_checks_created_at"), table_name="watermark_checks")
    op.drop_table("watermark_checks")
