"""What comes back: the suppression list and the results read from bounces,
complaints, mailto unsubscribes and auto-replies.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

TZ = sa.DateTime(timezone=True)

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("created", TZ, nullable=False),
        sa.PrimaryKeyConstraint("value", name="pk_suppressions"),
    )
    op.create_index("ix_suppressions_kind", "suppressions", ["kind"])
    op.create_table(
        "inbound_events",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("received", TZ, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("delivery_id", sa.Integer),
        sa.Column("issue_key", sa.String(200)),
        sa.Column("subscriber_id", sa.String(32)),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("effect", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_events"),
        sa.UniqueConstraint("key", name="uq_inbound_events_key"),
    )
    op.create_index(
        "ix_inbound_events_subscriber_id_kind_received",
        "inbound_events",
        ["subscriber_id", "kind", "received"],
    )
    op.create_index("ix_inbound_events_issue_key_kind", "inbound_events", ["issue_key", "kind"])
    op.create_index("ix_inbound_events_kind_received", "inbound_events", ["kind", "received"])
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])
    op.create_index("ix_subscribers_email_key", "subscribers", ["email_key"])


def downgrade() -> None:
    op.drop_index("ix_subscribers_email_key", table_name="subscribers")
    op.drop_index("ix_deliveries_message_id", table_name="deliveries")
    op.drop_table("inbound_events")
    op.drop_table("suppressions")
