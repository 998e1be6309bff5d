"""Ingest: read every file of a source (or fetch its URL) and upsert the articles.

A file that can't be read is reported as `PATH: reason` and skipped, a rejected record
as `PATH:LINE: reason`; everything else is still stored. Each counts as failed, so the
CLI can set its exit status. Only the first SHOWN_PER_FILE problems of a file are kept
for display, with a count of the rest: a file of a million bad records is one line more,
not a million. The report is not logged here: the caller prints or logs it, once.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from kabar.config import Config, FeedSource, JsonSource, PagesSource
from kabar.model import Article
from kabar.sources import ReadContext, ReadError, read_file
from kabar.sources.feed import fetch, parse_feed
from kabar.store import Store, UpsertResult
from kabar.text import counted

if TYPE_CHECKING:
    from kabar.related import RelatedEngine
    from kabar.related.worker import TermsWorker

log = logging.getLogger(__name__)

_FLUSH_EVERY = 1000  # articles per upsert transaction
SHOWN_PER_FILE = 20  # failures, and warnings, listed for one file; the rest are counted

AnySource = PagesSource | JsonSource | FeedSource
Progress = Callable[[int, int], None]  # (done, total) files


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def printable(message: str) -> str:
    """One line as printed, whatever a file name holds: a newline in a name must not
    start a line of its own that reads like another report."""
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], message)


@dataclass
class IngestReport:
    source: str
    files: int = 0
    stored: UpsertResult = field(default_factory=UpsertResult)
    failed: int = 0  # files that could not be read, plus records rejected
    failures: list[str] = field(default_factory=list)  # at most SHOWN_PER_FILE per file
    warned: int = 0
    warnings: list[str] = field(default_factory=list)
    not_modified: bool = False

    @property
    def articles(self) -> int:
        return self.stored.inserted + self.stored.updated + self.stored.unchanged

    def fail(self, message: str) -> None:
        self.failed += 1
        self.failures.append(printable(message))

    def describe(self) -> str:
        if self.not_modified:
            return f"{self.source}: not modified since the last fetch"
        s = self.stored
        duplicates = f", {s.duplicates} already stored from another source" if s.duplicates else ""
        warned = f", {counted(self.warned, 'warning')}" if self.warned else ""
        return (
            f"{self.source}: {counted(self.files, 'file')}, {counted(self.articles, 'article')} "
            f"({s.inserted} new, {s.updated} updated, {s.unchanged} unchanged{duplicates}), "
            f"{self.failed} failed{warned}"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source, "files": self.files, "articles": self.articles,
            "inserted": self.stored.inserted, "updated": self.stored.updated,
            "unchanged": self.stored.unchanged, "duplicates": self.stored.duplicates,
            "not_modified": self.not_modified,
            "failed": self.failed, "failures": self.failures,
            "warned": self.warned, "warnings": self.warnings,
        }  # fmt: skip


class _FileProblems:
    """Collects one file's rejected records and warnings into the report, keeping the
    first SHOWN_PER_FILE of each for display and counting the rest."""

    def __init__(self, report: IngestReport, origin: Path | str) -> None:
        self.report, self.origin = report, origin
        self.failures = self.warnings = 0

    def reject(self, where: int | str, reason: str) -> None:
        self.report.failed += 1
        self.failures += 1
        if self.failures <= SHOWN_PER_FILE:
            self.report.failures.append(printable(f"{self._place(where)}: {reason}"))

    def warn(self, message: str) -> None:
        self.warn_at(None, message)

    def warn_at(self, where: int | str | None, message: str) -> None:
        self.report.warned += 1
        self.warnings += 1
        if self.warnings <= SHOWN_PER_FILE:
            self.report.warnings.append(printable(f"{self._place(where)}: {message}"))

    def _place(self, where: int | str | None) -> str:
        """`FILE:LINE` for a line, `FILE: entry 3` where lines mean nothing."""
        if where is None:
            return str(self.origin)
        return f"{self.origin}:{where}" if isinstance(where, int) else f"{self.origin}: {where}"

    def close(self) -> None:
        if self.failures > SHOWN_PER_FILE:
            hidden = self.failures - SHOWN_PER_FILE
            self.report.failures.append(printable(f"{self.origin}: {hidden} more rejected records"))
        if self.warnings > SHOWN_PER_FILE:
            hidden = self.warnings - SHOWN_PER_FILE
            self.report.warnings.append(printable(f"{self.origin}: {hidden} more warnings"))


def context_for(
    config: Config, source_id: str, source: AnySource | None, as_of: datetime
) -> ReadContext:
    base_url = getattr(source, "base_url", None) or config.site.url
    return ReadContext(
        source=source_id,
        base_url=base_url.rstrip("/"),
        language=(source.language if source else None) or config.site.language,
        timezone=ZoneInfo(config.site.timezone),
        as_of=as_of,
        section=source.section if source else "",
    )


def ingest_source(
    config: Config,
    store: Store,
    source: AnySource,
    *,
    as_of: datetime | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    if isinstance(source, FeedSource) and source.url.startswith(("http://", "https://")):
        return ingest_url(config, store, source, as_of=as_of, now=now)
    location = source.url if isinstance(source, FeedSource) else source.path
    return ingest_path(
        config, store, config.resolve(location), source.id, as_of=as_of, now=now, progress=progress
    )


def ingest_path(
    config: Config,
    store: Store,
    path: Path,
    source_id: str,
    *,
    as_of: datetime | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest a file, or every file under a folder, as articles of `source_id`."""
    source = next((s for s in config.sources if s.id == source_id), None)
    report = IngestReport(source_id)
    moment = now or datetime.now(UTC)
    files, refused = _files(path)
    for file, reason in refused:
        report.fail(f"{file}: {reason}")
    if not files and not refused:
        report.fail(f"{path}: no such file or folder" if not path.exists() else f"{path}: no files")
    base = context_for(config, source_id, source, as_of or moment)
    pending: list[Article] = []
    with _RelatedTerms(config, store) as terms:
        for done, file in enumerate(files, 1):
            pending.extend(_read_one(file, base, as_of, report))
            if len(pending) >= _FLUSH_EVERY:
                report.stored += _store(store, pending, moment, terms, more=done < len(files))
                pending = []  # the batch may still be on its way to the terms worker
            if progress:
                progress(done, len(files))
        if pending:
            report.stored += _store(store, pending, moment, terms)
    return _counted(report)


