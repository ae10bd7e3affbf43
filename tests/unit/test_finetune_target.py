"""Fine-tune job targets and discovery against the in-process simulator, on a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from exporter.core.errors import UpstreamError
from exporter.core.exposition import Rendered
from exporter.core.scope import Scope
from exporter.core.sharding import Shard
from exporter.engine.health import TargetHealth
from exporter.engine.targetset import STATIC, TargetSet
from exporter.sources.base import Target
from exporter.sources.together.finetune.target import (
    MAX_BACKOFF,
    FineTuneDiscovery,
    FineTuneDiscoverySettings,
    JobSettings,
    JobTarget,
)
from exporter.sources.together.finetune.translate import TERMINAL, iso_time
from exporter.sources.together.finetune.vendor import UNFINISHED_STATUSES
from exporter.web.status import rows
from tests.finetune_harness import Harness, harness
from tests.helpers import Scrape, exposition, parse

SETTINGS = JobSettings(interval=1.0, timeout=5.0, resolution=None, retention=30.0, max_keys=50, overlap=2.0)


def discovery_settings(statuses: frozenset[str]) -> FineTuneDiscoverySettings:
    return FineTuneDiscoverySettings(statuses, interval=5, timeout=5, jobs=SETTINGS)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def text(r: Rendered) -> Scrape:
    return parse(exposition([r]).decode())


def jobs(found: list[Target]) -> list[JobTarget]:
    """A discovery's targets, each checked to be a job target."""
    out = [t for t in found if isinstance(t, JobTarget)]
    assert len(out) == len(found)
    return out


async def served(h: Harness, job: str) -> tuple[int, int]:
    doc = (await h.http.get(h.url + "/_sim/fine-tunes")).json()[job]
    return doc["rows_served"], doc["rows_logged"]


def test_incremental_reads_ask_by_vendor_time_with_an_overlap() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job({"id": "ft-live", "step_seconds": 1, "eval_every": 3})
            target = JobTarget(h.api, "ft-live", SETTINGS)
            for offset in (0.2, 5.5, 5.9, 6.1, 9.0, 9.0, 15.5, 40.2):
                h.clock.t = job.start + offset
                out = text(await target.poll(h.clock.t))
            # Each read after the first asks from the previous answer's Date less 2s.
            cursors = [u.params.get("logged_at_from") for u in h.transport.paths("/metrics")]
            expect = [None] + [iso_time(job.start + d - 2) for d in (0, 5, 5, 6, 9, 9, 15)]
            assert cursors == expect
            # 53 rows logged; the overlaps moved 24 of them again, and none counted twice.
            assert await served(h, "ft-live") == (53 + 24, 53)
            assert out.value("together_finetune_global_step", job_id="ft-live") == 40
            assert (
                out.value("together_finetune_train_loss", job_id="ft-live") == job.train_row(40)["train/loss"]
            )
            assert out.value("together_finetune_eval_loss", job_id="ft-live") == job.eval_row(39)["eval/loss"]
            assert (
                out.value("together_finetune_global_step_first_seen_timestamp_seconds", job_id="ft-live")
                == h.clock.t
            )

    run(go())


def test_first_read_uses_resolution_then_only_new_rows() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job({"id": "ft-r", "step_seconds": 1, "eval_every": 10})
            target = JobTarget(h.api, "ft-r", JobSettings(1.0, 5.0, 10, 30.0, 50, overlap=2.0))
            h.clock.t = job.start + 100.5
            await target.poll(h.clock.t)
            h.clock.t += 5
            out = text(await target.poll(h.clock.t))
            urls = h.transport.paths("/metrics")
            assert dict(urls[0].params) == {"resolution": "10"}
            assert dict(urls[1].params) == {"logged_at_from": iso_time(job.start + 98)}
            # 10 sampled train rows + all 10 eval rows, then steps 98 to 105 with the eval of 100.
            assert (await served(h, "ft-r"))[0] == 10 + 10 + 8 + 1
            assert out.value("together_finetune_global_step", job_id="ft-r") == 105
            assert (
                out.value("together_finetune_train_loss", job_id="ft-r") == job.train_row(105)["train/loss"]
            )

    run(go())


