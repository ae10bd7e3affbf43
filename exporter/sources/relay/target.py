"""A vendor's Prometheus endpoint as one target of an account: fetched once per interval,
relayed to every scrape.

The request goes through the account's client (``VendorClient.request_raw``), so the
account's request budget counts it, and a ``Retry-After`` holds back the next fetch
until it has passed, with no request sent in between. Scrapes never reach the vendor:
they read what the last poll stored, however many scrapers there are.

While the vendor rate-limits (``rate_limited``, or no slot left in the account's
budget: ``budget_exhausted``), the target serves the last body it relayed, and stays
up, until that body is older than ``stale_after``; from then on it fails with the
vendor's reason and forgets that body, which is never served again (what the store
keeps of a failing target goes after the global ``stale_grace``, as for every target).
Any other failure fails the poll at once. A body that cannot be relayed (malformed:
``invalid_response``; past a limit) fails the poll and leaves the last good body in
place for the next rate-limited poll, within the same bound.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from exporter.core.errors import InvalidResponse, UpstreamError
from exporter.core.exposition import Family, Rendered
from exporter.core.scope import DEFAULT_SCOPE, Scope, target_id
from exporter.sources.base import Target, counted_limits
from exporter.sources.relay.rules import DEFAULT_RULES, MAX_LABEL_KEY, FamilyKey, RelayRules
from exporter.sources.relay.translate import relay
from exporter.upstream.client import Clients, RawReply, VendorClient

log = logging.getLogger("exporter.sources.relay.target")

SOURCE = "relay"
# Only the text format 0.0.4 is relayed: never ask for OpenMetrics.
ACCEPT = "text/plain; version=0.0.4"
# Failures that mean "not now" rather than "broken": the last body is served through them.
HOLD_REASONS = frozenset({"rate_limited", "budget_exhausted"})


@dataclass(frozen=True)
class RelaySettings:
    """Everything from the config that shapes a relay's polls (its target's ``settings``).

    ``vendor``: whose account client (and key) fetches ``url`` (absolute, or a path under
    the account's base URL) with ``auth_scheme``; ``name`` tells apart the relays of one
    account in the target id; ``endpoint`` labels the requests in the upstream
    self-metrics; ``stale_after``: seconds after its fetch a body may still be served
    while the vendor rate-limits."""

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


def relay_id(settings: RelaySettings) -> str:
    return target_id(SOURCE, settings.scope.account, settings.vendor, settings.name)


class RelayTarget(Target):
    """One endpoint of one account. Keeps the last body it relayed (rendered, as the
    store holds it), when it was fetched, and the families it declared."""

    source = SOURCE
    settings: RelaySettings

    def __init__(self, clients: Clients, settings: RelaySettings) -> None:
        self._init_from_settings(relay_id(settings), settings)
        self.clients = clients
        self._last: Rendered | None = None
        # The scope it was rendered through: after a reload it takes the new labels when
        # it is next served (the store's copy is restyled by the daemon at once).
        self._last_scope = self.scope
        # Wall time of the fetch the last good body came from (meaningful with _last).
        self.fetched_at = 0.0
        self._families: Mapping[FamilyKey, Family] = {}
        # Polls that served the last body because the vendor rate-limited.
        self.held = 0
        self._reserved_logged: tuple[str, ...] = ()

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
        with counted_limits(client.stats, SOURCE):
            try:
                reply = await client.request_raw(
                    s.url,
                    source=SOURCE,
                    endpoint=s.endpoint,
                    timeout=self.timeout,
                    auth_scheme=s.auth_scheme,
                    accept=ACCEPT,
                )
            except UpstreamError as exc:
                held = self._held(exc.reason, now)
                if held is None:
                    raise
                return held
            rendered = self._relay(reply, client)
        self._last, self._last_scope, self.fetched_at = rendered, self.scope, now
        self._families = {(f.name, f.type, f.help): f for f in rendered.meta.values()}
        return rendered

    def _held(self, reason: str, now: float) -> Rendered | None:
        """The last body, if a poll that failed for ``reason`` may serve it now."""
        if self._last is not None and now - self.fetched_at > self.settings.stale_after:
            log.info(
                "relayed body dropped: older than its staleness bound",
                extra={"target": self.id, "age": round(now - self.fetched_at, 1)},
            )
            self._forget()
        if self._last is None or reason not in HOLD_REASONS:
            return None
        if self._last_scope != self.scope:
            self._last = self.scope.restyle(self._last, self._last_scope)
            self._last_scope = self.scope
        self.held += 1
        log.debug(
            "vendor rate-limits: serving the last body",
            extra={"target": self.id, "reason": reason, "age": round(now - self.fetched_at, 1)},
        )
        return self._last

    def _relay(self, reply: RawReply, client: VendorClient) -> Rendered:
        s = self.settings
        if "openmetrics" in reply.content_type.lower():
            raise InvalidResponse(
                f"GET {s.endpoint} answered in OpenMetrics ({reply.content_type[:60]}), "
                "though asked for the text format 0.0.4, the only one relayed"
            )
        result = relay(reply.body, self.scope, s.rules, self._families)
        if result.too_long:
            client.stats.limit_hit(SOURCE, MAX_LABEL_KEY, result.too_long)
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
