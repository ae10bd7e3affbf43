"""HTTP access to the vendor APIs: one shared client per vendor, errors as reasons.

Every failure becomes an ``UpstreamError`` with a short, bounded ``reason`` (used as a
label value and on the status page) and a human ``detail``. Neither ever contains the
API key: we never format request headers, and the scrubber catches library text.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import httpx

from exporter import __version__
from exporter.pool import AiohttpTransport

MAX_BODY_BYTES = 16 * 1024 * 1024


class UpstreamError(Exception):
    """A poll failed. ``reason`` is one of a small fixed set, safe as a label value."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidResponse(UpstreamError):
    """The vendor answered 200 with a body we cannot translate (schema drift)."""

    def __init__(self, detail: str) -> None:
        super().__init__("invalid_response", detail)


def reason_for_status(status: int) -> str:
    if status == 401 or status == 403:
        return "unauthorized"
    if status == 404:
        return "not_found"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    return "client_error"


class UpstreamStats:
    """Counts of requests by (source, endpoint, code), for ``…_upstream_requests_total``."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()

    def count(self, source: str, endpoint: str, code: str) -> None:
        self.requests[(source, endpoint, code)] += 1


def _error_message(body: bytes) -> str:
    """The vendor's own error message, if the body carries one, cut short."""
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    if isinstance(doc, dict):
        inner = doc.get("error", doc)
        if isinstance(inner, dict):
            msg = inner.get("message")
            if isinstance(msg, str):
                return msg[:200]
    return ""


class VendorClient:
    """One vendor's API: base URL, bearer auth and a bounded connection pool."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        api_key: str,
        *,
        max_connections: int,
        stats: UpstreamStats,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.stats = stats
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"inference-exporter/{__version__}"},
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport or AiohttpTransport(max_connections),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        source: str,
        endpoint: str,
        timeout: float,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        ok_statuses: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]:
        """Send one request and decode its JSON body.

        Returns (status, document) for statuses in ``ok_statuses``; anything else
        raises UpstreamError. ``endpoint`` is the path template, used as a label.
        """
        try:
            req = self._client.build_request(method, path, params=params, json=json_body, timeout=timeout)
            resp = await self._client.send(req, stream=True)
        except httpx.TimeoutException:
            self.stats.count(source, endpoint, "timeout")
            raise UpstreamError("timeout", f"{method} {endpoint} timed out after {timeout:g}s") from None
        except httpx.HTTPError as exc:
            self.stats.count(source, endpoint, "error")
            raise UpstreamError("connection_error", f"{method} {endpoint}: {type(exc).__name__}") from None
        try:
            body = bytearray()
            try:
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        self.stats.count(source, endpoint, str(resp.status_code))
                        raise UpstreamError(
                            "body_too_large", f"{method} {endpoint}: body over {MAX_BODY_BYTES} bytes"
                        )
            except httpx.TimeoutException:
                self.stats.count(source, endpoint, "timeout")
                raise UpstreamError("timeout", f"{method} {endpoint}: body timed out") from None
            except httpx.HTTPError as exc:
                self.stats.count(source, endpoint, "error")
                raise UpstreamError(
                    "connection_error", f"{method} {endpoint}: {type(exc).__name__}"
                ) from None
        finally:
            await resp.aclose()
        status = resp.status_code
        self.stats.count(source, endpoint, str(status))
        if status not in ok_statuses:
            msg = _error_message(bytes(body))
            raise UpstreamError(
                reason_for_status(status),
                f"{method} {endpoint} answered {status}" + (f": {msg}" if msg else ""),
            )
        try:
            return status, json.loads(body)
        except ValueError:
            raise InvalidResponse(f"{method} {endpoint}: body is not valid JSON") from None


class Clients:
    """The current client of each vendor.

    Targets look their client up at poll time through this holder, so a reload that
    changes a vendor's key or URL swaps the client without rebuilding every target.
    """

    def __init__(self) -> None:
        self._by_vendor: dict[str, VendorClient] = {}

    def get(self, vendor: str) -> VendorClient:
        try:
            return self._by_vendor[vendor]
        except KeyError:
            raise UpstreamError("not_configured", f"no {vendor} section in the config") from None

    def find(self, vendor: str) -> VendorClient | None:
        return self._by_vendor.get(vendor)

    def replace(self, clients: Mapping[str, VendorClient]) -> list[VendorClient]:
        """Install new clients; return the ones replaced, for the caller to close."""
        old = [c for v, c in self._by_vendor.items() if clients.get(v) is not c]
        self._by_vendor = dict(clients)
        return old

    def all(self) -> list[VendorClient]:
        return list(self._by_vendor.values())
