"""Fine-tune job targets and discovery against the in-process simulator, on a fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exporter.config.together_finetune import UNFINISHED_STATUSES
from exporter.exposition import Rendered, assemble
from exporter.sources.together_finetune import MAX_BACKOFF, FineTuneDiscovery, JobSettings, JobTarget
from exporter.sources.together_finetune_translate import TERMINAL
from exporter.upstream import UpstreamError
from tests.finetune_harness import Harness, harness
from tests.helpers import Scrape, parse

SETTINGS = JobSettings(interval=1.0, timeout=5.0, resolution=None, retention=30.0, max_keys=50)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def text(r: Rendered) -> Scrape:
    return parse(assemble([r]).decode())


async def served(h: Harness, job: str) -> tuple[int, int]:
    doc = (await h.http.get(h.url + "/_sim/fine-tunes")).json()[job]
    return doc["rows_served"], doc["rows_logged"]


def test_incremental_reads_serve_each_row_once() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job({"id": "ft-live", "step_seconds": 1, "eval_every": 3})
            target = JobTarget(h.clients, "ft-live", SETTINGS)
            for offset in (0.2, 5.5, 5.9, 6.1, 9.0, 9.0, 15.5, 40.2):
                h.clock.t = job.start + offset
                out = text(await target.poll(h.clock.t))
            assert await served(h, "ft-live") == (40 + 13, 40 + 13)
            assert out.value("together_finetune_global_step", job_id="ft-live") == 40
            assert (
                out.value("together_finetune_train_loss", job_id="ft-live") == job.train_row(40)["train/loss"]
            )
            assert out.value("together_finetune_eval_loss", job_id="ft-live") == job.eval_row(39)["eval/loss"]
            assert out.value("together_finetune_last_logged_timestamp_seconds", job_id="ft-live") == h.clock.t
            # No cursor until a row has been seen; then each read starts after the last step.
            cursors = [u.params.get("global_step_from") for u in h.transport.paths("/metrics")]
            assert cursors == [None, None, "6", "6", "7", "10", "10", "16"]

    run(go())


def test_first_read_uses_resolution_then_only_new_rows() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job({"id": "ft-r", "step_seconds": 1, "eval_every": 10})
            target = JobTarget(h.clients, "ft-r", JobSettings(1.0, 5.0, 10, 30.0, 50))
            h.clock.t = job.start + 100.5
            await target.poll(h.clock.t)
            h.clock.t += 5
            out = text(await target.poll(h.clock.t))
            urls = h.transport.paths("/metrics")
            assert dict(urls[0].params) == {"resolution": "10"}
            assert dict(urls[1].params) == {"global_step_from": "101"}
            # 10 sampled train rows + all 10 eval rows, then 5 new train rows.
            assert (await served(h, "ft-r"))[0] == 10 + 10 + 5
            assert out.value("together_finetune_global_step", job_id="ft-r") == 105

    run(go())


def test_a_failed_poll_does_not_lose_rows() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job({"id": "ft-f", "step_seconds": 1})
            target = JobTarget(h.clients, "ft-f", SETTINGS)
            h.clock.t = job.start + 3.5
            await target.poll(h.clock.t)
            h.clock.t += 4
            # A server error that outlasts the retries fails the poll.
            h.transport.fail = ("/metrics", 500)
            with pytest.raises(UpstreamError) as exc:
                await target.poll(h.clock.t)
            assert exc.value.reason == "server_error"
            h.transport.fail = None
            out = text(await target.poll(h.clock.t))
            assert out.value("together_finetune_global_step", job_id="ft-f") == 7
            assert await served(h, "ft-f") == (7, 7)

    run(go())


def test_metrics_404_of_a_queued_job_is_no_rows_yet() -> None:
    async def go() -> None:
        async with harness() as h:
            h.sim.add_job({"id": "ft-q", "delay": 100, "step_seconds": 1})
            h.sim.add_job({"id": "ft-r", "step_seconds": 1})
            queued = JobTarget(h.clients, "ft-q", SETTINGS)
            h.transport.fail_next = ("ft-q/metrics", 404)
            out = text(await queued.poll(h.clock.t))
            assert out.value("together_finetune_global_step", job_id="ft-q") is None
            assert [lbl["status"] for lbl, _ in out.series("together_finetune_job_info")] == ["queued"]
            # For a job that is training, a 404 is a 404.
            running = JobTarget(h.clients, "ft-r", SETTINGS)
            h.transport.fail_next = ("ft-r/metrics", 404)
            with pytest.raises(UpstreamError) as exc:
                await running.poll(h.clock.t + 5)
            assert exc.value.reason == "not_found"

    run(go())


def test_finished_job_is_read_once_more_kept_for_retention_then_dropped() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job(
                {"id": "ft-end", "steps": 10, "step_seconds": 1, "eval_every": 5, "post_seconds": 1}
            )
            target = JobTarget(h.clients, "ft-end", SETTINGS)
            h.clock.t = job.start + 8.5
            await target.poll(h.clock.t)
            h.clock.t = job.start + 13  # completed; steps 9 and 10 not read yet
            out = text(await target.poll(h.clock.t))
            assert out.value("together_finetune_global_step", job_id="ft-end") == 10
            info = out.series("together_finetune_job_info")
            assert [lbl["status"] for lbl, _ in info] == ["completed"]
            assert await served(h, "ft-end") == (12, 12)
            n_requests = len(h.transport.urls)
            for dt in (1, 10, 29):
                assert (
                    text(await target.poll(h.clock.t + dt)).value(
                        "together_finetune_global_step", job_id="ft-end"
                    )
                    == 10
                )
            assert len(h.transport.urls) == n_requests  # no more requests once finished
            assert not target.expired(h.clock.t + 29)
            assert target.expired(h.clock.t + 31)
            assert (await target.poll(h.clock.t + 31)).series == 0
            assert len(h.transport.urls) == n_requests

    run(go())


def test_not_found_backs_off() -> None:
    async def go() -> None:
        async with harness() as h:
            target = JobTarget(h.clients, "ft-gone", SETTINGS)
            t0 = h.clock.t
            for i in range(31):
                with pytest.raises(UpstreamError) as exc:
                    await target.poll(t0 + i)
                assert exc.value.reason == "not_found"
            # Requests at polls 0, 2, 6, 14 and 30: the wait doubles after each 404.
            assert len(h.transport.urls) == 5
            # The job appears: the next request after the wait succeeds and resets the backoff.
            h.sim.add_job({"id": "ft-gone", "step_seconds": 1})
            polls = [t0 + 31 + i for i in range(40)]
            for t in polls:
                try:
                    await target.poll(t)
                    break
                except UpstreamError:
                    pass
            assert target._not_found == 0
            assert MAX_BACKOFF >= 3600

    run(go())


def test_discovery_follows_the_list() -> None:
    async def go() -> None:
        async with harness() as h:
            h.sim.add_job({"id": "ft-run", "step_seconds": 1})
            end = h.sim.add_job({"id": "ft-end", "steps": 5, "step_seconds": 1, "post_seconds": 1})
            h.sim.add_job({"id": "ft-q", "delay": 100, "step_seconds": 1})
            h.sim.add_job({"id": "ft-old", "steps": 3, "step_seconds": 1, "delay": -1000})
            disc = FineTuneDiscovery(
                h.clients, frozenset(UNFINISHED_STATUSES), SETTINGS, interval=5, timeout=5
            )
            h.clock.t = end.start + 2
            out = text(await disc.poll(h.clock.t))
            assert sorted(t.job_id for t in disc.found) == ["ft-end", "ft-q", "ft-run"]  # type: ignore[attr-defined]
            assert out.value("together_finetune_listed_jobs", status="running") == 2
            assert out.value("together_finetune_listed_jobs", status="completed") == 1
            by_id = {t.job_id: t for t in disc.found}  # type: ignore[attr-defined]
            # ft-end completes: discovery keeps the same target for its final read and retention.
            h.clock.t = end.start + 10
            await disc.poll(h.clock.t)
            assert by_id["ft-end"] in disc.found
            await by_id["ft-end"].poll(h.clock.t)
            assert by_id["ft-end"].finished_at == h.clock.t
            h.clock.t += SETTINGS.retention + 1
            await disc.poll(h.clock.t)
            assert sorted(t.job_id for t in disc.found) == ["ft-q", "ft-run"]  # type: ignore[attr-defined]
            # Jobs still running keep their target object, and with it their state.
            assert by_id["ft-run"] in disc.found and by_id["ft-q"] in disc.found
            # A job that vanishes from the list goes at once.
            h.sim.jobs.pop("ft-q")
            await disc.poll(h.clock.t)
            assert [t.job_id for t in disc.found] == ["ft-run"]  # type: ignore[attr-defined]

    run(go())


def test_discovery_of_finished_jobs_reads_each_once() -> None:
    async def go() -> None:
        async with harness() as h:
            h.sim.add_job({"id": "ft-old", "steps": 3, "step_seconds": 1, "delay": -1000})
            disc = FineTuneDiscovery(h.clients, TERMINAL, SETTINGS, interval=5, timeout=5)
            await disc.poll(h.clock.t)
            (target,) = disc.found
            await target.poll(h.clock.t)
            h.clock.t += SETTINGS.retention + 1
            await disc.poll(h.clock.t)
            assert disc.found == []
            h.clock.t += 100
            await disc.poll(h.clock.t)
            assert disc.found == []  # not picked up again while still listed
            assert await served(h, "ft-old") == (3, 3)

    run(go())


def test_discovery_list_errors_raise() -> None:
    async def go() -> None:
        async with harness() as h:
            disc = FineTuneDiscovery(h.clients, TERMINAL, SETTINGS, interval=5, timeout=5)
            h.transport.fail = ("/fine-tunes", 503)
            with pytest.raises(UpstreamError) as exc:
                await disc.poll(h.clock.t)
            assert exc.value.reason == "server_error"

    run(go())
