from __future__ import annotations

from typing import Any

import pytest

from exporter.core.errors import InvalidResponse
from exporter.sources.together.queue_translate import JOBS_RUNNING, JOBS_WAITING, translate


def values(doc: Any) -> dict[str, float]:
    return {s.family.name: s.value for s in translate("org/m", doc)}


def test_documented_response() -> None:
    samples = translate("org/m", {"messages_running": 3, "messages_waiting": 12, "total_jobs": 15})
    assert [(s.family, s.labels, s.value) for s in samples] == [
        (JOBS_WAITING, (("model", "org/m"),), 12.0),
        (JOBS_RUNNING, (("model", "org/m"),), 3.0),
    ]


def test_unknown_fields_are_ignored_and_total_not_exported() -> None:
    got = values({"messages_running": 0, "messages_waiting": 0, "total_jobs": 0, "messages_delayed": 9})
    assert got == {"together_queue_jobs_waiting": 0.0, "together_queue_jobs_running": 0.0}


@pytest.mark.parametrize(
    "doc",
    [
        {"messages_running": 1},  # waiting missing
        {"messages_running": 1, "messages_waiting": None},  # null is no data, not 0
        {"messages_running": 1, "messages_waiting": "2"},
        {"messages_running": True, "messages_waiting": 2},
        {"messages_running": -1, "messages_waiting": 2},
        {"messages_running": float("nan"), "messages_waiting": 2},
        [],
        None,
        "ok",
    ],
)
def test_drift_fails_the_poll_instead_of_inventing_numbers(doc: Any) -> None:
    with pytest.raises(InvalidResponse) as exc:
        translate("org/m", doc)
    assert exc.value.reason == "invalid_response"
