"""Delivering webhook events: fan each new event out to the endpoints that want its type
(one `webhook_deliveries` row each), then POST the due ones, signed per Standard Webhooks.

The ledger makes it lossless: a row stays pending until a 2xx comes back, so a restart of
kabar or of the receiver only delays it. A POST whose answer was lost is sent again with
the same webhook-id (at least once; receivers drop repeats by id). Failures wait with
exponential backoff (`webhooks.retry_backoff`, doubling, at most `retry_backoff_max`).
An endpoint that has failed every attempt for `webhooks.disable_after` is disabled: its
rows are held, not dropped, an error is logged and `kabar_webhook_endpoint_disabled` says
so, until `kabar webhooks enable ID` sends them again.

One process delivers: `kabar run`, while it holds the scheduler lease.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, and_, delete, insert, select, update

from kabar.config import Config, WebhookEndpoint, read_secret
from kabar.observe.metrics import WEBHOOK_DISABLED, WEBHOOKS
from kabar.store.tables import webhook_deliveries, webhook_endpoints, webhook_events

log = logging.getLogger(__name__)

BATCH = 100  # deliveries POSTed per pass
KEEP_EVENTS = timedelta(days=7)  # delivered (or unwanted) events are deleted after this


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: `v1,` and the base64 HMAC-SHA256 of
    `id.timestamp.body` under the secret's key (base64 after `whsec_`)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def check_secret(endpoint: WebhookEndpoint) -> str:
    """The endpoint's secret from its env var; a MissingSecretError names the variable."""
    secret = read_secret(endpoint.secret_env, f"webhook endpoint {endpoint.id}")
    try:
        base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise ValueError(
            f"webhook endpoint {endpoint.id}: {endpoint.secret_env} is not whsec_ and base64"
        ) from None
    return secret


@dataclass
class PassReport:
    fanned_out: int = 0
    sent: int = 0
    failed: int = 0
    disabled: list[str] | None = None


