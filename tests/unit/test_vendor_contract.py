"""The vendor contract: the registry's vendors keep it, and a vendor made from it alone works.

"Tiny" (``tests/unit/tinyvendor``) is registered here and nowhere else, and goes from
a config file through the loader, the target builders, a poll of a loopback API and
the daemon's store to the exposition: what docs/development.md#adding-a-vendor promises.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

import grimp
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import ConfigError, load_config
from exporter.config.model import Config, config_model
from exporter.config.schema import config_schema
from exporter.core.exposition import Family
from exporter.core.scope import EXPORTER_LABELS
from exporter.engine.daemon import Exporter
from exporter.engine.targets import build_targets
from exporter.simulator.parts import PARTS
from exporter.sources.contract import Registry
from exporter.sources.registry import REGISTRY
from exporter.upstream.api import Clients
from tests.golden import build, vendor_goldens
from tests.helpers import REPO, scraped, write_yaml
from tests.unit.tinyvendor.plugin import VENDOR as TINY

NETWORK = ("httpx", "httpcore", "aiohttp", "anyio", "httpx_aiohttp")
# One section per vendor that watches something: a config with only that section must
# not be taken for an empty one.
WATCHING = {
    "together": {"api_key_env": "K", "queues": [{"model": "org/m"}]},
    "baseten": {"api_key_env": "K", "deployments": [{"model_id": "m1", "deployment_id": "d1"}]},
}
TINY_REGISTRY = Registry((TINY,))
TinyConfig = config_model(TINY_REGISTRY)


def test_the_config_model_has_one_section_per_registered_vendor_in_order() -> None:
    fields = [name for name in Config.model_fields if name != "global_"]
    assert fields == list(REGISTRY.names)
    for vendor in REGISTRY:
        assert Config.model_fields[vendor.name].annotation == (vendor.section | None)
    # What config_model makes of the registry is the static model, schema and all.
    assert config_schema(config_model(REGISTRY)) == config_schema(Config)


def test_the_simulator_and_the_goldens_have_a_part_for_every_vendor() -> None:
    assert list(PARTS) == list(REGISTRY.names)
    for vendor in REGISTRY:
        goldens = vendor_goldens(vendor.name)
        assert goldens and all(source.startswith(vendor.name) for source in goldens)


@pytest.mark.parametrize("vendor", REGISTRY.names)
def test_a_config_with_one_vendors_section_watches_something(tmp_path: Path, vendor: str) -> None:
    assert set(WATCHING) == set(REGISTRY.names), "a new vendor needs a watching section here"
    cfg = load_config(write_yaml(tmp_path, yaml.safe_dump({vendor: WATCHING[vendor]})), read_secrets=False)
    assert not cfg.config.watches_nothing()
    idle = {k: v for k, v in WATCHING[vendor].items() if k == "api_key_env"}
    idle_cfg = load_config(write_yaml(tmp_path, yaml.safe_dump({vendor: idle})), read_secrets=False)
    assert idle_cfg.config.watches_nothing()


def reserved_problem(tmp_path: Path, doc: dict[str, Any], model: type[Any] = Config) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(write_yaml(tmp_path, yaml.safe_dump(doc)), read_secrets=False, model=model)
    [problem] = err.value.problems
    return problem.message


@pytest.mark.parametrize("vendor", REGISTRY.names)
def test_every_label_a_vendor_reserves_is_refused_on_every_vendors_targets(
    tmp_path: Path, vendor: str
) -> None:
    reserved = next(v for v in REGISTRY if v.name == vendor).reserved_labels
    assert reserved
    for label in sorted(reserved):
        for section in REGISTRY.names:
            doc = {section: {**WATCHING[section], "labels": {label: "x"}}}
            message = reserved_problem(tmp_path, doc)
            assert message.startswith(f"label {label!r} clashes with a label the exporter sets itself"), (
                message
            )


def test_every_label_of_a_declared_family_is_reserved() -> None:
    for vendor in REGISTRY:
        for family in vendor.families:
            assert family.labels, f"{family.name} declares no labels"
            assert set(family.labels) <= REGISTRY.reserved_labels, family.name


def vendor_modules(vendor: str) -> list[Any]:
    package = importlib.import_module(f"exporter.sources.{vendor}")
    names = [info.name for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    return [importlib.import_module(name) for name in [package.__name__, *names]]


def test_every_family_a_vendor_package_defines_is_in_its_contract() -> None:
    """The contract's families are the ones the filters, the catalog and the reserved
    labels go by: one left out would be invisible to all three."""
    for vendor in REGISTRY:
        defined = {v for m in vendor_modules(vendor.name) for v in vars(m).values() if isinstance(v, Family)}
        assert defined == set(vendor.families), vendor.name


def test_the_golden_expositions_carry_the_labels_their_families_declare() -> None:
    declared = {f.name: f for vendor in REGISTRY for f in vendor.families}
    seen = set()
    for source in (s for vendor in REGISTRY.names for s in vendor_goldens(vendor)):
        text, _ = build(source)
        for metric in text_string_to_metric_families(text.decode()):
            family = declared.get(metric.name) or declared.get(f"{metric.name}_total")
            if family is None:
                continue
            seen.add(family.name)
            for sample in metric.samples:
                names = [n for n in sample.labels if n not in ("account", "le")]
                assert tuple(names) == family.labels, (sample.name, names)
    assert seen == set(declared)


@cache
def import_graph() -> grimp.ImportGraph:
    return grimp.build_graph("exporter", include_external_packages=True)


@pytest.mark.parametrize("vendor", REGISTRY.names)
def test_a_vendors_pure_modules_import_no_network_stack(vendor: str) -> None:
    modules = next(v for v in REGISTRY if v.name == vendor).pure_modules
    assert modules
    graph = import_graph()
    # The check can fail: the request path does reach the network stack.
    assert graph.find_shortest_chain(importer="exporter.sources.together.queue", imported="httpx")
    for module in modules:
        assert module in graph.modules, module
        for network in (n for n in NETWORK if n in graph.modules):
            chain = graph.find_shortest_chain(importer=module, imported=network)
            assert chain is None, " -> ".join(chain or ())


def test_reading_a_config_of_every_vendor_loads_no_network_stack() -> None:
    """Vendors hand their builders over lazily (``Vendor.builders``): ``check-config``
    must stay cheap, and only building targets brings the targets' request path."""
    code = (
        "import sys\n"
        "from exporter.config import load_config\n"
        "loaded = load_config('config.example.yaml', read_secrets=False)\n"
        f"print(sorted(m for m in {NETWORK!r} if m in sys.modules))\n"
        "from exporter.engine.targets import build_targets\n"
        "from exporter.upstream.api import Clients\n"
        "print(len(build_targets(loaded.config, Clients())) > 0, 'httpx' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[]", "True True"]


