"""A snapshot of the merged index in one file beside a SQLite database, so a process can
open the engine without reading every article's stored terms.

`<database>.related.npz` holds the rows, document frequencies and each doc's fields (numpy
arrays and JSON; nothing is unpickled). It is a cache: a snapshot of another format,
analyser version or site language is ignored, and the engine compares the store's
(id, content hash) pairs with it on opening, catching up on changed, new and removed
articles. It is written whole and renamed into place, so readers see an old or a new
file, never a part. Other databases have no snapshot: the index loads from the store.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csc_matrix

from kabar.model import offset_minutes
from kabar.related.analysis import ANALYSER_VERSION
from kabar.related.index import BLOCK_ROWS, Doc, IndexState, RelatedIndex
from kabar.related.persist import EVERYTHING, Span
from kabar.related.vectors import Rows
from kabar.store import Store

log = logging.getLogger(__name__)

FORMAT = 3  # bump when what `save` writes changes
SUFFIX = ".related.npz"
_FIELDS = ("id", "url", "canonical_url", "title", "summary", "section", "language", "content_hash")


def path_for(store: Store) -> Path | None:
    """Where the snapshot of a store's index goes: beside a SQLite file, else nowhere."""
    url = store.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = Path(url.database)
    return database.with_name(database.name + SUFFIX)


def save(path: Path, index: RelatedIndex, site_language: str, span: Span = EVERYTHING) -> None:
    """Write the index, which holds the articles published in `span`."""
    state = index.state()
    docs = state.docs
    fields: dict[str, Any] = {name: [getattr(d, name) for d in docs] for name in _FIELDS}
    fields["tags"] = [sorted(d.tags) for d in docs]
    fields["offset"] = [offset_minutes(d.published) for d in docs]
    meta = _meta(site_language) | {
        "documents": state.documents, "idf_documents": state.idf_documents,
        "since": _micros_or_none(span.since),
    }  # fmt: skip
    matrices = [matrix for _, matrix in state.blocks]
    arrays = {
        "indptr": state.rows.indptr, "indices": state.rows.indices, "counts": state.rows.counts,
        "times": state.times, "df": state.df, "idf": state.idf,
        "block_features": _joined([features for features, _ in state.blocks], np.int32),
        "block_widths": np.array([len(f) for f, _ in state.blocks], dtype=np.int64),
        "block_data": _joined([m.data for m in matrices], np.float32),
        "block_rows": _joined([m.indices for m in matrices], np.int32),
        "block_indptr": _joined([m.indptr for m in matrices], np.int64),
        "meta": _bytes(meta), "docs": _bytes(fields),
    }  # fmt: skip
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            np.savez(handle, **arrays)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    log.debug("related: index snapshot of %d articles written to %s", len(docs), path)


def load(path: Path, site_language: str) -> tuple[RelatedIndex, Span] | None:
    """The index in the snapshot and the span of articles it holds (it was written for
    the present: no end), or None when there is none or it doesn't fit."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes())
            if {k: meta.get(k) for k in _meta(site_language)} != _meta(site_language):
                log.info("related: index snapshot %s is out of date; loading the store", path)
                return None
            arrays = {name: data[name] for name in data.files if name not in ("meta", "docs")}
            fields = json.loads(data["docs"].tobytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        log.warning("related: ignoring the unreadable index snapshot %s: %s", path, exc)
        return None
    times = arrays["times"]
    published = [
        datetime.fromtimestamp(t // 1_000_000, _zone(offset)).replace(microsecond=t % 1_000_000)
        for t, offset in zip(times.tolist(), fields["offset"], strict=True)
    ]
    docs = [
        Doc(i, u, c, t, s, p, sec, frozenset(tags), lang, h)
        for i, u, c, t, s, sec, lang, h, p, tags in zip(
            *(fields[name] for name in _FIELDS), published, fields["tags"], strict=True
        )
    ]
    rows = Rows(arrays["indptr"], arrays["indices"], arrays["counts"])
    state = IndexState(
        docs, rows, times, arrays["df"], int(meta["documents"]), arrays["idf"],
        int(meta["idf_documents"]), _blocks(arrays, len(docs)),
    )  # fmt: skip
    since = meta.get("since")
    start = None if since is None else datetime.fromtimestamp(since / 1_000_000, UTC)
    return RelatedIndex.restore(state), Span(start)


def _micros_or_none(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1_000_000)


def _blocks(arrays: dict[str, Any], documents: int) -> list[tuple[Any, csc_matrix]]:
    widths = arrays["block_widths"].tolist()
    heights = [min(BLOCK_ROWS, documents - start) for start in range(0, documents, BLOCK_ROWS)]
    features = np.split(arrays["block_features"], np.cumsum(widths)[:-1])
    pointers = np.split(arrays["block_indptr"], np.cumsum([w + 1 for w in widths])[:-1])
    sizes = np.cumsum([int(p[-1]) for p in pointers])[:-1]
    data, rows = np.split(arrays["block_data"], sizes), np.split(arrays["block_rows"], sizes)
    return [
        (f, csc_matrix((d, r, ptr), shape=(h, w)))
        for f, d, r, ptr, h, w in zip(features, data, rows, pointers, heights, widths, strict=True)
    ]


def _joined(parts: list[Any], dtype: type[np.generic]) -> Any:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _meta(site_language: str) -> dict[str, Any]:
    return {
        "format": FORMAT, "analyser": ANALYSER_VERSION, "site_language": site_language,
        "block_rows": BLOCK_ROWS,
    }  # fmt: skip


def _bytes(value: object) -> np.ndarray[Any, np.dtype[np.uint8]]:
    return np.frombuffer(json.dumps(value, ensure_ascii=False).encode(), dtype=np.uint8)


@cache
def _zone(minutes: int) -> timezone:
    return timezone(timedelta(minutes=minutes))
