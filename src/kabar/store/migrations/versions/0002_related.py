"""Analysed terms per article, for the related-news index.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "related_features",
        sa.Column(
            "article_id",
            sa.String(16),
            sa.ForeignKey(
                "articles.id", ondelete="CASCADE", name="fk_related_features_article_id_articles"
            ),
            primary_key=True,
        ),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("analyser", sa.String(32), nullable=False),
        sa.Column("features", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("related_features")
