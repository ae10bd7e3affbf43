"""Vendor clients across reloads: kept when their settings are unchanged, else replaced and closed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from exporter.config import LoadedConfig
from exporter.config.model import Config
from exporter.core.errors import UpstreamError
from exporter.core.logs import SecretScrubber
from exporter.core.selfmetrics import UpstreamStats
from exporter.engine.clients import VendorClients
from exporter.upstream.client import VendorClient
from tests.helpers import counted


def loaded(tmp_path: Path, key: str = "k1", **together: Any) -> LoadedConfig[Config]:
    section = {"api_key_env": "K", "base_url": "http://127.0.0.1:9/v1", **together}
    return LoadedConfig(
        tmp_path, Config.model_validate({"together": section}), {("together", "default"): key}
    )


def closed(client: VendorClient) -> bool:
    return client._client.is_closed


def test_unchanged_settings_keep_the_client_changed_ones_replace_it(tmp_path: Path) -> None:
    async def go() -> None:
        clients = VendorClients(UpstreamStats(), total_shards=1)
        clients.update(loaded(tmp_path), grace=0.0)
        first = clients.current.get("together")
        clients.update(loaded(tmp_path), grace=0.0)
        assert clients.current.get("together") is first
        clients.update(loaded(tmp_path, max_connections=3), grace=0.05)
        second = clients.current.get("together")
        assert second is not first
        assert not closed(first)  # polls still running on it may finish
        await asyncio.sleep(0.2)
        assert closed(first) and not closed(second)
        clients.update(loaded(tmp_path, key="k2"), grace=0.0)
        third = clients.current.get("together")
        assert third is not second  # a new key is a new client
        await clients.aclose()
        assert closed(second) and closed(third)

    asyncio.run(go())


def test_closing_cuts_the_grace_of_replaced_clients_short(tmp_path: Path) -> None:
    async def go() -> None:
        clients = VendorClients(UpstreamStats(), total_shards=1)
        clients.update(loaded(tmp_path), grace=0.0)
        old = clients.current.get("together")
        clients.update(loaded(tmp_path, requests_per_second=5), grace=3600.0)
        await clients.aclose()
        assert closed(old)

    asyncio.run(go())


def test_each_shard_gets_its_share_of_the_budget(tmp_path: Path) -> None:
    async def go() -> float | None:
        clients = VendorClients(UpstreamStats(), total_shards=4)
        clients.update(loaded(tmp_path, requests_per_second=8), grace=0.0)
        budget = clients.current.get("together").pacer.budget
        await clients.aclose()
        return budget.rate

    assert asyncio.run(go()) == 2


def two_accounts(tmp_path: Path, prod_key: str, staging_key: str | None) -> LoadedConfig[Config]:
    accounts: list[dict[str, Any]] = [{"name": "prod", "api_key_env": "A"}]
    keys = {("together", "prod"): prod_key}
    if staging_key is not None:
        accounts.append({"name": "staging", "api_key_env": "B", "requests_per_second": 2})
        keys[("together", "staging")] = staging_key
    return LoadedConfig(tmp_path, Config.model_validate({"together": {"accounts": accounts}}), keys)


def test_one_client_per_account_and_a_key_change_replaces_only_its_own(tmp_path: Path) -> None:
    async def go() -> None:
        stats = UpstreamStats()
        clients = VendorClients(stats, total_shards=1)
        clients.update(two_accounts(tmp_path, "p1", "s1"), grace=0.0)
        prod, staging = clients.current.get("together", "prod"), clients.current.get("together", "staging")
        assert prod is not staging and staging.pacer.budget.rate == 2 and prod.pacer.budget.rate is None
        # Each account's client counts under its own name.
        prod.stats.count("together_queue", "/queue/metrics", "200")
        staging.stats.count("together_queue", "/queue/metrics", "200")
        staging.stats.count("together_queue", "/queue/metrics", "200")
        queue = {"source": "together_queue", "endpoint": "/queue/metrics", "code": "200"}
        assert counted(stats.requests, **queue, account="prod") == 1
        assert counted(stats.requests, **queue, account="staging") == 2
        clients.update(two_accounts(tmp_path, "p1", "s2"), grace=0.0)
        assert clients.current.get("together", "prod") is prod
        assert clients.current.get("together", "staging") is not staging
        # An account removed on reload: its client goes, the other stays.
        clients.update(two_accounts(tmp_path, "p1", None), grace=0.0)
        assert clients.current.get("together", "prod") is prod
        assert clients.current.find("together", "staging") is None
        await asyncio.sleep(0.05)
        assert closed(staging) and not closed(prod)
        await clients.aclose()

    asyncio.run(go())


def test_a_replaced_clients_key_is_scrubbed_until_that_client_is_closed(tmp_path: Path) -> None:
    async def go() -> None:
        scrubber = SecretScrubber()
        clients = VendorClients(UpstreamStats(), total_shards=1, scrubber=scrubber)
        clients.update(loaded(tmp_path, key="old-key-1"), grace=0.0)
        clients.update(loaded(tmp_path, key="old-key-2"), grace=0.3)  # a first rotation
        clients.update(loaded(tmp_path, key="new-key-3"), grace=0.3)  # and a second one
        assert clients.open_clients() == 3
        assert scrubber.scrub("old-key-2 new-key-3") == "<redacted> <redacted>"
        await asyncio.sleep(0.5)
        assert clients.open_clients() == 1
        assert scrubber.scrub("old-key-1 old-key-2 new-key-3") == "old-key-1 old-key-2 <redacted>"
        await clients.aclose()

    asyncio.run(go())


def test_a_client_replaced_for_the_same_key_and_url_goes_on_with_its_hints_and_budget(tmp_path: Path) -> None:
    """Both clients are in use while the old one's polls finish: one budget, one memory
    of the vendor's Retry-After, as long as the vendor sees the same key."""

    async def go() -> None:
        clients = VendorClients(UpstreamStats(), total_shards=1)
        clients.update(loaded(tmp_path, requests_per_second=2), grace=0.0)
        first = clients.current.get("together")
        first.pacer.remember(("GET", "http://127.0.0.1:9/v1/queue/metrics"), 30.0)
        clients.update(loaded(tmp_path, requests_per_second=2, max_connections=3), grace=0.0)
        second = clients.current.get("together")
        assert second is not first
        assert second.pacer.budget is first.pacer.budget
        with pytest.raises(UpstreamError) as err:
            deadline = time.monotonic() + 5
            await second.pacer.wait_turn(("GET", "http://127.0.0.1:9/v1/queue/metrics"), "GET /q", deadline)
        assert err.value.reason == "rate_limited"
        # A new rate: a budget of its own, the hints still.
        clients.update(loaded(tmp_path, requests_per_second=4, max_connections=3), grace=0.0)
        third = clients.current.get("together")
        assert third.pacer.budget is not second.pacer.budget and third.pacer.budget.rate == 4
        assert third.pacer._not_before == second.pacer._not_before
        # Another key: the vendor's limit is the key's, so nothing goes on.
        clients.update(loaded(tmp_path, key="k2", requests_per_second=4, max_connections=3), grace=0.0)
        fourth = clients.current.get("together")
        assert fourth.pacer.budget is not third.pacer.budget and fourth.pacer._not_before == {}
        assert "k2" not in repr(clients._settings) and "k2" not in str(
            [s._asdict() for s in clients._settings.values()]
        )
        await clients.aclose()

    asyncio.run(go())