def _read_one(
    file: Path, base: ReadContext, as_of: datetime | None, report: IngestReport
) -> list[Article]:
    """The file's articles; whatever goes wrong is this file's failure, never the run's."""
    problems = _FileProblems(report, file)
    try:
        file_as_of = as_of or datetime.fromtimestamp(file.stat().st_mtime, UTC)
        context = replace(
            base,
            as_of=file_as_of,
            warn=problems.warn,
            warn_at=problems.warn_at,
            reject=problems.reject,
        )
        articles = read_file(file, context)
        report.files += 1
        return articles
    except ReadError as exc:
        report.fail(f"{file}: {exc}")
    except OSError as exc:
        report.fail(f"{file}: cannot read: {exc.strerror or exc}")
    except (RecursionError, MemoryError, ValueError, LookupError, TypeError) as exc:
        log.exception("reading %s", file)  # a reader's bug: the traceback goes to the log
        report.fail(f"{file}: cannot read: {type(exc).__name__}: {exc}")
    finally:
        problems.close()
    return []


def ingest_url(
    config: Config,
    store: Store,
    source: FeedSource,
    *,
    as_of: datetime | None = None,
    now: datetime | None = None,
) -> IngestReport:
    report = IngestReport(source.id)
    moment = now or datetime.now(UTC)
    deadline = source.fetch_deadline or config.ingest.fetch_deadline
    problems = _FileProblems(report, source.url)
    try:
        fetched = fetch(
            source.url, store.source_state(source.id), deadline=deadline.total_seconds()
        )
        if fetched.data is None:
            report.not_modified = True
        else:
            context = replace(
                context_for(config, source.id, source, as_of or moment),
                warn=problems.warn,
                warn_at=problems.warn_at,
                reject=problems.reject,
            )
            articles = parse_feed(fetched.data, context)
            report.files = 1
            with _RelatedTerms(config, store) as terms:
                report.stored += _store(store, articles, moment, terms)
        store.save_source_state(source.id, fetched.state, now=moment)
    except ReadError as exc:
        report.fail(f"{source.url}: {exc}")
    except (RecursionError, MemoryError, ValueError, LookupError, TypeError) as exc:
        log.exception("reading %s", source.url)
        report.fail(f"{source.url}: cannot read: {type(exc).__name__}: {exc}")
    finally:
        problems.close()
    return _counted(report)


def _store(
    store: Store,
    articles: list[Article],
    now: datetime,
    terms: _RelatedTerms,
    *,
    more: bool = False,
) -> UpsertResult:
    """Upsert, then add the new and changed articles to the related-news index."""
    result = store.upsert(articles, now=now)
    if result.inserted or result.updated:
        terms.add(
            store.canonical(articles), more=more
        )  # under the ids they are stored by  # skips articles whose terms are current
    return result


