"""A vendor's Prometheus endpoint as one target of an account: fetched once per interval,
relayed to every scrape.

The request goes through the account's client (``VendorClient.request_raw``), so the
account's request budget counts it, and a ``Retry-After`` holds back the next fetch
until it has passed, with no request sent in between; it is sent once per poll, never
retried (``ATTEMPTS``). Scrapes never reach the vendor:
they read what the last poll stored, however many scrapers there are.

While the vendor rate-limits (``rate_limited``, or no slot left in the account's
budget: ``budget_exhausted``), the target serves the last body it relayed, and stays
up, until that body is older than ``stale_after``; then the poll fails with the
vendor's reason and the body is forgotten, gone from the exposition at once
(``UpstreamError.outdated``, rather than after the global ``stale_grace``) and never
served again. Any other failure fails the poll at once (the store keeps what the
target last yielded for ``stale_grace``, as for every target). A body that cannot be
relayed (malformed: ``invalid_response``; past a limit) fails the poll and leaves the
last good body in place for the next rate-limited poll, within the same bound.

A body is read a piece at a time (``translate.relay_in_steps``): one of the largest size
allowed, made of the lines slowest to read, takes seconds of CPU, during which the event
loop serves scrapes between the pieces, and which the poll's deadline can end.

What each body left out, and the polls served from a held body, are counted on the
target (``RelayCounts``), read by the exporter's self-metrics (``relay.stats``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from exporter.core.errors import InvalidResponse, LimitExceeded, UpstreamError
from exporter.core.exposition import Family, Rendered
from exporter.core.scope import DEFAULT_SCOPE, Scope, target_id
from exporter.sources.base import Target, counted_limits
from exporter.sources.relay.rules import DEFAULT_RULES, MAX_LABEL_KEY, FamilyKey, Relayed, RelayRules
from exporter.sources.relay.translate import relay_in_steps
from exporter.upstream.api import Clients
from exporter.upstream.client import RawReply, VendorClient

log = logging.getLogger("exporter.sources.relay.target")

# Only the text format 0.0.4 is relayed: never ask for OpenMetrics.
ACCEPT = "text/plain; version=0.0.4"
# Failures that mean "not now" rather than "broken": the last body is served through them.
HOLD_REASONS = frozenset({"rate_limited", "budget_exhausted"})
# One request per poll, never retried: such an endpoint allows a few requests a minute
# per organisation (6), which retries would spend for every collector of it; the next
# poll is the retry, and a 429's Retry-After holds back the polls until it has passed.
ATTEMPTS = 1


@dataclass(frozen=True)
class RelaySettings:
    """Everything from the config that shapes a relay's polls (its target's ``settings``).

    ``vendor``: whose account client (and key) fetches ``url`` (absolute, or a path under
    the account's base URL) with ``auth_scheme``; ``name`` tells apart the relays of one
    account in the target id; ``endpoint`` labels the requests in the upstream
    self-metrics; ``stale_after``: seconds after its fetch a body may still be served
    while the vendor rate-limits; ``max_body_bytes``: the body cap of its requests
    (None: the account client's)."""

    vendor: str
    name: str
    url: str
    interval: float
    timeout: float
    stale_after: float
    auth_scheme: str = "Bearer"
    endpoint: str = "/metrics"
    rules: RelayRules = DEFAULT_RULES
    scope: Scope = DEFAULT_SCOPE
    max_body_bytes: int | None = None


def relay_source(vendor: str) -> str:
    """The source of a vendor's relays (``baseten_relay``): the vendor's name first, as
    every source's (the account a target belongs to is read from it)."""
    return f"{vendor}_relay"


def relay_id(settings: RelaySettings) -> str:
    """``<vendor>_relay/<name>``, or ``<vendor>_relay@<account>/<name>``."""
    return target_id(relay_source(settings.vendor), settings.scope.account, settings.name)


@dataclass
class RelayCounts:
    """What a relay's polls have left out of its bodies so far, and the polls it served
    from a held body: running totals for as long as the target lives."""

    held: int = 0
    duplicates: int = 0
    timestamps: int = 0
    reserved: int = 0
    too_long: int = 0

    def add(self, result: Relayed) -> None:
        self.duplicates += result.duplicates
        self.timestamps += result.timestamps
        self.reserved += result.reserved_series
        self.too_long += result.too_long


class RelayTarget(Target):
    """One endpoint of one account. Keeps the last body it relayed (rendered, as the
    store holds it), when it was fetched, and the families it declared."""

    settings: RelaySettings

    def __init__(self, clients: Clients, settings: RelaySettings) -> None:
        self._init_from_settings(relay_id(settings), settings)
        self.source = relay_source(settings.vendor)
        self.clients = clients
        self._last: Rendered | None = None
        # The scope it was rendered through: after a reload it takes the new labels when
        # it is next served (the store's copy is restyled by the daemon at once).
        self._last_scope = self.scope
        # Wall time of the fetch the last good body came from (meaningful with _last).
        self.fetched_at = 0.0
        self._families: Mapping[FamilyKey, Family] = {}
        self.counts = RelayCounts()
        self._reserved_logged: tuple[str, ...] = ()

    @property
    def body_fetched_at(self) -> float | None:
        """Wall time of the fetch the body it serves came from; None while it holds none."""
        return self.fetched_at if self._last is not None else None

    def reconfigure(self, new: Target) -> bool:
        if not isinstance(new, RelayTarget):
            return False
        old_rules = self.settings.rules
        if not super().reconfigure(new):
            return False
        if new.settings.rules != old_rules:
            self._forget()
        return True

    def _forget(self) -> None:
        self._last = None
        self._families = {}

    async def poll(self, now: float) -> Rendered:
        s = self.settings
        client = self.clients.get(s.vendor, self.account)
        with counted_limits(client.stats, self.source):
            try:
                reply = await client.request_raw(
                    s.url,
                    source=self.source,
                    endpoint=s.endpoint,
                    timeout=self.timeout,
                    auth_scheme=s.auth_scheme,
                    accept=ACCEPT,
                    max_body_bytes=s.max_body_bytes,
                    max_attempts=ATTEMPTS,
                )
            except UpstreamError as exc:
                dropped = self._drop_if_stale(now)
                held = self._held(exc, now)
                if held is not None:
                    return held
                if dropped:
                    raise UpstreamError(
                        exc.reason,
                        f"{exc.detail}; the last body relayed, older than stale_after "
                        f"({s.stale_after:g}s), is dropped",
                        retry_after=exc.retry_after,
                        outdated=True,
                    ) from None
                raise
            scope = self.scope
            rendered = await self._relay(reply, client, scope)
        self._last, self._last_scope, self.fetched_at = rendered, scope, now
        self._families = {(f.name, f.type, f.help): f for f in rendered.meta.values()}
        return rendered

    def _drop_if_stale(self, now: float) -> bool:
        """Forget the last body once it is older than ``stale_after``; True if it was."""
        if self._last is None or now - self.fetched_at <= self.settings.stale_after:
            return False
        log.info(
            "relayed body dropped: older than its staleness bound",
            extra={"target": self.id, "age": round(now - self.fetched_at, 1)},
        )
        self._forget()
        return True

    def _held(self, failure: UpstreamError, now: float) -> Rendered | None:
        """The last body, if a poll that failed with ``failure`` may serve it now. One a
        reload's lower ``max_series`` no longer allows is dropped: the poll fails
        (``too_many_series``) and what the target served goes at once."""
        if self._last is None or failure.reason not in HOLD_REASONS:
            return None
        if self._last_scope != self.scope:
            self._last = self.scope.restyle(self._last, self._last_scope)
            self._last_scope = self.scope
            series, limit = self._last.series, self.scope.max_series
            if series > limit:
                self._forget()
                key = self.settings.rules.series_key
                raise LimitExceeded(
                    "too_many_series",
                    key,
                    f"{failure.detail}; the last body relayed, held meanwhile, has {series} series, "
                    f"more than {key} ({limit}) allows since the reload: it is dropped",
                    outdated=True,
                ) from None
        self.counts.held += 1
        log.debug(
            "vendor rate-limits: serving the last body",
            extra={"target": self.id, "reason": failure.reason, "age": round(now - self.fetched_at, 1)},
        )
        return self._last

    async def _relay(self, reply: RawReply, client: VendorClient, scope: Scope) -> Rendered:
        """The body relayed through ``scope``, a piece at a time: the event loop serves
        scrapes between the pieces, and the poll's deadline can end it at any of them."""
        s = self.settings
        if "openmetrics" in reply.content_type.lower():
            raise InvalidResponse(
                f"GET {s.endpoint} answered in OpenMetrics ({reply.content_type[:60]}), "
                "though asked for the text format 0.0.4, the only one relayed"
            )
        steps = relay_in_steps(reply.body, scope, s.rules, self._families)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: Relayed = done.value
                break
            await asyncio.sleep(0)
        self.counts.add(result)
        if result.too_long:
            client.stats.limit_hit(self.source, MAX_LABEL_KEY, result.too_long)
        if result.reserved and result.reserved != self._reserved_logged:
            log.warning(
                "relayed families left out: their names belong to the exporter's own sources",
                extra={
                    "target": self.id,
                    "families": ",".join(result.reserved),
                    "series": result.reserved_series,
                },
            )
        self._reserved_logged = result.reserved
        if result.duplicates:
            log.debug("repeated series left out", extra={"target": self.id, "series": result.duplicates})
        return result.rendered
