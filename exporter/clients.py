"""The vendor clients of the running config, one per vendor, kept across reloads when unchanged.

A client holds a connection pool, the vendor's request budget and its ``Retry-After``
memory, so a reload that leaves a vendor's settings as they were keeps its client.
One whose settings changed is replaced; polls still running on the old one finish
first, then it is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from exporter.budget import shard_rate
from exporter.config import LoadedConfig
from exporter.upstream import Clients, UpstreamStats, VendorClient


def make_client(
    loaded: LoadedConfig, vendor: str, stats: UpstreamStats, total_shards: int = 1
) -> VendorClient:
    section = getattr(loaded.config, vendor)
    rps = section.requests_per_second
    return VendorClient(
        vendor,
        section.base_url,
        loaded.secrets[vendor],
        max_connections=section.max_connections,
        stats=stats,
        # The budget is for the whole account: each shard's client gets its share.
        requests_per_second=shard_rate(rps, total_shards) if rps is not None else None,
        max_body_bytes=section.max_response_bytes,
    )


def settings_key(loaded: LoadedConfig, vendor: str) -> Hashable:
    """Everything a vendor's client is built from: equal keys, same client."""
    section = getattr(loaded.config, vendor)
    return (
        section.base_url,
        section.max_connections,
        section.requests_per_second,
        section.max_response_bytes,
        loaded.secrets.get(vendor),
    )


class VendorClients:
    """Builds the clients a config asks for, reuses unchanged ones and closes replaced ones.

    ``current`` is the holder targets look their client up in at poll time, so a
    changed client takes effect without rebuilding any target.
    """

    def __init__(self, stats: UpstreamStats, total_shards: int) -> None:
        self.current = Clients()
        self._stats = stats
        self._total_shards = total_shards
        self._keys: dict[str, Hashable] = {}
        # Replaced clients waiting out their grace before they close, by the task that
        # closes them: at shutdown the waits are cut short and the clients closed at once.
        self._retiring: dict[asyncio.Task[None], list[VendorClient]] = {}

    def update(self, loaded: LoadedConfig, grace: float) -> None:
        """Install the clients for ``loaded``; close the replaced ones after ``grace`` seconds."""
        clients: dict[str, VendorClient] = {}
        keys = {vendor: settings_key(loaded, vendor) for vendor in loaded.secrets}
        for vendor, key in keys.items():
            existing = self.current.find(vendor)
            if existing is not None and self._keys.get(vendor) == key:
                clients[vendor] = existing
            else:
                clients[vendor] = make_client(loaded, vendor, self._stats, self._total_shards)
        self._keys = keys
        replaced = self.current.replace(clients)
        if replaced:
            task = asyncio.create_task(self._close_later(replaced, grace))
            self._retiring[task] = replaced
            task.add_done_callback(self._retiring.pop)

    @staticmethod
    async def _close_later(clients: list[VendorClient], delay: float) -> None:
        await asyncio.sleep(delay)
        await _close(clients)

    async def aclose(self) -> None:
        """Close every client, the current ones and those still in their grace."""
        retiring = [c for clients in self._retiring.values() for c in clients]
        for task in list(self._retiring):
            task.cancel()
        await _close([*retiring, *self.current.all()])


async def _close(clients: list[VendorClient]) -> None:
    await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
