"""A key rotated while a request with the old key is in flight.

A fake vendor answers the first request of a poll with 429 and ``Retry-After: 2``,
the key file is rewritten and the daemon sent SIGHUP while the poll waits to retry,
and the retry (on the old client, with the old key) is answered 401 with the old key
echoed in the error message. The retry must run (the old client stays open until its
polls end), the echoed key must be scrubbed everywhere (the scrubber keeps the key of
every client still open), and the next poll must use the new key.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.helpers import start_daemon, wait_until

OLD_KEY, NEW_KEY = "tk-old-3b9e51c7d2", "tk-new-8f04a6e1b9"
TARGET = "together_queue@rot/m"


class FakeVendor:
    """Together's queue endpoint; once ``armed``, the next request is told to come back
    in 2 s, and the old key's requests after that are refused with the key echoed."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.armed = threading.Event()
        self.trapped = threading.Event()
        self.refused = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                fake.keys.append(key)
                if key == OLD_KEY and fake.armed.is_set() and not fake.trapped.is_set():
                    fake.trapped.set()
                    self.answer(429, {"error": {"message": "slow down"}}, {"Retry-After": "2"})
                elif key == OLD_KEY and fake.trapped.is_set():
                    fake.refused.set()
                    self.answer(401, {"error": {"message": f"invalid api key {key}"}})
                else:
                    self.answer(200, {"messages_waiting": 4, "messages_running": 1})

            def answer(self, status: int, doc: object, headers: dict[str, str] | None = None) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def vendor() -> Iterator[FakeVendor]:
    fake = FakeVendor()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def target_row(url: str) -> dict[str, object]:
    rows = httpx.get(url + "/targets", params={"format": "json"}, timeout=5).json()["targets"]
    return next(dict(r) for r in rows if r["id"] == TARGET)


def test_a_key_rotated_during_a_request_in_flight(tmp_path: Path, vendor: FakeVendor) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(OLD_KEY)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
global: {{poll_interval: 5s, timeout: 1s}}
together:
  accounts:
    - name: rot
      base_url: {vendor.url}/v1
      api_key_file: {key_file}
      queues: [{{model: m}}]
"""
    )
    daemon = start_daemon(tmp_path, config)
    try:
        vendor.armed.set()
        assert vendor.trapped.wait(10), "no poll came"
        # The poll waits 2 s to retry; meanwhile the key is rotated.
        key_file.write_text(NEW_KEY)
        daemon.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: "config reloaded" in daemon.log(), 5, "the reload", proc=daemon)
        wait_until(lambda: target_row(daemon.url)["last_error"] is not None, 10, "the poll to end", daemon)
        row = target_row(daemon.url)
        # The retry reached the vendor on the old client, and its answer was read.
        assert vendor.refused.is_set() and row["last_error"] == "unauthorized", row
        assert "<redacted>" in str(row["last_error_detail"])
        # The next poll uses the new key and succeeds.
        wait_until(lambda: target_row(daemon.url)["health"] == "up", 10, "a poll with the new key", daemon)
        assert vendor.keys[-1] == NEW_KEY
        pages = [
            httpx.get(daemon.url + p, timeout=5).text
            for p in ("/targets", "/targets?format=json", "/metrics")
        ]
        log = daemon.log()
        for text in (*pages, log):
            assert OLD_KEY not in text and NEW_KEY not in text
        assert "Session is closed" not in log and "Traceback" not in log
    finally:
        daemon.stop()
