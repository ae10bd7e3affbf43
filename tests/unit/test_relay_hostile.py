"""Relaying bodies crafted to hurt: each costs time and memory in proportion to its size,
fails its own target with a reason that names the line, and whatever is relayed is read
by every reader of the text format (``promtool check metrics`` among them)."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Callable

import httpx
import pytest

from exporter.core.errors import InvalidResponse, LimitExceeded
from exporter.core.exposition import Rendered
from exporter.core.scope import FilterRule, MetricFilter, Scope
from exporter.sources.relay.body import PIECE_BYTES, max_line_bytes
from exporter.sources.relay.rules import RelayRules
from exporter.sources.relay.target import RelaySettings, RelayTarget
from exporter.sources.relay.translate import relay
from exporter.upstream.client import UpstreamStats
from tests import helpers
from tests.helpers import mock_clients

SCOPE = Scope("prod", (("team", "ml"),))
MIB = 1 << 20


def refused(body: bytes, scope: Scope = SCOPE) -> str:
    with pytest.raises(InvalidResponse) as caught:
        relay(body, scope)
    return caught.value.detail


def parse_errors(body: bytes) -> str:
    """What promtool's parser says of the exposition of a relayed body (its lint about the
    vendor's own names left aside): empty when every reader of the text format reads it."""
    text = helpers.exposition([relay(body, SCOPE).rendered]).decode()
    out = helpers.promtool_check_metrics(text)
    return "\n".join(line for line in out.splitlines() if "error" in line)


# --- numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("labels", ["", '{a="1"}'])
def test_a_long_run_of_digits_that_is_no_number_is_given_up_in_one_pass(labels: str) -> None:
    # Read as a split at every digit, 10,000 digits took a minute of CPU on the event loop.
    line = f"g{labels} {'1' * 10_000}x\n"
    start = time.process_time()
    detail = refused(f'g{{a="0"}} 1\n{line}'.encode())
    assert time.process_time() - start < 1.0
    assert detail.startswith("line 2: value '1111") and "is not a number" in detail


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("g 1e309", "line 2: value '1e309' of g is past the range of a 64-bit float"),
        ('g{a="2"} -1e309', "line 2: value '-1e309' of g is past the range of a 64-bit float"),
        ("g " + "9" * 400, "line 2: value '9999"),
        ('h_bucket{le="1e309"} 1', "line 2: le='1e309' is not a number (within a float64's range)"),
        ('s{quantile="1e400"} 1', "line 2: quantile='1e400' is not a number (within a float64's range)"),
    ],
)
def test_a_number_past_a_float64_is_refused_as_prometheus_refuses_it(line: str, message: str) -> None:
    """Prometheus fails the whole scrape on such a value (and promtool on such a bucket):
    relayed, it would cost every target of the exposition."""
    head = {"h": "# TYPE h histogram\n", "s": "# TYPE s summary\n"}.get(line[0], 'g{a="1"} 1\n')
    assert message in refused(f"{head}{line}\n".encode())


# --- families the readers of the exposition would take for another's series -----------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "# TYPE h histogram\nh_count 1\n# TYPE h_sum gauge\nh_sum 2\n",
            "line 3: h_sum is the name of a series of histogram h: it cannot be a family of its own",
        ),
        (
            "# TYPE h_bucket gauge\nh_bucket 1\n# TYPE h histogram\n",
            "line 3: h_bucket comes before # TYPE h histogram, whose series it would be",
        ),
        ("h_sum 1\n# TYPE h histogram\n", "line 2: h_sum comes before # TYPE h histogram"),
        ("# TYPE s summary\n# HELP s_count Calls.\n", "line 2: s_count is the name of a series of summary s"),
        ("# HELP s_count Calls.\n# TYPE s summary\n", "line 2: s_count comes before # TYPE s summary"),
    ],
)
def test_a_family_named_as_a_series_of_a_histogram_or_summary_is_refused(body: str, message: str) -> None:
    """The exposition groups a body's families by name: ``h_sum`` as a family of its own
    would come after histogram ``h`` and be read as a second declaration of it."""
    assert message in refused(body.encode())


def test_whatever_the_relay_passes_on_is_read_by_promtool() -> None:
    edges = ["1.7976931348623157e308", "-1e-400", "4.9e-324", "9" * 250, "1e0005", "+Inf", "-inf", "NaN"]
    numbers = "# TYPE n gauge\n" + "".join(f'n{{i="{i}"}} {v}\n' for i, v in enumerate(edges))
    text = helpers.exposition([relay(numbers.encode(), SCOPE).rendered]).decode()
    assert [line.rpartition(" ")[2] for line in text.splitlines()[2:]] == edges  # as written
    bodies = [
        numbers,
        # prometheus_client declares every _created series as a gauge of its own.
        '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n# TYPE h_created gauge\nh_created 1.7e9\n'
        "# TYPE s summary\ns_sum 1\ns_count 1\n# TYPE s_created gauge\ns_created 1.7e9\n",
        # A summary owns no _bucket, a gauge no _sum: families of their own, as readers take them.
        "# TYPE s summary\ns_count 1\n# TYPE s_bucket gauge\ns_bucket 1\n# TYPE g gauge\ng 1\ng_sum 2\n",
    ]
    for body in bodies:
        assert parse_errors(body.encode()) == "", body
    # What Prometheus' own scraper may let through, but not every reader: refused, or read.
    hostile = [
        'h_sum 1\n# TYPE h histogram\nh_bucket{le="1"} 1\n',
        '# TYPE h histogram\nh_bucket{le="1"} 1\n# TYPE h_count gauge\nh_count 3\n',
        "g 1e999\n",
        '# TYPE h histogram\nh_bucket{le="-1e999"} 1\n',
    ]
    for body in hostile:
        try:
            errors = parse_errors(body.encode())
        except InvalidResponse:
            continue
        assert errors == "", body


