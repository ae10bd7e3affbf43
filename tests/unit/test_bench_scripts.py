"""Each benchmark runs end to end with tiny parameters and prints a well-formed last line.

Not a speed test: only that the scripts work against the simulator and report
``NAME: key=value …`` with the figures bench/README.md quotes.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

LINE_RE = re.compile(r"^(?P<name>[a-z_]+): (?P<pairs>[a-z0-9_]+=\S+(?: [a-z0-9_]+=\S+)*)$")

CASES = {
    "scrape": (
        ["--scale", "0.005", "--interval", "2", "--duration", "0.5", "--rounds", "1"],
        {"speedup", "gzip_speedup", "p99_ms", "p99_gzip_ms", "exporter_ms", "client_python_ms", "series"},
    ),
    "poll": (
        ["--targets", "40", "--interval", "2", "--spread", "0.5", "--mixed-cycles", "1"],
        {
            "cpu_ms_per_target",
            "httpx_request_cpu_ms",
            "ratio_vs_httpx",
            "cycle_s",
            "interval_s",
            "cycle_ratio",
            "mixed_cpu_ms_per_target",
            "mixed_cpu_ms_per_request",
            "mixed_cycle_s",
        },
    ),
    "memory": (["--scale", "0.005", "--spread", "0.5"], {"rss_mb", "baseline_rss_mb", "series"}),
    "idle": (["--seconds", "0.2", "--rounds", "1"], {"daemon_rss_mb", "stack_rss_mb", "own_mb", "ratio"}),
    "churn": (
        ["--minutes", "0.35", "--warmup", "8", "--sample-every", "4", "--reload-every", "4"],
        {
            "reloads",
            "rotations",
            "rss_mb_start",
            "rss_mb_end",
            "rss_mb_trimmed",
            "fds_end",
            "target_objects",
            "blocks_end",
        },
    ),
    "relay": (
        ["--series", "1500", "--rounds", "1"],
        {
            "series",
            "relay_cpu_ms",
            "client_python_parse_cpu_ms",
            "cpu_ratio",
            "speedup",
            "relay_bytes_per_series",
            "native_bytes_per_series",
            "memory_ratio",
        },
    ),
    "scaling": (
        ["--scale", "0.003", "--spread", "0.3"],
        {"cpu_ratio_2x", "cpu_ratio_4x", "scrape_ratio_2x", "scrape_ratio_4x", "targets_4x"},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_prints_a_result_line(name: str) -> None:
    args, keys = CASES[name]
    res = subprocess.run(
        [sys.executable, str(REPO / "bench" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=110,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    last = res.stdout.strip().splitlines()[-1]
    m = LINE_RE.match(last)
    assert m is not None and m["name"] == name, last
    figures = dict(pair.split("=", 1) for pair in m["pairs"].split(" "))
    assert keys <= figures.keys(), last
    for key in keys:
        value = figures[key].removesuffix("x")
        assert float(value) >= 0, last  # numbers, not NaN or placeholders
    for key in ("failed", "mixed_failed"):
        if key in figures:
            assert figures[key] == "0", last
