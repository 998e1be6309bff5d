"""WebSub publish pings: tell the hub that a topic (a feed URL) has new content.

The WebSub recommendation leaves the publisher-to-hub notification to each hub; the
form every public hub accepts is PubSubHubbub's `hub.mode=publish&hub.url=TOPIC`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import httpx

log = logging.getLogger(__name__)


def ping_hub(
    hub_url: str, topics: Iterable[str], *, timeout: float = 10.0
) -> tuple[list[str], list[str]]:
    """POST one publish notification per topic; return the topics the hub accepted, and
    a line per topic that failed."""
    notified: list[str] = []
    failures: list[str] = []
    with httpx.Client(timeout=timeout, headers={"User-Agent": "kabar"}) as client:
        for topic in topics:
            try:
                response = client.post(hub_url, data={"hub.mode": "publish", "hub.url": topic})
            except httpx.HTTPError as exc:
                failures.append(f"{hub_url}: ping for {topic} failed: {exc}")
                continue
            if response.is_success:
                notified.append(topic)
                log.debug("hub %s notified of %s", hub_url, topic)
            else:
                failures.append(
                    f"{hub_url}: ping for {topic} answered {response.status_code} "
                    f"{response.reason_phrase}"
                )
    return notified, failures
