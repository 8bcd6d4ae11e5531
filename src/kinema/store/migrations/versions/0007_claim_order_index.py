"""The claim's order in its index

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A claim takes the oldest ready task by (created_at, id): with the id in the index, the scan
    # stops at the first task that qualifies instead of sorting every ready one.
    op.create_index("ix_tasks_state_created_at_id", "tasks", ["state", "created_at", "id"])
    op.drop_index("ix_tasks_state_created_at", table_name="tasks")


def downgrade() -> None:
    op.create_index("ix_tasks_state_created_at", "tasks", ["state", "created_at"])
    op.drop_index("ix_tasks_state_created_at_id", table_name="tasks")
