"""Running the daemon, the simulator and the demo until a signal says stop.

The simulator and the demo's Prometheus are imported by the commands that run them,
and the web config's parts by a daemon given one: a daemon pays in memory only for
what it uses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from exporter.config import ConfigError, load_config
from exporter.core.sharding import Shard
from exporter.engine import gcpolicy
from exporter.engine.daemon import Exporter
from exporter.web.httpguard import ConnectionGuard, GuardedSite, handler_args
from exporter.web.limits import DEFAULT_LIMITS, ConnectionLimits
from exporter.web.listen import (
    bind_failure,
    bound_addresses,
    browser_url,
    format_address,
    parse_listen_address,
)
from exporter.web.server import make_app

if TYPE_CHECKING:
    from exporter.demo.prometheus import LocalPrometheus
    from exporter.web.webconfig import WebSecurity

log = logging.getLogger("exporter")


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    guard: ConnectionGuard,
    security: WebSecurity | None = None,
) -> tuple[web.AppRunner, int]:
    # A short shutdown_timeout: on SIGTERM a slow scrape must not hold the exit up.
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=0.5, **handler_args(guard.limits)
    )
    await runner.setup()
    site = security.site(runner, host, port, guard) if security else GuardedSite(runner, host, port, guard)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    addresses = runner.addresses
    return runner, (addresses[0][1] if addresses else port)


def _cannot_listen(host: str, port: int, exc: OSError) -> None:
    # One line, not a traceback: the address and what to do about it.
    log.error("cannot listen", extra={"address": format_address(host, port), "reason": bind_failure(exc)})


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_daemon(
    config_path: Path,
    listen: str,
    telemetry_path: str,
    web_config: Path | None = None,
    shard: Shard | None = None,
    *,
    limits: ConnectionLimits = DEFAULT_LIMITS,
    enable_lifecycle: bool = False,
    on_listening: Callable[[str], None] | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT; ``on_listening`` gets the URL to open once bound."""
    security = None
    if web_config is not None:
        from exporter.web.webconfig import WebConfigError, WebSecurity

        try:
            security = WebSecurity.from_file(web_config)
        except WebConfigError as exc:
            print(exc, file=sys.stderr)
            log.error("invalid web config, not starting", extra={"file": str(web_config)})
            return 1
    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        log.error(
            "invalid config, not starting", extra={"file": str(config_path), "problems": len(exc.problems)}
        )
        return 1
    if loaded.config.watches_nothing():
        log.warning(
            "the config watches nothing (no target, no discovery): only the exporter's own metrics are served",
            extra={"file": str(config_path)},
        )
    host, port = parse_listen_address(listen)
    gcpolicy.tune()
    exporter = Exporter(config_path, shard)
    if security is not None:
        exporter.companions.append(security.prepare_reload)
        exporter.metrics.registry.register(security.collector())
    await exporter.start(loaded)
    guard = ConnectionGuard(limits, exporter.metrics.registry)
    app = make_app(exporter, telemetry_path, security, guard, enable_lifecycle=enable_lifecycle)
    try:
        runner, _ = await _serve(app, host, port, guard, security)
    except OSError as exc:
        _cannot_listen(host, port, exc)
        await exporter.stop()
        if security is not None:
            security.close()
        return 1
    tls = security is not None and security.tls is not None
    log.info(
        "listening",
        extra={
            "address": ",".join(bound_addresses(runner.addresses)),
            "configured_targets": len(exporter.targets),
            "shard": f"{exporter.shard.index}/{exporter.shard.total}",
            "tls": tls,
        },
    )
    if on_listening is not None and runner.addresses:
        on_listening(browser_url("https" if tls else "http", runner.addresses[0]))

    stop = _stop_event()
    reloads: set[asyncio.Task[tuple[bool, str]]] = set()

    def on_hup() -> None:
        task = asyncio.create_task(exporter.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hup)
    await stop.wait()
    log.info("shutting down")
    await exporter.stop()
    await runner.cleanup()
    if security is not None:
        security.close()
    return 0