def test_bytes_per_poll_follow_the_new_rows_not_the_length_of_the_run() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job({"id": "ft-long", "step_seconds": 1, "eval_every": 10})
            target = JobTarget(h.api, "ft-long", JobSettings(10.0, 5.0, 20, 30.0, 50, overlap=5.0))
            h.clock.t = job.start + 2000.5
            await target.poll(h.clock.t)
            per_poll = []
            for _ in range(30):
                before = (await served(h, "ft-long"))[0]
                h.clock.t += 10
                await target.poll(h.clock.t)
                per_poll.append((await served(h, "ft-long"))[0] - before)
            # Every poll moves the 10 new train rows, their eval row and the 5s overlap
            # (both ends inclusive: 6 train rows and an eval row at most), whether the run
            # is 2,000 or 2,300 steps long.
            assert max(per_poll) <= 10 + 1 + 6 + 1
            assert sum(per_poll[-10:]) <= sum(per_poll[:10])

    run(go())


def test_a_failed_poll_does_not_lose_rows() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job({"id": "ft-f", "step_seconds": 1})
            target = JobTarget(h.api, "ft-f", SETTINGS)
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
            assert out.value("together_finetune_train_loss", job_id="ft-f") == job.train_row(7)["train/loss"]
            # The retry asked from the same cursor as the failed poll did.
            cursors = [u.params.get("logged_at_from") for u in h.transport.paths("/metrics")]
            assert cursors == [None, iso_time(job.start + 1)]

    run(go())


def test_metrics_404_of_a_queued_job_is_no_rows_yet() -> None:
    async def go() -> None:
        async with harness() as h:
            h.sim.add_job({"id": "ft-q", "delay": 100, "step_seconds": 1})
            h.sim.add_job({"id": "ft-r", "step_seconds": 1})
            queued = JobTarget(h.api, "ft-q", SETTINGS)
            h.transport.fail_next = ("ft-q/metrics", 404)
            out = text(await queued.poll(h.clock.t))
            assert out.value("together_finetune_global_step", job_id="ft-q") is None
            assert [lbl["status"] for lbl, v in out.series("together_finetune_job_status") if v == 1] == [
                "queued"
            ]
            # For a job that is training, a 404 is a 404.
            running = JobTarget(h.api, "ft-r", SETTINGS)
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
            target = JobTarget(h.api, "ft-end", SETTINGS)
            h.clock.t = job.start + 8.5
            await target.poll(h.clock.t)
            h.clock.t = job.start + 13  # completed; steps 9 and 10 not read yet
            out = text(await target.poll(h.clock.t))
            assert out.value("together_finetune_global_step", job_id="ft-end") == 10
            status = out.series("together_finetune_job_status")
            assert [lbl["status"] for lbl, v in status if v == 1] == ["completed"]
            # Every row read; the final read moved the 2s overlap's 3 rows again.
            assert await served(h, "ft-end") == (12 + 3, 12)
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
            # /targets lists it as finished with no schedule, then retired: never "up, every 1 s".
            health = TargetHealth()
            health.record_success(h.clock.t + 31, 0.0, 0)
            for at, retired in ((h.clock.t + 29, False), (h.clock.t + 31, True)):
                (row,) = rows([(target, health)], at)
                assert (row["health"], row["interval_seconds"], row["retired"]) == ("finished", None, retired)

    run(go())


