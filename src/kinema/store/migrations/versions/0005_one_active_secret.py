"""One active webhook secret per account

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Concurrent first requests could each make an active secret: keep the newest of each
    # account active, and let the others sign beside it for the usual day after a rotation.
    op.execute(
        sa.text(
            "UPDATE webhook_secrets SET retired_at = created_at "
            "WHERE retired_at IS NULL AND id NOT IN ("
            "SELECT MAX(id) FROM webhook_secrets WHERE retired_at IS NULL GROUP BY account_id)"
        )
    )
    op.create_index(
        "uq_webhook_secrets_account_id_active",
        "webhook_secrets",
        ["account_id"],
        unique=True,
        sqlite_where=sa.text("retired_at IS NULL"),
        postgresql_where=sa.text("retired_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_webhook_secrets_account_id_active", table_name="webhook_secrets")
