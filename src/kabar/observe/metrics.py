"""kabar's Prometheus metrics, on prometheus-client's default registry.

Each process counts only what it does itself: `kabar serve` the API's ingests and feed
builds, `kabar run` the scheduler's, every `kabar worker` its own sends. Prometheus scrapes
each process as a target of its own (its `instance` label), and `sum()` over instances adds
them up without counting anything twice. Figures read from the database (per-issue
progress) are exported only by the process holding the scheduler lease, once per database.

Labels stay low-cardinality: a reply class, a source, a feed, a job, an issue (a few a day),
never a subscriber or an article.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

log = logging.getLogger(__name__)

MESSAGES = Counter(
    "kabar_messages",
    "Digest messages by result (sent, deferred, failed, bounced, skipped) and SMTP reply class.",
    ["result", "reply_class"],
)
SEND_SECONDS = Histogram(
    "kabar_send_seconds",
    "Time from handing a message to the transport to its reply.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BOUNCES = Counter("kabar_bounces", "Subscribers set to bounced (a 5.1.x reply or a DSN).", ["list"])
COMPLAINTS = Counter(
    "kabar_complaints",
    "Complaints (feedback loops); `issue` is the issue complained about, when known.",
    ["list", "issue"],
)
INGESTED = Counter(
    "kabar_ingest_articles",
    "Articles ingested, by source and result (inserted, updated, unchanged).",
    ["source", "result"],
)
INGEST_ERRORS = Counter(
    "kabar_ingest_errors", "Files that could not be read and records rejected.", ["source"]
)
FEED_BUILD_SECONDS = Histogram(
    "kabar_feed_build_seconds",
    "Time to build one feed (all its documents and archive pages).",
    ["feed"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RELATED_DOCUMENTS = Gauge(
    "kabar_related_documents", "Articles in this process's related-news index."
)
SCHEDULER_LAG = Gauge(
    "kabar_scheduler_lag_seconds", "How late the job's last run started after its fire time.",
    ["job"],
)  # fmt: skip
JOB_RUNS = Counter(
    "kabar_job_runs", "Scheduler job runs by outcome (ok, failed).", ["job", "outcome"]
)
WEBHOOKS = Counter(
    "kabar_webhook_deliveries",
    "Webhook POSTs by endpoint and result (sent, retry).",
    ["endpoint", "result"],
)
WEBHOOK_DISABLED = Gauge(
    "kabar_webhook_endpoint_disabled", "1 while an endpoint is disabled after failing.",
    ["endpoint"],
)  # fmt: skip
API_REQUESTS = Counter(
    "kabar_api_requests", "HTTP API requests by route and status.", ["route", "status"]
)

# The SMTP classes a reply code falls in; "none" when no reply came (timeout, reset).
_REPLY_CLASSES = {2: "2xx", 4: "4xx", 5: "5xx"}
_RESULTS = {"retry_wait": "deferred"}


def reply_class(code: int | None) -> str:
    return _REPLY_CLASSES.get((code or 0) // 100, "none")


def count_message(state: str, code: int | None) -> None:
    """One settled delivery; "pending" (handed back untried) is no result."""
    if state in ("pending", "claimed"):
        return
    MESSAGES.labels(_RESULTS.get(state, state), reply_class(code)).inc()


def count_ingest(source: str, inserted: int, updated: int, unchanged: int, failed: int) -> None:
    for result, amount in (("inserted", inserted), ("updated", updated), ("unchanged", unchanged)):
        if amount:
            INGESTED.labels(source, result).inc(amount)
    if failed:
        INGEST_ERRORS.labels(source).inc(failed)


# --- figures read from the database at scrape time --------------------------------------------

IssueCounts = Callable[[], Iterator[tuple[str, str, dict[str, int]]]]  # key, state, counts


class IssueProgress(Collector):
    """`kabar_issue_deliveries{issue,state}` and `kabar_issue_audience{issue}` of the open
    and recent issues, read from the ledger when Prometheus scrapes."""

    def __init__(self, read: IssueCounts) -> None:
        self.read = read

    def collect(self) -> Iterator[Any]:
        deliveries = GaugeMetricFamily(
            "kabar_issue_deliveries", "Deliveries of an issue by state.", labels=["issue", "state"]
        )
        audience = GaugeMetricFamily(
            "kabar_issue_audience", "Subscribers an issue goes to.", labels=["issue"]
        )
        sending = GaugeMetricFamily(
            "kabar_issue_sending", "1 while the issue is being sent.", labels=["issue"]
        )
        try:
            for key, state, counts in self.read():
                for name, value in counts.items():
                    if name != "audience":
                        deliveries.add_metric([key, name], value)
                audience.add_metric([key], counts.get("audience", 0))
                sending.add_metric([key], 1 if state == "sending" else 0)
        except Exception:  # a scrape must answer even while the database is away
            log.exception("metrics: cannot read issue progress")
        yield from (deliveries, audience, sending)

    def describe(self) -> Iterator[Any]:
        return iter(())


_registered: list[Collector] = []
_lock = threading.Lock()


def export_issue_progress(read: IssueCounts) -> None:
    """Register the per-issue collector once per process (the scheduler's)."""
    with _lock:
        if _registered:
            _registered[0].read = read  # type: ignore[attr-defined]
            return
        collector = IssueProgress(read)
        REGISTRY.register(collector)
        _registered.append(collector)


def serve_metrics(host: str, port: int) -> None:
    """Prometheus text format on http://host:port/metrics, from a thread of its own
    (`kabar run`, `kabar worker`)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host)
    log.info("metrics at http://%s:%d/metrics", host, port)


def metrics_routes() -> list[Any]:
    """`GET /metrics` for the app `kabar serve` runs."""
    from prometheus_client.exposition import choose_encoder
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def metrics(request: Request) -> Response:
        # The format the scraper asks for (Accept): OpenMetrics, or Prometheus text.
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(
            encoder(REGISTRY),
            headers={"Content-Type": content_type, "Cache-Control": "no-store"},
        )

    return [Route("/metrics", metrics, methods=["GET"])]
