"""Subscribers, issues, the delivery ledger, schedule state, leases and settings.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("list_id", sa.String(64), nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("email_key", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created", TZ, nullable=False),
        sa.Column("updated", TZ, nullable=False),
        sa.UniqueConstraint("list_id", "email_key", name="uq_subscribers_list_id_email_key"),
    )
    op.create_index("ix_subscribers_list_id_status_id", "subscribers", ["list_id", "status", "id"])
    op.create_table(
        "issues",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("digest_id", sa.String(64), nullable=False),
        sa.Column("list_id", sa.String(64), nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("issue_time", TZ, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prepared", sa.JSON),
        sa.Column("audience", sa.Integer, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("created", TZ, nullable=False),
        sa.Column("updated", TZ, nullable=False),
    )
    op.create_index(
        "ix_issues_digest_id_list_id_issue_time", "issues", ["digest_id", "list_id", "issue_time"]
    )
    op.create_index("ix_issues_state", "issues", ["state"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "issue_key",
            sa.String(200),
            sa.ForeignKey("issues.key", ondelete="CASCADE", name="fk_deliveries_issue_key_issues"),
            nullable=False,
        ),
        sa.Column(
            "subscriber_id",
            sa.String(32),
            sa.ForeignKey(
                "subscribers.id", ondelete="CASCADE", name="fk_deliveries_subscriber_id_subscribers"
            ),
            nullable=False,
        ),
        sa.Column("chunk", sa.Integer, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claim", sa.String(32)),
        sa.Column("owner", sa.String(128)),
        sa.Column("lease_until", TZ),
        sa.Column("next_attempt", TZ),
        sa.Column("code", sa.Integer),
        sa.Column("reply", sa.Text, nullable=False),
        sa.Column("codes", sa.Text, nullable=False),
        sa.Column("sent", TZ),
        sa.UniqueConstraint(
            "issue_key", "subscriber_id", name="uq_deliveries_issue_key_subscriber_id"
        ),
    )
    op.create_index(
        "ix_deliveries_issue_key_chunk_state", "deliveries", ["issue_key", "chunk", "state"]
    )
    op.create_index("ix_deliveries_claim", "deliveries", ["claim"])
    op.create_table(
        "schedule_state",
        sa.Column("job_id", sa.String(200), primary_key=True),
        sa.Column("last_fired", TZ, nullable=False),
        sa.Column("updated", TZ, nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("expires", TZ, nullable=False),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("settings", "leases", "schedule_state", "deliveries", "issues", "subscribers"):
        op.drop_table(table)