class WebhookSender:
    def __init__(
        self, config: Config, engine: Engine, *, clock: Any = None, client: Any = None
    ) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self.client: httpx.AsyncClient = client or httpx.AsyncClient(follow_redirects=False)

    @property
    def endpoints(self) -> dict[str, WebhookEndpoint]:
        return {endpoint.id: endpoint for endpoint in self.config.webhooks.endpoints}

    async def close(self) -> None:
        await self.client.aclose()

    # --- one pass --------------------------------------------------------------------------

    async def run_once(self) -> PassReport:
        report = PassReport(disabled=[])
        report.fanned_out = await asyncio.to_thread(self.fan_out)
        due = await asyncio.to_thread(self._due)
        by_endpoint: dict[str, list[dict[str, Any]]] = {}
        for row in due:
            by_endpoint.setdefault(row["endpoint"], []).append(row)
        for sent, failed in await asyncio.gather(*map(self._post_in_order, by_endpoint.values())):
            report.sent += sent
            report.failed += failed
        for endpoint_id in sorted({row["endpoint"] for row in due}):
            if await asyncio.to_thread(self._disable_if_failing, endpoint_id):
                assert report.disabled is not None
                report.disabled.append(endpoint_id)
        await asyncio.to_thread(self._prune)
        return report

    def fan_out(self) -> int:
        """A delivery row per new event per endpoint that wants its type."""
        now = self.clock()
        made = 0
        with self.engine.begin() as connection:
            events = list(connection.execute(
                select(webhook_events.c.id, webhook_events.c.type)
                .where(webhook_events.c.fanned_out == 0)
                .order_by(webhook_events.c.created).limit(1000)
            ))  # fmt: skip
            disabled = self._disabled(connection)
            rows = [
                {"event_id": event.id, "endpoint": endpoint.id,
                 "state": "held" if endpoint.id in disabled else "pending", "attempts": 0,
                 "next_attempt": now, "last_error": "", "updated": now}
                for event in events
                for endpoint in self.config.webhooks.endpoints
                if event.type in endpoint.events
            ]  # fmt: skip
            if rows:
                connection.execute(insert(webhook_deliveries), rows)
                made = len(rows)
            if events:
                connection.execute(
                    update(webhook_events)
                    .where(webhook_events.c.id.in_([event.id for event in events]))
                    .values(fanned_out=1)
                )
        return made

    def _disabled(self, connection: Any) -> set[str]:
        return set(
            connection.execute(
                select(webhook_endpoints.c.id).where(webhook_endpoints.c.disabled.is_not(None))
            ).scalars()
        )

    def _due(self) -> list[dict[str, Any]]:
        configured = list(self.endpoints)
        if not configured:
            return []
        query = (
            select(webhook_deliveries.c.id, webhook_deliveries.c.endpoint,
                   webhook_deliveries.c.attempts, webhook_deliveries.c.event_id,
                   webhook_events.c.payload, webhook_events.c.created)
            .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)
            .where(webhook_deliveries.c.state == "pending",
                   webhook_deliveries.c.next_attempt <= self.clock(),
                   webhook_deliveries.c.endpoint.in_(configured))
            .order_by(webhook_events.c.created, webhook_deliveries.c.id)
            .limit(BATCH)
        )  # fmt: skip
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    async def _post_in_order(self, rows: list[dict[str, Any]]) -> tuple[int, int]:
        """One endpoint's due events, oldest first; at the first failure the rest wait for
        the next pass, so a receiver that is down gets one request a pass, not a flood,
        and events arrive in order."""
        sent = 0
        for row in rows:
            if await self._post(row) is not None:
                return sent, 1
            sent += 1
        return sent, 0

    async def _post(self, row: dict[str, Any]) -> str | None:
        """POST one delivery and record the result; the error, or None when it went."""
        endpoint = self.endpoints[row["endpoint"]]
        body = row["payload"].encode()
        timestamp = int(self.clock().timestamp())
        try:
            secret = check_secret(endpoint)
            headers = {
                "content-type": "application/json",
                "webhook-id": row["event_id"],
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(secret, row["event_id"], timestamp, body),
                "user-agent": "kabar-webhooks",
            }
            response = await self.client.post(
                endpoint.url, content=body, headers=headers,
                timeout=endpoint.timeout.total_seconds(),
            )  # fmt: skip
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except httpx.TimeoutException:
            error = f"no answer within {endpoint.timeout.total_seconds():g}s"
        except (httpx.HTTPError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        except Exception as exc:  # a missing secret, a bad URL: this endpoint's problem only
            error = f"{type(exc).__name__}: {exc}"[:500]
        await asyncio.to_thread(self._record, row, endpoint.id, error)
        WEBHOOKS.labels(endpoint.id, "sent" if error is None else "retry").inc()
        return error

    def _record(self, row: dict[str, Any], endpoint_id: str, error: str | None) -> None:
        now = self.clock()
        with self.engine.begin() as connection:
            if error is None:
                connection.execute(
                    update(webhook_deliveries).where(webhook_deliveries.c.id == row["id"])
                    .values(state="sent", attempts=row["attempts"] + 1, last_error="", updated=now)
                )  # fmt: skip
                connection.execute(
                    update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
                    .values(failing_since=None, detail="")
                )  # fmt: skip
                return
            attempts = row["attempts"] + 1
            connection.execute(
                update(webhook_deliveries).where(webhook_deliveries.c.id == row["id"])
                .values(attempts=attempts, last_error=error, updated=now,
                        next_attempt=now + self.backoff(attempts))
            )  # fmt: skip
            self._mark_failing(connection, endpoint_id, now, error)
        log.warning("webhook %s: %s (attempt %d of %s)", endpoint_id, error, attempts,
                    row["event_id"])  # fmt: skip

    def backoff(self, attempts: int) -> timedelta:
        hooks = self.config.webhooks
        delay: timedelta = hooks.retry_backoff * 2 ** min(attempts - 1, 30)
        return min(delay, hooks.retry_backoff_max)

    def _mark_failing(self, connection: Any, endpoint_id: str, now: datetime, error: str) -> None:
        changed = connection.execute(
            update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
            .values(detail=error)
        ).rowcount  # fmt: skip
        if not changed:
            connection.execute(insert(webhook_endpoints).values(
                id=endpoint_id, failing_since=now, disabled=None, detail=error))  # fmt: skip
        connection.execute(
            update(webhook_endpoints)
            .where(
                webhook_endpoints.c.id == endpoint_id,
                webhook_endpoints.c.failing_since.is_(None),
            )
            .values(failing_since=now)
        )

    def _disable_if_failing(self, endpoint_id: str) -> bool:
        """Disable an endpoint that has failed for `disable_after`; True if this did."""
        now = self.clock()
        since = now - self.config.webhooks.disable_after
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id,
                       webhook_endpoints.c.disabled.is_(None),
                       webhook_endpoints.c.failing_since <= since)
                .values(disabled=now)
            ).rowcount  # fmt: skip
            if not changed:
                return False
            connection.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.endpoint == endpoint_id,
                       webhook_deliveries.c.state == "pending")
                .values(state="held", updated=now)
            )  # fmt: skip
        WEBHOOK_DISABLED.labels(endpoint_id).set(1)
        log.error(
            "webhook %s: failing for %s: disabled; its events are kept and go out after "
            "`kabar webhooks enable %s`", endpoint_id, self.config.webhooks.disable_after,
            endpoint_id,
        )  # fmt: skip
        return True

    def _prune(self) -> None:
        """Events older than KEEP_EVENTS with nothing left to deliver go."""
        cutoff = self.clock() - KEEP_EVENTS
        open_rows = select(webhook_deliveries.c.id).where(
            webhook_deliveries.c.event_id == webhook_events.c.id,
            webhook_deliveries.c.state != "sent",
        )
        with self.engine.begin() as connection:
            connection.execute(
                delete(webhook_events).where(
                    and_(webhook_events.c.created < cutoff, webhook_events.c.fanned_out == 1,
                         ~open_rows.exists())
                )
            )  # fmt: skip


