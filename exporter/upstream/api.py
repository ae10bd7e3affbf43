"""What every vendor's typed API shares: one account, its current client, ids as path segments.

A vendor's API (``exporter.sources.<vendor>.api``) is a class of methods, one per
endpoint, that own the path template and the ``source`` and ``endpoint`` labels its
requests are counted under, so a target calls ``api.deployments(model_id)`` and never
builds a URL or names a label. Each target is handed the API of its account.

The API object holds no client of its own: each request takes the account's current
client from the ``Clients`` holder, so a reload that replaces an account's client (a
new key, URL or limit) reaches every target at once, while requests already sent on the
old client finish on it (its retries included) before it is closed after its grace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from exporter.core.errors import InvalidResponse, UpstreamError
from exporter.core.scope import DEFAULT_ACCOUNT
from exporter.upstream.client import Reply, UpstreamStats, VendorClient

# Segments the HTTP stack would not send as they are: yarl (under aiohttp) decodes
# ``%2E`` and removes dot segments, and an empty one joins its neighbours.
_UNSENDABLE = frozenset({"", ".", ".."})


def segment(value: str) -> str:
    """``value`` (an id from the config or from a vendor's answer) as exactly one URL path segment.

    Everything but letters, digits and ``-._~`` is percent-encoded, so an id can neither
    end its segment (``/``), start a query or fragment (``?``, ``#``) nor carry an
    escape of its own (``%``). An id that could only be sent as a dot segment or an
    empty one (``..``, ``.``, ``""``) would name another resource: the request is refused.
    """
    if value in _UNSENDABLE:
        raise InvalidResponse(f"the id {value!r} cannot be a segment of a URL path")
    return quote(value, safe="")


class Clients:
    """The current client of each vendor account, by (vendor, account name).

    Targets reach their client through their account's API (``exporter.upstream.api``),
    which looks it up here at each request, so a reload that changes an account's key
    or URL swaps the client without rebuilding any target.
    """

    def __init__(self) -> None:
        self._by_account: dict[tuple[str, str], VendorClient] = {}

    def get(self, vendor: str, account: str = DEFAULT_ACCOUNT) -> VendorClient:
        try:
            return self._by_account[(vendor, account)]
        except KeyError:
            raise UpstreamError("not_configured", f"no {vendor} account {account!r} in the config") from None

    def find(self, vendor: str, account: str = DEFAULT_ACCOUNT) -> VendorClient | None:
        return self._by_account.get((vendor, account))

    def replace(self, clients: Mapping[tuple[str, str], VendorClient]) -> list[VendorClient]:
        """Install new clients; return the ones replaced, for the caller to close."""
        old = [c for k, c in self._by_account.items() if clients.get(k) is not c]
        self._by_account = dict(clients)
        return old

    def all(self) -> list[VendorClient]:
        return list(self._by_account.values())


class AccountAPI:
    """One account of one vendor: the base of each vendor's typed API.

    Subclasses set ``vendor`` (the name the account's client is kept under) and build
    their methods on ``_get`` and ``_post``.
    """

    vendor: ClassVar[str]
    __slots__ = ("_clients", "account")

    def __init__(self, clients: Clients, account: str = DEFAULT_ACCOUNT) -> None:
        self._clients = clients
        self.account = account

    @property
    def client(self) -> VendorClient:
        """The account's current client; ``not_configured`` if the config has no such account."""
        return self._clients.get(self.vendor, self.account)

    @property
    def stats(self) -> UpstreamStats:
        """Where the account's requests and limit hits are counted."""
        return self.client.stats

    def configured(self) -> bool:
        """Whether the running config has this account (a target closed after a reload may
        outlive it)."""
        return self._clients.find(self.vendor, self.account) is not None

    async def _get(
        self,
        path: str,
        *,
        source: str,
        endpoint: str,
        timeout: float,
        params: Mapping[str, Any] | None = None,
        repeated: bool = False,
    ) -> Reply:
        return await self.client.request_json(
            "GET", path, source=source, endpoint=endpoint, timeout=timeout, params=params, repeated=repeated
        )

    async def _post(
        self,
        path: str,
        body: Any,
        *,
        source: str,
        endpoint: str,
        timeout: float,
        ok_statuses: tuple[int, ...] = (200,),
    ) -> Reply:
        return await self.client.request_json(
            "POST",
            path,
            source=source,
            endpoint=endpoint,
            timeout=timeout,
            json_body=body,
            ok_statuses=ok_statuses,
        )
