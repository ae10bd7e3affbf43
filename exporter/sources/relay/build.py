"""A relay target from its section of a vendor account (``relay.config``).

The vendor's builders call :func:`relay_target` for each relay an account has: the
vendor's name picks the account's client (and key), the section gives the schedule,
the bounds and the names; the account's scope gives the labels, the metric filter and
the native namespaces no relay may emit into.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from exporter.configkit.common import GlobalConfig
from exporter.sources.contract import AccountScope
from exporter.sources.relay.config import MAX_SERIES_KEY, RelaySection
from exporter.sources.relay.rules import DEFAULT_MAX_LABEL_LENGTH, RelayRules
from exporter.sources.relay.target import RelaySettings, RelayTarget
from exporter.upstream.api import Clients


def endpoint_label(url: str) -> str:
    """The ``endpoint`` its requests are counted under: the URL's path, as written in the
    config (no query: one series per relay, whatever it asks)."""
    return urlsplit(url).path or "/"


def relay_target(
    vendor: str,
    g: GlobalConfig,
    section: RelaySection,
    name: str,
    auth_scheme: str,
    scope: AccountScope,
    clients: Clients,
    max_label_length: int = DEFAULT_MAX_LABEL_LENGTH,
) -> RelayTarget:
    timeout = min(section.timeout or g.timeout, section.interval)
    rules = RelayRules(
        prefix=section.metric_prefix,
        reserved=scope.native_namespaces,
        max_label_length=max_label_length,
        series_key=MAX_SERIES_KEY,
    )
    settings = RelaySettings(
        vendor,
        name,
        section.url,
        section.interval,
        timeout,
        section.stale_after,
        auth_scheme,
        endpoint=endpoint_label(section.url),
        rules=rules,
        scope=replace(scope.of(section.labels), max_series=section.max_series),
        max_body_bytes=section.max_response_bytes,
    )
    return RelayTarget(clients, settings)
