"""The vendor clients of the running config, one per vendor account, kept across reloads when unchanged.

A client holds a connection pool, the account's request budget and its ``Retry-After``
memory, so a reload that leaves an account's settings as they were keeps its client.
One whose settings changed (a new key, URL or limit) is replaced; when the same key
still goes to the same URL, the new client goes on with the old one's hints, and with
its budget if the rate is unchanged (the vendor's limit is the key's, whatever the
pool). A target's API looks its account's client up at each request, so new requests
use the new one at once, while requests still running on the old one finish first
(the caller's grace), then it is closed. Other accounts are not touched. The key
scrubber knows the key of every client still open, so a replaced key echoed in an
answer to a request in flight is still scrubbed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import NamedTuple

from exporter.config import ConfigBase, LoadedConfig
from exporter.configkit.common import AccountCommon
from exporter.core.logs import SCRUBBER, SecretScrubber
from exporter.upstream.api import Clients
from exporter.upstream.budget import shard_rate
from exporter.upstream.client import UpstreamStats, VendorClient

AccountKey = tuple[str, str]


Loaded = LoadedConfig[ConfigBase]


def _accounts(loaded: Loaded) -> Iterator[tuple[AccountKey, AccountCommon]]:
    for vendor, _, account in loaded.config.accounts():
        if (vendor.name, account.name) in loaded.secrets:
            yield (vendor.name, account.name), account


def make_client(
    loaded: Loaded, key: AccountKey, account: AccountCommon, stats: UpstreamStats, total_shards: int = 1
) -> VendorClient:
    rps = account.requests_per_second
    return VendorClient(
        key[0],
        account.base_url,
        loaded.secrets[key],
        max_connections=account.max_connections,
        # The account's own view of the counters: every series carries its name.
        stats=stats.for_account(key[1]),
        # The budget is for the whole account: each shard's client gets its share.
        requests_per_second=shard_rate(rps, total_shards) if rps is not None else None,
        max_body_bytes=account.max_response_bytes,
    )


class ClientSettings(NamedTuple):
    """Everything an account's client is built from: equal settings, same client. The
    key is held as its digest: these settings are compared, and nothing made of them
    (a repr, a test's diff) may show the key."""

    base_url: str
    max_connections: int
    requests_per_second: float | None
    max_response_bytes: int
    key_digest: bytes

    def same_vendor_key(self, other: ClientSettings) -> bool:
        """Whether both send the same key to the same URL: what the vendor's rate limit
        and its hints are for, whatever the pool or body limits."""
        return (self.base_url, self.key_digest) == (other.base_url, other.key_digest)


def client_settings(loaded: Loaded, key: AccountKey, account: AccountCommon) -> ClientSettings:
    return ClientSettings(
        account.base_url,
        account.max_connections,
        account.requests_per_second,
        account.max_response_bytes,
        hashlib.sha256(loaded.secrets.get(key, "").encode()).digest(),
    )


class VendorClients:
    """Builds the clients a config asks for, reuses unchanged ones and closes replaced ones.

    ``current`` is the holder the targets' APIs look their client up in at each request,
    so a changed client takes effect without rebuilding any target.
    """

    def __init__(self, stats: UpstreamStats, total_shards: int, scrubber: SecretScrubber = SCRUBBER) -> None:
        self.current = Clients()
        self._stats = stats
        self._total_shards = total_shards
        self._scrubber = scrubber
        self._settings: dict[AccountKey, ClientSettings] = {}
        # Every client not closed yet, current or replaced, with its API key.
        self._open: dict[VendorClient, str] = {}
        # Replaced clients waiting out their grace before they close, by the task that
        # closes them: at shutdown the waits are cut short and the clients closed at once.
        self._retiring: dict[asyncio.Task[None], list[VendorClient]] = {}

    def update(self, loaded: Loaded, grace: float) -> list[AccountKey]:
        """Install the clients for ``loaded``; close the replaced ones after ``grace`` seconds.

        Returns the accounts whose client now sends another key, or sends it elsewhere
        (another ``base_url``): what the vendor said of the old one says nothing of it.
        """
        clients: dict[AccountKey, VendorClient] = {}
        settings: dict[AccountKey, ClientSettings] = {}
        rekeyed: list[AccountKey] = []
        for key, account in _accounts(loaded):
            now = settings[key] = client_settings(loaded, key, account)
            existing = self.current.find(*key)
            before = self._settings.get(key)
            if existing is not None and before == now:
                clients[key] = existing
                continue
            clients[key] = make_client(loaded, key, account, self._stats, self._total_shards)
            self._open[clients[key]] = loaded.secrets[key]
            if existing is not None and before is not None and before.same_vendor_key(now):
                same_rate = before.requests_per_second == now.requests_per_second
                clients[key].pacer.take_over(existing.pacer, budget=same_rate)
            else:
                rekeyed.append(key)
        for vendor, name in self._settings.keys() - settings.keys():
            self._stats.for_account(name).forget_rate_limits(vendor)
        self._settings = settings
        replaced = self.current.replace(clients)
        self._scrub()
        if replaced:
            task = asyncio.create_task(self._close_later(replaced, grace))
            self._retiring[task] = replaced
            task.add_done_callback(self._retiring.pop)
        return rekeyed

    def open_clients(self) -> int:
        """Clients not closed yet: the current ones and the replaced ones in their grace."""
        return len(self._open)

    def _scrub(self) -> None:
        self._scrubber.set_secrets(set(self._open.values()))

    async def _close_later(self, clients: list[VendorClient], delay: float) -> None:
        await asyncio.sleep(delay)
        await _close(clients)
        for client in clients:
            self._open.pop(client, None)
        self._scrub()

    async def aclose(self) -> None:
        """Close every client, the current ones and those still in their grace."""
        retiring = [c for clients in self._retiring.values() for c in clients]
        for task in list(self._retiring):
            task.cancel()
        await _close([*retiring, *self.current.all()])


async def _close(clients: list[VendorClient]) -> None:
    await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