class _RelatedTerms:
    """Analyses and stores the terms of upserted articles for related news: here, or,
    once a source has more than one batch (`more`), in a second process so that parsing
    the next files overlaps the analysis (kabar.related.worker)."""

    def __init__(self, config: Config, store: Store) -> None:
        self._config, self._store = config, store
        self._engine: RelatedEngine | None = None  # made on the first add: imports numpy
        self._worker: TermsWorker | None = None

    def add(self, articles: list[Article], *, more: bool = False) -> None:
        if self._engine is None:
            from kabar.related import RelatedEngine

            self._engine = RelatedEngine.open(self._config, self._store)
        url = self._store.engine.url
        if more and self._worker is None and url.database not in (None, "", ":memory:"):
            from kabar.related.worker import TermsWorker

            self._worker = TermsWorker(url.render_as_string(hide_password=False), self._engine)
        if self._worker is not None:
            self._worker.add(articles)
        else:
            self._engine.add(articles)

    def __enter__(self) -> _RelatedTerms:
        return self

    def __exit__(self, *_: object) -> None:
        if self._worker is not None:
            self._worker.close()


@dataclass
class RecordsReport:
    """What `ingest_records` did: the ids stored (in the order given) and each rejected
    record's index and reason."""

    report: IngestReport
    stored_ids: list[str] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)


def ingest_records(
    config: Config,
    store: Store,
    source_id: str,
    records: list[Any],
    *,
    now: datetime | None = None,
    related: Callable[[list[Article]], None] | None = None,
) -> RecordsReport:
    """Records in the JSON ingest format (the HTTP API's posts), stored as articles of
    `source_id` and added to the related-news index, as `kabar ingest` does with a file.
    `related` takes the stored articles for the index instead (a long-lived terms worker)."""
    from kabar.sources.jsonl import article_from_record

    moment = now or datetime.now(UTC)
    source = next((s for s in config.sources if s.id == source_id), None)
    result = RecordsReport(IngestReport(source_id))
    problems = _FileProblems(result.report, "request")
    context = replace(
        context_for(config, source_id, source, moment),
        warn=problems.warn,
        warn_at=problems.warn_at,
        reject=problems.reject,
    )
    articles: list[Article] = []
    for index, record in enumerate(records):
        try:
            articles.append(article_from_record(record, context))
        except (ReadError, ValueError, TypeError) as exc:
            result.rejected.append((index, str(exc)))
            result.report.failed += 1
    problems.close()
    if articles:
        if related is None:
            with _RelatedTerms(config, store) as terms:
                result.report.stored += _store(store, articles, moment, terms)
            stored = store.canonical(articles)
        else:
            result.report.stored += store.upsert(articles, now=moment)
            stored = store.canonical(articles)
            related(stored)  # after the commit: the terms refer to stored articles
        result.report.files = 1
        result.stored_ids = [article.id for article in stored]
    _counted(result.report)
    return result


def _counted(report: IngestReport) -> IngestReport:
    from kabar.observe.metrics import count_ingest

    stored = report.stored
    count_ingest(report.source, stored.inserted, stored.updated, stored.unchanged, report.failed)
    return report


def _files(path: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files to read under `path` (or `path` itself), and those refused, with why:
    what is not a regular file, and links that leave the folder. Whoever may drop files
    into a source's folder must not publish any other file kabar can read that way."""
    if not path.is_dir():
        refusal = _not_readable(path)
        if refusal is not None and (path.exists() or path.is_symlink()):
            return [], [(path, refusal)]
        return ([path] if path.is_file() else []), []
    root = path.resolve()
    files, refused = [], []
    for child in sorted(path.rglob("*")):
        if any(part.startswith(".") for part in child.relative_to(path).parts):
            continue
        if child.is_dir() and not child.is_symlink():
            continue  # rglob walks it
        refusal = _not_readable(child)
        if refusal is None and root not in child.resolve().parents:
            refusal = f"a link to {child.resolve()}, outside {path}: not read"
        if refusal is None:
            files.append(child)
        else:
            refused.append((child, refusal))
    return files, refused


def _not_readable(path: Path) -> str | None:
    if path.is_symlink() and not path.exists():
        return f"a broken link (to {os.readlink(path)})"
    if path.is_symlink() and path.is_dir():
        return "a link to a folder: not followed"
    if path.exists() and not path.is_file():
        return "not a regular file (a pipe, socket or device): not read"
    return None
