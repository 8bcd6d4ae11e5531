"""An account's intakes in flight, in an index of their own

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: As `kinema.store.schema.INTAKE_IN_FLIGHT` says it today; a migration keeps its own copy.
_IN_FLIGHT = "state = 'waiting' AND lease_owner IS NOT NULL"


def upgrade() -> None:
    # An intake claim counts, for every waiting task, its account's intakes in flight: through
    # (account_id, state) that was a visit to each of the account's waiting tasks (200 ms a claim
    # with 3,000 waiting over 32 accounts); here it is the few in flight.
    op.create_index(
        "ix_tasks_account_id_intakes",
        "tasks",
        ["account_id"],
        sqlite_where=text(_IN_FLIGHT),
        postgresql_where=text(_IN_FLIGHT),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_account_id_intakes", table_name="tasks")