# --- status and re-enabling (kabar webhooks) --------------------------------------------------


def endpoint_status(config: Config, engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        health = {row.id: row for row in connection.execute(select(webhook_endpoints))}
        counts: dict[tuple[str, str], int] = {}
        from sqlalchemy import func

        for endpoint, state, count in connection.execute(
            select(webhook_deliveries.c.endpoint, webhook_deliveries.c.state, func.count())
            .group_by(webhook_deliveries.c.endpoint, webhook_deliveries.c.state)
        ):  # fmt: skip
            counts[(endpoint, state)] = int(count)
    out = []
    for endpoint in config.webhooks.endpoints:
        row = health.get(endpoint.id)
        out.append({
            "id": endpoint.id, "url": endpoint.url, "events": list(endpoint.events),
            "disabled": row.disabled.isoformat() if row and row.disabled else None,
            "failing_since": row.failing_since.isoformat() if row and row.failing_since else None,
            "last_error": row.detail if row else "",
            "pending": counts.get((endpoint.id, "pending"), 0),
            "held": counts.get((endpoint.id, "held"), 0),
            "sent": counts.get((endpoint.id, "sent"), 0),
        })  # fmt: skip
    return out


def enable(engine: Engine, endpoint_id: str, *, now: datetime | None = None) -> int:
    """Re-enable an endpoint; its held deliveries become due now. Returns how many."""
    moment = now or datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
            .values(disabled=None, failing_since=None, detail="")
        )  # fmt: skip
        released = connection.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.endpoint == endpoint_id,
                   webhook_deliveries.c.state == "held")
            .values(state="pending", next_attempt=moment, updated=moment)
        ).rowcount  # fmt: skip
    WEBHOOK_DISABLED.labels(endpoint_id).set(0)
    return int(released)
