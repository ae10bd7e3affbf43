"""The libraries the exporter is built on, doing the least of what an idle exporter does.

No module of the exporter's: asyncio with ssl, an aiohttp server answering one route
with prometheus_client's exposition (gzip through isal), httpx over httpx-aiohttp's
transport polling one Together queue every second from an APScheduler job, and a
pydantic model validated from YAML. What this process takes idle is the floor an
idle exporter stands on; ``idle.py`` measures both in one run, and
tests/integration/test_idle_memory.py holds the exporter's own share above it.

Usage: ``stack.py URL KEY`` (the simulator's ``/v1`` and a key it accepts); prints
``ready`` once it has polled once, then runs until stopped.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import aiohttp
import httpx
import httpx_aiohttp
import isal.isal_zlib
import prometheus_client
import pydantic
import yaml
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

CONFIG = "poll_interval: 1\nmodel: idle/alpha\n"


class Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    poll_interval: float = pydantic.Field(gt=0)
    model: str = pydantic.Field(min_length=1)


async def serve(registry: prometheus_client.CollectorRegistry) -> web.AppRunner:
    async def metrics(request: web.Request) -> web.Response:
        body = isal.isal_zlib.compress(prometheus_client.generate_latest(registry))
        return web.Response(body=body, headers={"Content-Encoding": "deflate"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def main(url: str, key: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.model_validate(yaml.safe_load(CONFIG))
    registry = prometheus_client.CollectorRegistry()
    waiting = prometheus_client.Gauge("queue_waiting", "Jobs waiting", ["model"], registry=registry)
    polls = prometheus_client.Counter("polls", "Polls", registry=registry)
    runner = await serve(registry)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=10), trust_env=False)
    client = httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {key}"},
        transport=httpx_aiohttp.AiohttpTransport(client=session),
    )
    polled = asyncio.Event()

    async def poll() -> None:
        response = await client.get("/queue/metrics", params={"model": settings.model})
        doc = response.raise_for_status().json()
        waiting.labels(settings.model).set(float(doc.get("messages_waiting") or 0))
        polls.inc()
        polled.set()

    scheduler = AsyncIOScheduler()
    scheduler.add_job(poll, "interval", seconds=settings.poll_interval, max_instances=1)
    scheduler.start()
    await poll()
    await polled.wait()
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        scheduler.shutdown(wait=False)
        await client.aclose()
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