# --- lines too long to be worth reading ------------------------------------------------------------


def test_a_line_past_the_line_bound_is_left_out_unread_and_counted() -> None:
    bound = max_line_bytes(RelayRules().max_label_length)
    at_bound = b"# " + b"x" * (bound - 2)
    body = b"\n".join(
        [
            b'g{a="1"} 1',
            at_bound,  # read: a comment
            at_bound + b"x",  # left out
            b'g{a="' + b"\\\\" * bound + b'"} 2',  # left out: it would be dropped as too long anyway
            b"# HELP g " + b"\\n" * bound,  # left out: g keeps no HELP
            b'g{a="3"} 3',
            b"g{a=4} 4",
        ]
    )
    assert "line 7: the value of label a must be a double-quoted string" in refused(body)
    result = relay(body[: body.rindex(b"\n")], SCOPE)
    assert (result.series, result.too_long) == (2, 3)


@pytest.mark.parametrize(
    "line",
    [
        b'g{a="' + b"\\\\" * (2 * MIB) + b'"} 1',  # an escape at every other byte
        b"g{" + b'a="",' * (MIB // 2) + b"} 1",  # a label every few bytes
        b"# HELP g " + b"\\n" * (2 * MIB),
    ],
    ids=["escapes", "labels", "help"],
)
def test_a_long_line_costs_no_more_memory_than_its_size(line: bytes) -> None:
    """The regular expressions keep a frame per escape or label they go through: read, a
    4 MiB line of them took hundreds of MiB (60 MiB of them, 5 GiB)."""
    body = b'g{a="x"} 1\n' + line + b'\ng{a="y"} 2\n'
    tracemalloc.start()
    try:
        result = relay(body, SCOPE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (result.series, result.too_long) == (2, 1)
    assert peak < 2 * len(body), peak


def test_wide_label_shapes_cost_no_compile_time() -> None:
    """A form (one regular expression per label shape) takes longer to compile than a
    thousand labels are worth reading: 64 such shapes took half a minute."""
    body = "".join(
        "g{" + ",".join(f'l{shape}_{i}="v"' for i in range(1000)) + "} 1\n" for shape in range(64)
    ).encode()
    start = time.process_time()
    assert relay(body, Scope("prod", max_series=100)).series == 64
    assert time.process_time() - start < 3.0


# --- names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "scope"),
    [
        # Declared and never sampled.
        (lambda i: f"# TYPE m{i} gauge\n", Scope("prod", max_series=1000)),
        # Sampled, and denied by the metric filter: no series to count.
        (
            lambda i: f"m{i} 1\n",
            Scope("prod", filter=MetricFilter((FilterRule(deny=("m.*",)),)), max_series=1000),
        ),
        # In a namespace the relay keeps out of.
        (lambda i: f"inference_exporter_m{i} 1\n", Scope("prod", max_series=1000)),
    ],
    ids=["declared", "filtered", "reserved"],
)
def test_a_body_naming_more_families_than_the_series_limit_is_refused(
    make: Callable[[int], str], scope: Scope
) -> None:
    """Every name met costs memory whether or not its family is kept: millions of them
    within the body cap took most of a GiB and twenty seconds."""
    relay("".join(make(i) for i in range(1000)).encode(), scope)
    with pytest.raises(LimitExceeded) as caught:
        relay("".join(make(i) for i in range(1001)).encode(), scope)
    assert (caught.value.reason, caught.value.limit) == ("too_many_families", "max_series_per_target")
    assert caught.value.detail.startswith("the body names more than 1000 metric families")


# --- time ----------------------------------------------------------------------------------------------


def test_a_body_slow_to_read_leaves_the_event_loop_free_and_ends_at_the_polls_deadline() -> None:
    """Tiny lines are the slowest to read per byte: 64 MiB of newlines took twenty seconds,
    all of them on the event loop, with every scrape waiting and the poll's own deadline
    (its interval) unable to end it."""
    body = b"\n" * (4 * MIB)

    async def main() -> tuple[int, Rendered | None]:
        clients = mock_clients("baseten", lambda _: httpx.Response(200, content=body), UpstreamStats())
        settings = RelaySettings("baseten", "org", "https://app.baseten.co/metrics", 30, 5, 120)
        target = RelayTarget(clients, settings)
        ticks = 0
        reading = True

        async def other_work() -> None:
            nonlocal ticks
            while reading:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(other_work())
        try:
            await target.poll(time.time())
        finally:
            reading = False
            await ticker
        try:
            async with asyncio.timeout(0.05):
                return ticks, await target.poll(time.time())
        except TimeoutError:
            return ticks, None

    ticks, late = asyncio.run(main())
    pieces = len(body) // PIECE_BYTES
    assert ticks >= pieces / 2, ticks
    assert late is None
