"""Databases for tests: a PostgreSQL schema of its own per test, so parallel runs are safe."""

from __future__ import annotations

import uuid
from collections.abc import Iterator


def postgres_schema(base_url: str) -> Iterator[str]:
    """Yield a URL whose search_path is a new, empty schema; drop the schema afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