async def run_simulator(
    listen: str,
    api_keys: list[str],
    clock_offset: float = 0.0,
    orgs: dict[str, str] | None = None,
    speed: float = 1.0,
    delay: float = 0.0,
) -> int:
    """``orgs``: further API keys, each with the organisation it sees; ``speed``: how many
    times as fast as its own timetable the default scenario plays, ``delay`` seconds
    after the start."""
    from exporter.simulator import app as sim_app
    from exporter.simulator.state import SimState

    host, port = parse_listen_address(listen)
    state = SimState(
        api_keys=frozenset(api_keys),
        clock=lambda: time.time() + clock_offset,
        org_keys=orgs or {},
        speed=speed,
        delay=delay,
    )
    try:
        runner, url = await sim_app.start(state, host, port)
    except OSError as exc:
        _cannot_listen(host, port, exc)
        return 1
    # The first line on stdout is the URL, so scripts and tests can read the port.
    print(url, flush=True)
    log.info("simulator listening", extra={"url": url})
    await _stop_event().wait()
    await runner.cleanup()
    return 0


# The demo's accounts: per vendor a production one (the simulator's default
# organisation) and a staging one (its "staging" organisation), each with its own key.
DEMO_KEYS = {
    "INFERENCE_EXPORTER_DEMO_TOGETHER_KEY": "default",
    "INFERENCE_EXPORTER_DEMO_TOGETHER_STAGING_KEY": "staging",
    "INFERENCE_EXPORTER_DEMO_BASETEN_KEY": "default",
    "INFERENCE_EXPORTER_DEMO_BASETEN_STAGING_KEY": "staging",
}


async def run_demo(
    listen: str,
    telemetry_path: str,
    web_config: Path | None = None,
    *,
    limits: ConnectionLimits = DEFAULT_LIMITS,
    prometheus: bool = False,
) -> int:
    """Simulator on a free loopback port, and the daemon on the bundled demo config;
    with ``prometheus``, a local Prometheus with the demo's rules scraping it."""
    from exporter.demo.prometheus import LocalPrometheus, find_binary
    from exporter.simulator import app as sim_app
    from exporter.simulator.state import SimState

    local_prometheus = None
    if prometheus:
        binary = find_binary()
        if binary is None:
            print(
                "inference-exporter demo: --prometheus needs the prometheus binary on PATH "
                "(https://prometheus.io/download/, or Debian's and Ubuntu's prometheus package)",
                file=sys.stderr,
            )
            return 1
        local_prometheus = LocalPrometheus(binary)
    keys = {var: secrets.token_hex(16) for var in DEMO_KEYS}
    os.environ.update(keys)
    state = SimState(
        api_keys=frozenset(k for var, k in keys.items() if DEMO_KEYS[var] == "default"),
        org_keys={k: DEMO_KEYS[var] for var, k in keys.items() if DEMO_KEYS[var] != "default"},
    )
    sim_runner, sim_url = await sim_app.start(state, "127.0.0.1", 0)
    template = resources.files("exporter.demo").joinpath("demo.yaml").read_text(encoding="utf-8")
    workdir = Path(tempfile.mkdtemp(prefix="inference-exporter-demo-"))
    config_path = workdir / "demo.yaml"
    config_path.write_text(template.replace("__SIMULATOR_URL__", sim_url), encoding="utf-8")
    print(f"inference-exporter demo: simulator at {sim_url}, config at {config_path}", flush=True)

    watchers: set[asyncio.Task[None]] = set()

    def show_url(url: str) -> None:
        print(f"Open {url}/ (metrics at {url}{telemetry_path})", flush=True)
        if local_prometheus is not None:
            try:
                local_prometheus.start(urlsplit(url).netloc)
            except OSError as exc:
                log.error("cannot start the demo's Prometheus", extra={"reason": str(exc)})
                return
            task = asyncio.create_task(_announce(local_prometheus))
            watchers.add(task)
            task.add_done_callback(watchers.discard)

    try:
        # A local trial: reloading over HTTP is part of trying it out.
        return await run_daemon(
            config_path,
            listen,
            telemetry_path,
            web_config,
            limits=limits,
            enable_lifecycle=True,
            on_listening=show_url,
        )
    finally:
        for task in watchers:
            task.cancel()
        if local_prometheus is not None:
            local_prometheus.stop()
        await sim_runner.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


async def _announce(prometheus: LocalPrometheus) -> None:
    """Say where the demo's alerts show once Prometheus answers, or why they will not."""
    page = await prometheus.ready()
    if page is not None:
        print(
            f"Prometheus at {prometheus.url}/ with the demo's alert rules: alert states at {page} "
            "(what goes pending and fires when: docs/demo.md)",
            flush=True,
        )
        return
    log.error(
        "the demo's Prometheus did not start; the exporter goes on without it",
        extra={"log": prometheus.log_tail()},
    )
