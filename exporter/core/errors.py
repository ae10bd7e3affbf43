"""Why a poll failed: a short reason safe as a label value, and a detail for people.

Pure: the translate modules raise ``InvalidResponse`` without loading the network stack.
The reason a failed vendor request gets is decided in one place,
``exporter.upstream.client.upstream_error``.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """A poll failed. ``reason`` is one of a small fixed set, safe as a label value.

    ``retry_after`` is the vendor's own hint (seconds) on when to ask again, if it gave one.
    ``outdated``: what the target last yielded must not be served any more (a relayed
    body past its staleness bound), so it goes at once rather than after the global
    ``stale_grace`` a failing target's last values are otherwise kept for.
    """

    def __init__(
        self, reason: str, detail: str, *, retry_after: float | None = None, outdated: bool = False
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after
        self.outdated = outdated


class InvalidResponse(UpstreamError):
    """The vendor answered 200 with a body we cannot translate (schema drift)."""

    def __init__(self, detail: str) -> None:
        super().__init__("invalid_response", detail)


class LimitExceeded(UpstreamError):
    """A vendor answer went past one of the exporter's limits: the target (or discovery)
    it came from fails alone, with a reason naming what was too many, and nothing of the
    answer is kept. ``limit`` is the config key that sets the limit, for the counter of
    limit hits and for the detail, which says to raise it."""

    def __init__(self, reason: str, limit: str, detail: str, *, outdated: bool = False) -> None:
        super().__init__(reason, detail, outdated=outdated)
        self.limit = limit
