"""Each target is scheduled on its own: one that cannot be never holds back another."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.engine.daemon import Exporter
from exporter.engine.targetset import STATIC
from tests.helpers import scraped
from tests.unit.test_daemon import FakeDiscovery, ids, run


def test_a_target_that_cannot_be_scheduled_holds_back_no_other(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(exp: Exporter) -> None:
        d = FakeDiscovery()
        await exp.poller.sync(STATIC, [d])
        await exp.poller.poll_once(d)
        # An id that is not text (a lone surrogate) cannot be encoded anywhere it goes;
        # vendor answers holding one are refused (exporter.upstream.vendorjson), this is the
        # scheduler's own guard.
        d.names = ["d\udfff", "dgood"]
        await exp.poller.poll_once(d)
        assert ids(exp) >= {"fake/dgood", "fake/d\udfff"}
        good = exp.targets.get("fake/dgood")
        assert good is not None
        await exp.poller.poll_once(good)
        assert exp.poller.health["fake/dgood"].up
        # The one left out has no health: the pages never show it, readiness never waits for it.
        assert [t.id for t, _ in exp.targets_with_health()] == ["fake/dgood", "fake_discovery/all"]
        assert exp.ready()
        scraped(exp.store).decode()
        # Found no more: it goes like any other.
        d.names = ["dgood"]
        await exp.poller.poll_once(d)
        assert ids(exp) == {"fake/dgood", "fake_discovery/all"}

    run(body, tmp_path)
    (record,) = [r for r in caplog.records if r.getMessage() == "target cannot be scheduled"]
    assert (vars(record)["target"], vars(record)["error"]) == ("fake/d\\udfff", "UnicodeEncodeError")
