"""The SQL schema. Migrations (``store/migrations``) create exactly this; a test compares them.

Times are Unix milliseconds in BIGINT columns, the wire's unit, so no time zone is ever guessed.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

#: A task whose input a worker is fetching: waiting, and held.
INTAKE_IN_FLIGHT = "state = 'waiting' AND lease_owner IS NOT NULL"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    #: The sum of the account's ledger rows, kept beside them in the same transactions.
    Column("balance", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("balance >= 0", name="balance_not_negative"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    #: The first characters of the key, to recognise it in listings; the rest is never stored.
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

credit_ledger = Table(
    "credit_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("task_id", String(32), nullable=True, index=True),
    Column("delta", BigInteger, nullable=False),
    Column("reason", String(16), nullable=False),
    Column("note", String(200), nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("model", String(100), nullable=False),
    Column("state", String(16), nullable=False),
    Column("param", Text, nullable=False),
    Column("input_json", Text, nullable=False),
    Column("callback_url", Text, nullable=True),
    Column("price", BigInteger, nullable=False),
    Column("progress", Integer, nullable=False, server_default=text("0")),
    Column("result_json", Text, nullable=True),
    Column("fail_code", String(8), nullable=False, server_default=""),
    Column("fail_msg", Text, nullable=False, server_default=""),
    #: Raised by every claim; finishing writes check it, so a stale worker cannot finish.
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    #: How many times a worker holding the task vanished (its lease ran out).
    Column("lapses", Integer, nullable=False, server_default=text("0")),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", BigInteger, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("input_key", Text, nullable=True),
    #: What the engine saved for resuming (a remote engine's upstream job id), JSON.
    Column("engine_state", Text, nullable=True),
    #: When retention deleted the result files; the record stays until its own retention.
    Column("files_purged_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("started_at", BigInteger, nullable=True),
    Column("completed_at", BigInteger, nullable=True),
    Column("deadline_at", BigInteger, nullable=False),
    CheckConstraint("state IN ('waiting', 'queuing', 'generating', 'success', 'fail')", name="state_known"),
    # The claim query: the oldest unleased task in a state, per state, in the claim's order.
    Index("ix_tasks_state_created_at_id", "state", "created_at", "id"),
    # An account's own listing, newest first, and its running count.
    Index("ix_tasks_account_id_created_at", "account_id", "created_at"),
    Index("ix_tasks_account_id_state", "account_id", "state"),
    # An account's intakes in flight, which an intake claim counts for every waiting task.
    Index(
        "ix_tasks_account_id_intakes",
        "account_id",
        sqlite_where=text(INTAKE_IN_FLIGHT),
        postgresql_where=text(INTAKE_IN_FLIGHT),
    ),
    Index("ix_tasks_lease_expires_at", "lease_expires_at"),
    # Retention: finished tasks by age.
    Index("ix_tasks_completed_at", "completed_at"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("key", String(1024), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("file_path", String(1024), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mime_type", String(100), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", String(32), ForeignKey("accounts.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    #: SHA-256 of the request body: the same key with another body is refused.
    Column("body_hash", String(64), nullable=False),
    Column("task_id", String(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hostname", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("engine", String(100), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("seen_at", BigInteger, nullable=False, index=True),
    #: Why the worker's engine cannot work (a refused upstream key, say); empty when it can.
    Column("degraded", Text, nullable=False, server_default=""),
    #: The catalog models it takes, a JSON list; empty when it takes every model.
    Column("models", Text, nullable=False, server_default=""),
)

rate_events = Table(
    "rate_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    #: Which limit: one name per upstream, shared by every worker.
    Column("name", String(64), nullable=False),
    Column("at", BigInteger, nullable=False),
    Index("ix_rate_events_name_at", "name", "at"),
)

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

webhook_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("secret", String(100), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    #: A rotated-out secret still signs (beside the new one) for a while, so receivers can switch.
    Column("retired_at", BigInteger, nullable=True),
    # One active secret per account, whatever races to make it.
    Index(
        "uq_webhook_secrets_account_id_active",
        "account_id",
        unique=True,
        sqlite_where=text("retired_at IS NULL"),
        postgresql_where=text("retired_at IS NULL"),
    ),
)

callback_deliveries = Table(
    "callback_deliveries",
    metadata,
    #: Also the ``webhook-id`` header: receivers deduplicate on it.
    Column("id", String(40), primary_key=True),
    Column("task_id", String(32), nullable=False, index=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", BigInteger, nullable=True),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state_known"),
    Index("ix_callback_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
)

callback_attempts = Table(
    "callback_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(40), ForeignKey("callback_deliveries.id"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    #: The receiver's HTTP status; null when no answer came (refused address, timeout, network).
    Column("status", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text, nullable=False, server_default=""),
)
