"""Relaying bodies crafted to hurt: each costs time and memory in proportion to its size,
fails its own target with a reason that names the line, and whatever is relayed is read
by every reader of the text format (``promtool check metrics`` among them)."""

from __future__ import annotations

import time

import pytest

from exporter.core.errors import InvalidResponse
from exporter.core.scope import Scope
from exporter.sources.relay.translate import relay

SCOPE = Scope("prod", (("team", "ml"),))


def refused(body: bytes, scope: Scope = SCOPE) -> str:
    with pytest.raises(InvalidResponse) as caught:
        relay(body, scope)
    return caught.value.detail


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
