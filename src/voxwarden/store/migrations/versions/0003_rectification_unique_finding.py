"""rectification_items: unique (tenant_id, run_id, finding) — one item per finding per assessment run

Re-running the findings step of an assessment (e.g. after a crash) must not file the same hazard twice.
Items without a run (run_id NULL) are not constrained (NULLs are distinct in both databases).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NAME = "uq_rectification_items_tenant_id_run_id_finding"


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER TABLE ... ADD CONSTRAINT, so the table is copied; PostgreSQL alters
    with op.batch_alter_table("rectification_items") as batch:
        batch.create_unique_constraint(NAME, ["tenant_id", "run_id", "finding"])


def downgrade() -> None:
    with op.batch_alter_table("rectification_items") as batch:
        batch.drop_constraint(NAME, type_="unique")
