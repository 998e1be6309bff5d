"""API tokens, webhooks out (events, deliveries, endpoint health) and job outcomes.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("created", TZ, nullable=False),
        sa.Column("last_used", TZ),
        sa.Column("revoked", TZ),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created", TZ, nullable=False),
        sa.Column("fanned_out", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_webhook_events_fanned_out_created", "webhook_events", ["fanned_out", "created"]
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "event_id",
            sa.String(40),
            sa.ForeignKey(
                "webhook_events.id",
                ondelete="CASCADE",
                name="fk_webhook_deliveries_event_id_webhook_events",
            ),
            nullable=False,
        ),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt", TZ, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("updated", TZ, nullable=False),
        sa.UniqueConstraint("event_id", "endpoint", name="uq_webhook_deliveries_event_id_endpoint"),
    )
    op.create_index(
        "ix_webhook_deliveries_state_next_attempt",
        "webhook_deliveries",
        ["state", "next_attempt"],
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("failing_since", TZ),
        sa.Column("disabled", TZ),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "job_runs",
        sa.Column("job_id", sa.String(200), primary_key=True),
        sa.Column("started", TZ, nullable=False),
        sa.Column("finished", TZ, nullable=False),
        sa.Column("lag_seconds", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_runs")
    op.drop_table("webhook_endpoints")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
    op.drop_table("api_tokens")
