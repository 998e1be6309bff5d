"""One article per canonical URL: articles.url_key, unique.

An article that an older version stored twice under two sources (same URL) is kept
once: the copy ingested first stays, and the later copies are removed.

Revision ID: 0005
Revises: 0004
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("articles", sa.Column("url_key", sa.String(32), nullable=True))
    connection = op.get_bind()
    owners: set[str] = set()
    keys, duplicates = [], []
    rows = connection.execute(sa.text("SELECT id, url FROM articles ORDER BY ingested, id"))
    for article_id, url in rows:
        key = hashlib.sha256(url.encode()).hexdigest()[:32]
        if key in owners:
            duplicates.append({"id": article_id})
        else:
            owners.add(key)
            keys.append({"id": article_id, "key": key})
    if duplicates:
        for statement in (
            "DELETE FROM article_facets WHERE article_id = :id",
            "DELETE FROM related_features WHERE article_id = :id",
            "DELETE FROM articles WHERE id = :id",
        ):
            connection.execute(sa.text(statement), duplicates)
    if keys:
        connection.execute(sa.text("UPDATE articles SET url_key = :key WHERE id = :id"), keys)
    op.create_index("ix_articles_url_key", "articles", ["url_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_articles_url_key", table_name="articles")
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("url_key")