def test_not_found_backs_off() -> None:
    async def go() -> None:
        async with harness() as h:
            target = JobTarget(h.api, "ft-gone", SETTINGS)
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
            disc = FineTuneDiscovery(h.api, discovery_settings(frozenset(UNFINISHED_STATUSES)))
            h.clock.t = end.start + 2
            rendered, found = await disc.discover(h.clock.t)
            out = text(rendered)
            assert sorted(t.job_id for t in jobs(found)) == ["ft-end", "ft-q", "ft-run"]
            assert out.value("together_finetune_listed_jobs", status="running") == 2
            assert out.value("together_finetune_listed_jobs", status="completed") == 1
            by_id = {t.job_id: t for t in jobs(found)}
            # ft-end completes: discovery keeps the same target for its final read and retention.
            h.clock.t = end.start + 10
            _, found = await disc.discover(h.clock.t)
            assert by_id["ft-end"] in found
            await by_id["ft-end"].poll(h.clock.t)
            assert by_id["ft-end"].finished_at == h.clock.t
            h.clock.t += SETTINGS.retention + 1
            _, found = await disc.discover(h.clock.t)
            assert sorted(t.job_id for t in jobs(found)) == ["ft-q", "ft-run"]
            # Jobs still running keep their target object, and with it their state.
            assert by_id["ft-run"] in found and by_id["ft-q"] in found
            # A job that vanishes from the list goes at once.
            h.sim.jobs.pop("ft-q")
            _, found = await disc.discover(h.clock.t)
            assert [t.job_id for t in jobs(found)] == ["ft-run"]

    run(go())


def test_discovery_of_finished_jobs_reads_each_once() -> None:
    async def go() -> None:
        async with harness() as h:
            h.sim.add_job({"id": "ft-old", "steps": 3, "step_seconds": 1, "delay": -1000})
            disc = FineTuneDiscovery(h.api, discovery_settings(TERMINAL))
            _, (target,) = await disc.discover(h.clock.t)
            await target.poll(h.clock.t)
            h.clock.t += SETTINGS.retention + 1
            assert (await disc.discover(h.clock.t))[1] == []
            h.clock.t += 100
            assert (await disc.discover(h.clock.t))[1] == []  # not picked up again while still listed
            assert await served(h, "ft-old") == (3, 3)

    run(go())


def test_discovery_list_errors_raise() -> None:
    async def go() -> None:
        async with harness() as h:
            disc = FineTuneDiscovery(h.api, discovery_settings(TERMINAL))
            h.transport.fail = ("/fine-tunes", 503)
            with pytest.raises(UpstreamError) as exc:
                await disc.poll(h.clock.t)
            assert exc.value.reason == "server_error"

    run(go())


async def poll_until(
    h: Harness, target: JobTarget, end: float, every: float, skew: float = 0.0
) -> list[Scrape]:
    """Poll every ``every`` seconds of simulator time up to ``end``; ``skew`` is how far
    this exporter's clock is from the vendor's."""
    outs = []
    while h.clock.t < end:
        h.clock.t += every
        outs.append(text(await target.poll(h.clock.t + skew)))
    return outs


def test_an_evaluation_slower_than_the_poll_interval_is_read_within_one_poll() -> None:
    async def go() -> None:
        async with harness() as h:
            # Training waits 7s for each evaluation; polls come every second.
            job = h.sim.add_job({"id": "ft-slow", "step_seconds": 1, "eval_every": 5, "eval_seconds": 7})
            target = JobTarget(h.api, "ft-slow", SETTINGS)
            h.clock.t = job.start
            for _ in range(60):
                h.clock.t += 1
                out = text(await target.poll(h.clock.t))
                done = [s for s in range(5, 100, 5) if job.step_time(s) + 7 <= h.clock.t]
                if done:
                    want = job.eval_row(done[-1])["eval/loss"]
                    assert out.value("together_finetune_eval_loss", job_id="ft-slow") == want
            assert len(done) >= 4

    run(go())


def test_asynchronous_evaluation_rows_arriving_after_later_train_rows_are_read() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job(
                {"id": "ft-async", "step_seconds": 1, "eval_every": 4, "eval_seconds": 9, "async_eval": True}
            )
            target = JobTarget(h.api, "ft-async", SETTINGS)
            h.clock.t = job.start
            for _ in range(40):
                h.clock.t += 1.5
                out = text(await target.poll(h.clock.t))
                done = [s for s in range(4, 100, 4) if job.step_time(s) + 9 <= h.clock.t]
                if done:
                    assert (
                        out.value("together_finetune_eval_loss", job_id="ft-async")
                        == job.eval_row(done[-1])["eval/loss"]
                    )
                # Training went on meanwhile: the train loss is the newest step's.
                step = job.logged_steps(h.clock.t)
                assert out.value("together_finetune_global_step", job_id="ft-async") == step
                assert (
                    out.value("together_finetune_train_loss", job_id="ft-async")
                    == job.train_row(step)["train/loss"]
                )

    run(go())


