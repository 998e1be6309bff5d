"""Read, commit, then move: a batch of returned messages is parsed, its findings recorded
and acted on in one transaction, and only then does the mailbox move them (to its done
folder, or to the unrecognised one for a person). A crash before the move means the batch
is read again, which changes nothing (kabar.inbound.policy keys every result).

After the commit, each issue that took a hard bounce is checked by the bounce-rate
circuit breaker (kabar.deliver.breaker).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from kabar.config import Config
from kabar.deliver import breaker
from kabar.inbound.parse import Addresses, Finding, Reading, read
from kabar.inbound.policy import Result, record, resolve

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Processed:
    """What one returned message came to."""

    message_id: str
    results: list[Result] = field(default_factory=list)

    @property
    def recognised(self) -> bool:
        """False when a person should look at it (kept in the unrecognised folder)."""
        return bool(self.results) and all(r.kind != "unrecognised" for r in self.results)


@dataclass
class Tally:
    messages: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    repeated: int = 0  # results read before, which changed nothing
    paused: list[str] = field(default_factory=list)  # issues the breaker paused

    def add(self, processed: Processed) -> None:
        self.messages += 1
        for result in processed.results:
            self.by_kind[result.kind] = self.by_kind.get(result.kind, 0) + 1
            self.repeated += not result.fresh

    def to_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "kinds": dict(sorted(self.by_kind.items())),
            "repeated": self.repeated,
            "paused": self.paused,
        }

    def describe(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.by_kind.items())) or "nothing"
        repeated = f" ({self.repeated} read before: unchanged)" if self.repeated else ""
        return f"{self.messages} message(s): {kinds}{repeated}"


class Processor:
    """Turns returned messages (or a relay's reports) into results, batch by batch."""

    def __init__(self, config: Config, engine: Engine, secret: bytes, *, clock: Clock = utcnow):
        self.config = config
        self.engine = engine
        self.secret = secret
        self.clock = clock
        bounces = config.bounces
        self.addresses = Addresses(bounces.address, bounces.unsubscribe_address)
        self.tally = Tally()

    def messages(self, batch: Sequence[bytes], source: str) -> list[Processed]:
        """Parse and commit a batch of raw messages; the caller moves them afterwards."""
        return self.readings([self._read(data) for data in batch], source)

    def _read(self, data: bytes) -> Reading:
        """The message's findings; one that no reader survives is kept for a person, so
        it can never block the mailbox (read again and again, failing each time)."""
        try:
            return read(data, self.addresses)
        except Exception as exc:
            log.exception("a returned message could not be read")
            digest = "sha256:" + hashlib.sha256(data).hexdigest()[:40]
            reason = f"could not be read: {type(exc).__name__}: {exc}"[:300]
            return Reading(digest, [Finding("unrecognised", detail=reason)])

    def readings(
        self, readings: Sequence[Reading], source: str, *, by_address: bool = False
    ) -> list[Processed]:
        now = self.clock()
        policy = self.config.bounces.policy
        done: list[Processed] = []
        with self.engine.begin() as connection:
            for reading in readings:
                processed = Processed(reading.message_id)
                findings = reading.findings or [Finding("unrecognised", detail="empty report")]
                for index, finding in enumerate(findings):
                    target, why_not = resolve(
                        connection, self.secret, finding, by_address=by_address
                    )
                    processed.results.append(
                        record(
                            connection,
                            key=_key(reading.message_id, finding, target, index),
                            source=source,
                            message_id=reading.message_id,
                            finding=finding,
                            target=target,
                            why_not=why_not,
                            policy=policy,
                            now=now,
                        )
                    )
                done.append(processed)
        for processed in done:
            self.tally.add(processed)
        self._watch_bounce_rates(done)
        return done

    def _watch_bounce_rates(self, done: Sequence[Processed]) -> None:
        issues = {
            result.target.issue_key
            for processed in done
            for result in processed.results
            if result.fresh and result.kind == "hard" and result.target and result.target.issue_key
        }
        for issue_key in sorted(issues):
            reason = breaker.check(
                self.engine, issue_key, self.config.bounces.policy, now=self.clock()
            )
            if reason:
                self.tally.paused.append(issue_key)


def _key(message_id: str, finding: Finding, target: object, index: int) -> str:
    """The returned message plus the delivery it names (or its recipient, or position)."""
    delivery = getattr(target, "delivery_id", None)
    if delivery is not None:
        return f"{message_id}|d{delivery}|{finding.kind}"
    return f"{message_id}|{finding.recipient.lower() or index}|{finding.kind}"
