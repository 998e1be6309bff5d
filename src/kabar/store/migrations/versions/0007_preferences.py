"""Subscribers' own choices and their consent: sections and digests per subscriber, the
record of how each subscription came and was confirmed, every change they made, the
hashed addresses of those who asked to be forgotten, and the variant each delivery got.

Revision ID: 0007
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("sections", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("digests", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("consent", sa.JSON, nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("variant", sa.String(200), nullable=True))
    op.create_table(
        "subscriber_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "subscriber_id",
            sa.String(32),
            sa.ForeignKey(
                "subscribers.id",
                ondelete="CASCADE",
                name="fk_subscriber_events_subscriber_id_subscribers",
            ),
            nullable=False,
        ),
        sa.Column("at", TZ, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("ip", sa.Text, nullable=False),
        sa.Column("user_agent", sa.Text, nullable=False),
    )
    op.create_index("ix_subscriber_events_subscriber_id", "subscriber_events", ["subscriber_id"])
    op.create_table(
        "forgotten",
        sa.Column("email_hash", sa.String(64), primary_key=True),
        sa.Column("forgotten", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forgotten")
    op.drop_table("subscriber_events")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("variant")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("consent")
        batch.drop_column("digests")
        batch.drop_column("sections")
