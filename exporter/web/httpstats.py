"""What the exporter's HTTP server refused and closed, as the exporter's own metrics.

A scrape that fails because the server was full, or a client that keeps connections
open without finishing a request, shows here rather than only in a debug line.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

# Why a new connection was closed as soon as it was accepted.
REFUSAL_REASONS = (
    "peer_share",  # its peer already held its share of the connection cap
    "capacity",  # the cap was reached and no connection could be evicted for it
)
# Why the server closed a connection it had accepted.
CLOSE_REASONS = (
    "header_timeout",  # the request did not arrive whole within --web.read-timeout
    "idle_timeout",  # kept alive with no request for the idle timeout
    "send_timeout",  # the client read none of the answer for the idle timeout
    "evicted",  # silent, unfinished or idle, closed to make room for another peer's connection
    "malformed",  # the request could not be parsed (400)
    "header_too_large",  # the request head grew past its bound (431)
)


class HttpStats:
    """Counters of refused and closed connections by reason, and the open ones.

    Every reason is shown from 0, so that an alert on its rate needs no ``or vector(0)``.
    Without a registry the counters are kept but served nowhere (tests read them directly).
    """

    def __init__(self, open_connections: Callable[[], int], registry: CollectorRegistry | None = None):
        self.refusals = Counter(
            "inference_exporter_http_connections_refused_total",
            "Connections to the exporter's HTTP server closed as soon as they were accepted, by reason: "
            "peer_share (the client's address held its share of --web.max-connections) or capacity.",
            ("reason",),
            registry=registry,
        )
        self.closes = Counter(
            "inference_exporter_http_connections_closed_total",
            "Connections the exporter's HTTP server closed for a limit, by reason: header_timeout, "
            "idle_timeout, send_timeout, evicted (to make room), malformed (400), header_too_large (431).",
            ("reason",),
            registry=registry,
        )
        self._refused_series = {r: self.refusals.labels(r) for r in REFUSAL_REASONS}
        self._closed_series = {r: self.closes.labels(r) for r in CLOSE_REASONS}
        Gauge(
            "inference_exporter_http_connections_open",
            "Connections open to the exporter's HTTP server (at most --web.max-connections).",
            registry=registry,
        ).set_function(lambda: float(open_connections()))

    def refused(self, reason: str) -> None:
        self._refused_series[reason].inc()

    def closed(self, reason: str) -> None:
        self._closed_series[reason].inc()