def test_the_simulator_imports_nothing_of_the_exporters_own() -> None:
    """It keeps its own list of parts by vendor name (``exporter.simulator.parts``) rather
    than reading the registry: a fake of the vendors, light to start."""
    graph = import_graph()
    simulator = graph.find_descendants("exporter.simulator") | {"exporter.simulator"}
    imported = {m for module in simulator for m in graph.find_modules_directly_imported_by(module)}
    own = {m for m in imported if m.startswith("exporter.") and m not in simulator}
    assert own == set()


def test_the_registry_refuses_a_vendor_twice_and_a_bad_name() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        Registry((TINY, TINY))
    with pytest.raises(ValueError, match="vendor name"):
        type(TINY)(**{**vars(TINY), "name": "Tiny-2"})


# --- a vendor from the contract alone ---------------------------------------------------

TINY_CONFIG = """\
global:
  start_spread: 10ms
tiny:
  base_url: {url}
  api_key_env: TINY_TEST_KEY
  labels: {{team: core}}
  gauges:
    - name: boiler
    - name: tank
      labels: {{team: tanks}}
"""


@asynccontextmanager
async def tiny_api(levels: dict[str, float]) -> AsyncIterator[tuple[str, list[str]]]:
    """Tiny's API on loopback: each gauge's level, for the key ``tiny-key`` only."""
    seen: list[str] = []

    async def gauge(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != "Bearer tiny-key":
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"level": levels[request.match_info["name"]]})

    app = web.Application()
    app.router.add_get("/v1/gauges/{name}", gauge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def test_a_tiny_vendor_goes_from_its_config_to_the_exposition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINY_TEST_KEY", "tiny-key")

    async def run() -> tuple[str, list[str], bool]:
        async with tiny_api({"boiler": 3.5, "tank": 0.25}) as (url, seen):
            path = write_yaml(tmp_path, TINY_CONFIG.format(url=url))
            loaded = load_config(path, model=TinyConfig)
            assert loaded.secrets == {("tiny", "default"): "tiny-key"}
            assert not loaded.config.watches_nothing()
            exp = Exporter(path)
            await exp.start(loaded)
            try:
                for _ in range(200):
                    text = scraped(exp.store).decode()
                    if text.count("tiny_gauge_level{") == 2:
                        break
                    await asyncio.sleep(0.05)
                # A reload reads the file with the running config's model, tiny included.
                ok, _ = await exp.reload()
                return scraped(exp.store).decode(), seen, ok
            finally:
                await exp.stop()

    text, seen, reloaded = asyncio.run(run())
    assert reloaded
    assert seen and set(seen) == {"Bearer tiny-key"}
    assert 'tiny_gauge_level{gauge="boiler",account="default",team="core"} 3.5' in text
    assert 'tiny_gauge_level{gauge="tank",account="default",team="tanks"} 0.25' in text
    assert "# HELP tiny_gauge_level Level of the gauge (GET /v1/gauges/{name} field level)." in text
    assert (
        'inference_exporter_target_up{target="tiny_gauge/boiler",source="tiny_gauge",account="default"'
        in text
    )


def test_a_tiny_config_is_checked_as_the_exporters_own_are(tmp_path: Path) -> None:
    doc = {"tiny": {"api_key_env": "K", "gauges": [{"name": "a"}, {"name": "a"}]}}
    with pytest.raises(ConfigError) as err:
        load_config(write_yaml(tmp_path, yaml.safe_dump(doc)), read_secrets=False, model=TinyConfig)
    assert [p.key for p in err.value.problems] == ["tiny.gauges[1].name"]
    assert "duplicate gauge 'a' (first at tiny.gauges[0].name)" in err.value.problems[0].message
    # Its family's label is reserved, and the exporter's own are too; another vendor's are not.
    message = reserved_problem(tmp_path, {"tiny": {"api_key_env": "K", "labels": {"gauge": "x"}}}, TinyConfig)
    assert message.endswith(f"reserved: {', '.join(sorted(EXPORTER_LABELS | {'gauge'}))} and exported_*")
    other = {"together": {**WATCHING["together"], "labels": {"gauge": "x"}}}
    assert load_config(write_yaml(tmp_path, yaml.safe_dump(other)), read_secrets=False).config.together
    # The schema of its config knows its section and its reserved label.
    schema = config_schema(TinyConfig)
    assert list(schema["properties"]) == ["global", "tiny"]
    labels = schema["$defs"]["GaugeSection"]["properties"]["labels"]["propertyNames"]
    assert "gauge" in labels["not"]["anyOf"][0]["enum"]


def test_a_tiny_filter_is_warned_about_through_its_contract(tmp_path: Path) -> None:
    text = "tiny:\n  api_key_env: K\n  metric_filter: {allow: [tinny_.*]}\n  gauges: [{name: a}]\n"
    loaded = load_config(write_yaml(tmp_path, text), read_secrets=False, model=TinyConfig)
    messages = [w.message for w in loaded.warnings]
    assert any("removes every family of its gauges (tiny_gauge_level)" in m for m in messages), messages
    targets = build_targets(loaded.config, Clients())
    assert [t.id for t in targets] == ["tiny_gauge/a"]
    assert not targets[0].scope.filter.keeps("tiny_gauge_level")