def test_a_row_logged_late_for_an_old_step_is_read_once() -> None:
    async def go() -> None:
        async with harness() as h:
            late = {"eval/bleu": 0.31, "train/global_step": 3}
            bad = {"eval/bleu": "n/a", "train/global_step": 4}
            job = h.sim.add_job(
                {
                    "id": "ft-late",
                    "step_seconds": 1,
                    "extra_rows": [
                        {"step": 3, "row": late, "delay": 20},
                        {"step": 4, "row": bad, "delay": 20},
                    ],
                }
            )
            target = JobTarget(h.api, "ft-late", SETTINGS)
            h.clock.t = job.start
            outs = await poll_until(h, target, job.start + 40, 1.0)
            assert outs[21].value("together_finetune_eval__2f_bleu", job_id="ft-late") is None
            assert outs[22].value("together_finetune_eval__2f_bleu", job_id="ft-late") is None or True
            first = next(
                i for i, o in enumerate(outs) if o.value("together_finetune_eval_bleu", job_id="ft-late")
            )
            assert job.step_time(3) + 20 <= job.start + first + 1 < job.step_time(3) + 21 + 1
            last = outs[-1]
            assert last.value("together_finetune_eval_bleu", job_id="ft-late") == 0.31
            assert last.value("together_finetune_global_step", job_id="ft-late") == 40
            # The bad row came back in two overlapping reads and counts once.
            assert (
                last.value(
                    "together_finetune_skipped_rows_total", job_id="ft-late", reason="non_numeric_value"
                )
                == 1
            )

    run(go())


def test_a_late_evaluation_is_in_the_final_read_of_a_finished_job() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job(
                {
                    "id": "ft-fin",
                    "steps": 10,
                    "step_seconds": 1,
                    "eval_every": 10,
                    "eval_seconds": 30,
                    "post_seconds": 1,
                }
            )
            target = JobTarget(h.api, "ft-fin", SETTINGS)
            h.clock.t = job.start + 11
            out = text(await target.poll(h.clock.t))
            assert out.value("together_finetune_eval_loss", job_id="ft-fin") is None
            assert [lbl["status"] for lbl, v in out.series("together_finetune_job_status") if v == 1] == [
                "running"
            ]
            h.clock.t = job.start + 45  # the evaluation ended at 40; the job completed at 42
            out = text(await target.poll(h.clock.t))
            assert [lbl["status"] for lbl, v in out.series("together_finetune_job_status") if v == 1] == [
                "completed"
            ]
            assert out.value("together_finetune_eval_loss", job_id="ft-fin") == job.eval_row(10)["eval/loss"]
            assert target.finished_at == h.clock.t

    run(go())


@pytest.mark.parametrize("skew", [-600.0, 600.0])
@pytest.mark.parametrize("vendor_date", [True, False])
def test_clock_skew_loses_no_row(skew: float, vendor_date: bool) -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job({"id": "ft-skew", "step_seconds": 1, "eval_every": 3, "eval_seconds": 4})
            if not vendor_date:
                h.transport.drop_date = True
            # Without the vendor's Date the exporter's clock is all there is: an overlap
            # wider than the skew is then what keeps rows from being lost.
            overlap = 2.0 if vendor_date else abs(skew) + 2
            target = JobTarget(h.api, "ft-skew", JobSettings(1.0, 5.0, None, 30.0, 50, overlap=overlap))
            h.clock.t = job.start
            outs = await poll_until(h, target, job.start + 50, 1.0, skew=skew)
            step = job.logged_steps(h.clock.t)
            assert outs[-1].value("together_finetune_global_step", job_id="ft-skew") == step
            last_eval = max(s for s in range(3, step + 1, 3) if job.step_time(s) + 4 <= h.clock.t)
            assert (
                outs[-1].value("together_finetune_eval_loss", job_id="ft-skew")
                == job.eval_row(last_eval)["eval/loss"]
            )
            # Every eval step's value was shown at some poll: none was skipped over.
            shown = {o.value("together_finetune_eval_loss", job_id="ft-skew") for o in outs}
            evals = [job.eval_row(s)["eval/loss"] for s in range(3, last_eval + 1, 3)]
            assert set(evals) <= shown

    run(go())


