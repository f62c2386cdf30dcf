"""audit_log: index (action, at) for the console's failed-login counts

The per-address login limit and the account lockout count recent ``console.login_failed`` entries; with the
limit now read from the store (shared by every process) the query must not scan the whole log. Only an index
is added: the log's rows and its append-only triggers are untouched.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_audit_log_action_at"), "audit_log", ["action", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_action_at"), table_name="audit_log")
