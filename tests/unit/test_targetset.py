"""The target set's bookkeeping across a reload, driven through the poller with fake targets."""

from __future__ import annotations

from pathlib import Path

from exporter.engine.daemon import Exporter
from exporter.engine.targetset import STATIC
from tests.unit.test_daemon import Scoped, ScopedDiscovery, run, text


def test_a_found_target_the_config_comes_to_name_is_the_configs_whatever_the_order(tmp_path: Path) -> None:
    """A reload that changes a discovery and names one of its finds, the discovery listed
    first: the find, handed the discovery's new settings, is replaced, and is not also
    counted as reconfigured (the explicit target's health series took the discovery's
    labels). The vendors list explicit targets first; the set does not rely on it."""

    async def body(exp: Exporter) -> None:
        d = ScopedDiscovery("found")
        await exp.poller.sync(STATIC, [d])
        d.names = ["x"]
        await exp.poller.poll_once(d)
        found = exp.targets.get("fake/x")
        assert found is not None
        explicit = Scoped("x", team="config")
        changes = await exp.poller.sync(STATIC, [ScopedDiscovery("moved"), explicit])
        assert changes.removed == [found] and changes.added == [explicit]
        assert [c.target for c in changes.reconfigured] == [d]
        await exp.poller.poll_once(explicit)
        health = [line for line in text(exp).splitlines() if 'target="fake/x"' in line]
        assert health and all('team="config"' in line for line in health), health

    run(body, tmp_path)