def test_a_finished_job_takes_new_labels_in_place_without_reading_again() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job({"id": "ft-end", "steps": 4, "step_seconds": 1, "post_seconds": 1})
            target = JobTarget(h.api, "ft-end", SETTINGS)
            h.clock.t = job.start + 10
            await target.poll(h.clock.t)
            assert target.finished_at is not None
            n_requests = len(h.transport.urls)
            relabelled = replace(SETTINGS, scope=Scope(labels=(("team", "b"),)), retention=60.0)
            assert target.reconfigure(JobTarget(h.api, "ft-end", relabelled))
            out = text(await target.poll(h.clock.t + 40))  # past the old retention, within the new
            assert out.value("together_finetune_global_step", job_id="ft-end", team="b") == 4
            assert len(h.transport.urls) == n_requests

    run(go())


def test_a_discovery_rebuilds_what_it_found_with_its_new_settings() -> None:
    async def go() -> None:
        async with harness() as h:
            h.sim.add_job({"id": "ft-run", "step_seconds": 1})
            discovery = FineTuneDiscovery(h.api, discovery_settings(frozenset({"running"})))
            _, found = await discovery.discover(h.clock.t)
            (job,) = jobs(found)
            longer = replace(SETTINGS, interval=7.0)
            new = FineTuneDiscovery(h.api, replace(discovery_settings(frozenset({"running"})), jobs=longer))
            assert discovery.reconfigure(new)
            rebuilt = discovery.rebuild(job)
            assert isinstance(rebuilt, JobTarget) and rebuilt is not job and rebuilt.settings == longer
            assert job.reconfigure(rebuilt) and job.interval == 7.0
            _, again = await discovery.discover(h.clock.t)
            assert jobs(again) == [job]  # the same target, state and all

    run(go())


def test_a_reload_that_lowers_the_discoverys_target_limit_applies_it_at_once() -> None:
    async def go() -> None:
        async with harness() as h:
            for job in ("ft-a", "ft-b"):
                h.sim.add_job({"id": job, "step_seconds": 1})
            discovery = FineTuneDiscovery(h.api, discovery_settings(frozenset({"running"})))
            assert len((await discovery.discover(h.clock.t))[1]) == 2
            lower = replace(discovery_settings(frozenset({"running"})), max_targets=1)
            assert discovery.reconfigure(FineTuneDiscovery(h.api, lower))
            with pytest.raises(UpstreamError) as exc:
                await discovery.discover(h.clock.t)
            assert exc.value.reason == "too_many_targets"

    run(go())


def test_a_job_the_config_named_and_no_longer_names_is_found_with_the_discoverys_current_settings() -> None:
    """While the config names a job, the discovery's find of it is not polled, nor given
    the discovery's new settings by a reload; once the config drops the job, the
    discovery's next refresh brings it back with the settings it has now."""

    async def go() -> None:
        async with harness() as h:

            def with_team(team: str) -> FineTuneDiscovery:
                jobs = replace(SETTINGS, scope=Scope(labels=(("team", team),)))
                return FineTuneDiscovery(
                    h.api, replace(discovery_settings(frozenset({"running"})), jobs=jobs)
                )

            async def refresh() -> None:
                targets.sync(discovery.id, (await discovery.discover(h.clock.t))[1])

            h.sim.add_job({"id": "ft-run", "step_seconds": 1})
            named = JobTarget(h.api, "ft-run", replace(SETTINGS, scope=Scope(labels=(("team", "config"),))))
            targets = TargetSet(Shard())
            discovery = with_team("a")
            targets.sync(STATIC, [named, discovery])
            await refresh()
            assert targets.get(named.id) is named
            targets.sync(STATIC, [named, with_team("b")])  # a reload: the discovery's labels change
            targets.sync(STATIC, [with_team("b")])  # a reload: the config no longer names the job
            await refresh()
            found = targets.get(named.id)
            assert found is not None and found.scope.labels == (("team", "b"),)

    run(go())
