"""Transactional mails and the subscribe form's rate limits.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mails",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("list_id", sa.String(64), nullable=False),
        sa.Column(
            "subscriber_id",
            sa.String(32),
            sa.ForeignKey(
                "subscribers.id",
                ondelete="CASCADE",
                name="fk_mails_subscriber_id_subscribers",
            ),
            nullable=False,
        ),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("queued", TZ, nullable=False),
        sa.Column("sent", TZ),
        sa.Column("code", sa.Integer),
        sa.Column("reply", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
    )
    op.create_index("ix_mails_subscriber_id", "mails", ["subscriber_id"])
    op.create_index("ix_mails_queued", "mails", ["queued"])
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("hits", sa.Text, nullable=False),
        sa.Column("expires", TZ, nullable=False),
    )
    op.create_index("ix_rate_limits_expires", "rate_limits", ["expires"])


def downgrade() -> None:
    op.drop_table("rate_limits")
    op.drop_table("mails")
