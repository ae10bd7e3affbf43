"""The simulated fine-tune endpoints: the vendor's schemas, every metrics filter, row counting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exporter.simulator.together_finetune import iso
from tests import schemas
from tests.finetune_harness import Harness, harness


def validate(doc: Any, schema: str) -> None:
    schemas.validate("together_finetune.yaml", schema, doc)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def steps(rows: list[dict[str, Any]]) -> list[tuple[int, bool]]:
    return [(r["train/global_step"], "eval/loss" in r) for r in rows]


async def metrics(
    h: Harness, job: str = "ft-t", *, schema: bool = True, **params: str | int
) -> list[dict[str, Any]]:
    resp = await h.get(f"/fine-tunes/{job}/metrics", **params)
    assert resp.status_code == 200, resp.text
    if schema:  # scripted odd rows break the schema on purpose
        validate(resp.json(), "FinetuneMetricsResponse")
    rows: list[dict[str, Any]] = resp.json()["metrics"]
    return rows


def test_default_jobs_match_the_schemas_through_their_lifecycle() -> None:
    async def go() -> None:
        async with harness(reset=False) as h:
            seen: set[str] = set()
            for _ in range(20):
                listing = (await h.get("/fine-tunes")).json()
                validate(listing, "FinetuneTruncatedList")
                for item in listing["data"]:
                    # Answers are checked once per status, for whichever job shows it first.
                    if item["status"] in seen:
                        continue
                    job = await h.get(f"/fine-tunes/{item['id']}")
                    validate(job.json(), "FinetuneResponse")
                    await metrics(h, item["id"])
                seen.update(item["status"] for item in listing["data"])
                h.clock.t += 10
            # Queued, running, finishing, finished and failed jobs all appear.
            assert {"queued", "running", "compressing", "uploading", "completed", "error"} <= seen

    run(go())


def test_rows_are_chronological_with_separate_train_and_eval_objects() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job({"id": "ft-t", "steps": 20, "step_seconds": 1, "eval_every": 5})
            h.clock.t = job.start + 0.5
            assert await metrics(h) == []
            h.clock.t = job.start + 20.5
            rows = await metrics(h)
            assert len(rows) == 24
            assert steps(rows)[3:6] == [(4, False), (5, False), (5, True)]
            assert [s for s, _ in steps(rows)] == sorted(s for s, _ in steps(rows))
            assert set(rows[5]) == {"eval/loss", "train/global_step"}

    run(go())


def test_every_filter() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job({"id": "ft-t", "steps": 20, "step_seconds": 1, "eval_every": 5})
            h.clock.t = job.start + 30
            got = steps(await metrics(h, global_step_from=6, global_step_to=10))
            assert got == [(6, False), (7, False), (8, False), (9, False), (10, False), (10, True)]
            got = steps(await metrics(h, logged_at_from=iso(job.start + 15)))
            assert got == [
                (15, False),
                (15, True),
                (16, False),
                (17, False),
                (18, False),
                (19, False),
                (20, False),
                (20, True),
            ]
            got = steps(await metrics(h, logged_at_to=iso(job.start + 3.5)))
            assert got == [(1, False), (2, False), (3, False)]
            got = steps(await metrics(h, global_step_from=21))
            assert got == []
            # resolution samples train rows uniformly and returns every eval row.
            got = steps(await metrics(h, resolution=4))
            train = [s for s, e in got if not e]
            assert train[0] == 1 and train[-1] == 20 and len(train) == 4
            assert [s for s, e in got if e] == [5, 10, 15, 20]
            got = steps(await metrics(h, resolution=2, global_step_from=11))
            assert got == [(11, False), (15, True), (20, False), (20, True)]
            # Bad values are 400s; an unknown job is a 404.
            for bad in ({"global_step_from": "x"}, {"logged_at_from": "yesterday"}, {"resolution": 0}):
                assert (await h.get("/fine-tunes/ft-t/metrics", **bad)).status_code == 400
            assert (await h.get("/fine-tunes/ft-nope/metrics")).status_code == 404
            assert (await h.get("/fine-tunes/ft-nope")).status_code == 404

    run(go())


def test_rows_served_and_logged_are_counted() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job(
                {
                    "id": "ft-t",
                    "steps": 10,
                    "step_seconds": 1,
                    "eval_every": 4,
                    "extra_rows": [{"step": 3, "row": {"train/loss": "oops", "train/global_step": 3}}],
                }
            )
            h.clock.t = job.start + 5.5
            first = await metrics(h, schema=False)
            assert len(first) == 5 + 1 + 1  # five train rows, the eval at 4, the scripted row
            second = await metrics(h, schema=False, global_step_from=3)
            report = (await h.http.get(h.url + "/_sim/fine-tunes")).json()["ft-t"]
            assert report["rows_logged"] == 7
            assert report["rows_served"] == len(first) + len(second)
            assert report["status"] == "running"

    run(go())


@pytest.mark.parametrize(
    ("offset", "status"),
    [(-1, "queued"), (5, "running"), (10.5, "compressing"), (12.5, "uploading"), (15, "completed")],
)
def test_status_follows_the_clock(offset: float, status: str) -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job({"id": "ft-t", "steps": 10, "step_seconds": 1, "post_seconds": 2})
            h.clock.t = job.start + offset
            doc = (await h.get("/fine-tunes/ft-t")).json()
            assert doc["status"] == status
            if status == "queued":
                assert doc["queue_depth"] == 1 and doc["progress"]["estimate_available"] is True

    run(go())


def test_evaluation_time_delays_eval_rows_and_training_waits_for_them() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job(
                {"id": "ft-t", "steps": 10, "step_seconds": 1, "eval_every": 5, "eval_seconds": 3}
            )
            # Train 5 at 5, eval 5 at 8, train 6 at 9 (training waited), …, train 10 at 13, eval 10 at 16.
            assert [job.step_time(s) - job.start for s in (5, 6, 10)] == [5, 9, 13]
            h.clock.t = job.start + 7.5
            assert steps(await metrics(h)) == [(s, False) for s in range(1, 6)]
            h.clock.t = job.start + 9
            assert steps(await metrics(h))[-2:] == [(5, True), (6, False)]
            h.clock.t = job.start + 15
            assert h.sim.jobs["ft-t"].status(h.clock.t) == "running"  # its last evaluation is still running
            h.clock.t = job.start + 16
            assert steps(await metrics(h))[-1] == (10, True)
            report = (await h.http.get(h.url + "/_sim/fine-tunes")).json()["ft-t"]
            assert report["rows_logged"] == 12

    run(go())


def test_asynchronous_evaluation_logs_eval_rows_after_later_train_rows() -> None:
    async def go() -> None:
        async with harness() as h:
            job = h.sim.add_job(
                {"id": "ft-t", "step_seconds": 1, "eval_every": 4, "eval_seconds": 6.5, "async_eval": True}
            )
            h.clock.t = job.start + 12
            got = steps(await metrics(h))
            # The eval of step 4 is logged at 10.5, after the train rows of steps 5 to 10.
            assert got == [*[(s, False) for s in range(1, 11)], (4, True), (11, False), (12, False)]
            # logged_at filters by each row's own time, not by its step.
            got = steps(
                await metrics(h, logged_at_from=iso(job.start + 10), logged_at_to=iso(job.start + 11))
            )
            assert got == [(10, False), (4, True), (11, False)]
            # A late row for an old step is served by time as well.
            h.sim.add_job(
                {
                    "id": "ft-late",
                    "step_seconds": 1,
                    "extra_rows": [
                        {"step": 2, "row": {"eval/bleu": 0.3, "train/global_step": 2}, "delay": 30}
                    ],
                }
            )
            h.clock.t += 40
            rows = await metrics(h, "ft-late", logged_at_from=iso(h.sim.jobs["ft-late"].start + 32))
            assert steps(rows)[0] == (2, False) and rows[0]["eval/bleu"] == 0.3

    run(go())


def test_answers_carry_the_simulator_clock_as_their_date() -> None:
    async def go() -> None:
        async with harness() as h:
            h.sim.add_job({"id": "ft-t", "step_seconds": 1})
            h.clock.t = 1_800_000_010.7
            resp = await h.get("/fine-tunes/ft-t/metrics")
            assert resp.headers["date"] == "Fri, 15 Jan 2027 08:00:10 GMT"

    run(go())
