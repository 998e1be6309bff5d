"""Articles, their facets, and remote source state.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("guid", sa.Text, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("body_text", sa.Text, nullable=False),
        sa.Column("body_html", sa.Text, nullable=False),
        sa.Column("published", TZ, nullable=False),
        sa.Column("published_offset", sa.Integer, nullable=False),
        sa.Column("updated", TZ, nullable=False),
        sa.Column("updated_offset", sa.Integer, nullable=False),
        sa.Column("authors", sa.JSON, nullable=False),
        sa.Column("credit", sa.Text, nullable=False),
        sa.Column("section", sa.Text, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("image_url", sa.Text, nullable=False),
        sa.Column("image_alt", sa.Text, nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("dateline", sa.Text, nullable=False),
        sa.Column("cross_links", sa.JSON, nullable=False),
        sa.Column("related", sa.JSON, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("ingested", TZ, nullable=False),
        sa.UniqueConstraint("source", "guid", name="uq_articles_source_guid"),
    )
    op.create_index("ix_articles_published", "articles", ["published"])
    op.create_index("ix_articles_source_published", "articles", ["source", "published"])
    op.create_table(
        "article_facets",
        sa.Column(
            "article_id",
            sa.String(16),
            sa.ForeignKey(
                "articles.id", ondelete="CASCADE", name="fk_article_facets_article_id_articles"
            ),
            primary_key=True,
        ),
        sa.Column("facet", sa.String(16), primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sa.Column("published", TZ, nullable=False),
    )
    op.create_index(
        "ix_article_facets_facet_value_published", "article_facets", ["facet", "value", "published"]
    )
    op.create_table(
        "source_state",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("fetched", TZ),
    )


def downgrade() -> None:
    op.drop_table("source_state")
    op.drop_table("article_facets")
    op.drop_table("articles")
