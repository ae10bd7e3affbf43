"""Screenshots of the exporter's pages for the documentation, taken from the demo.

    python scripts/screenshots.py [--out docs/images] [--chromium /usr/bin/chromium]

Starts ``python -m exporter demo`` on a free loopback port, waits until every target
has been polled, and saves what someone running the demo sees (nothing scripted: the
pictures show the demo's own targets, as the README's tour describes them), from
headless Chromium at 1280 px wide:

    docs/images/targets.png   /targets
    docs/images/landing.png   the landing page

Run it again after changing the pages and commit the images. It needs Chromium
(Debian: ``apt-get install chromium``) and nothing but loopback networking; the demo
is stopped when it is done.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIDTH = 1280
# Tall enough for the demo's targets without scrolling (Chromium shoots the viewport).
SHOTS = {"targets.png": ("/targets", 1120), "landing.png": ("/", 720)}


def chromium_screenshot(chromium: str, url: str, out: Path, width: int, height: int, profile: Path) -> None:
    """One PNG of ``url`` as headless Chromium renders it in a window ``width`` by ``height`` pixels."""
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - a loopback URL read from the demo
        return json.load(resp)


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def _read_url(demo: subprocess.Popen[str]) -> str:
    """The exporter's URL, from the demo's first lines on stdout."""
    assert demo.stdout is not None
    while True:
        line = demo.stdout.readline()
        if not line:
            raise SystemExit("the demo exited before it printed its address")
        if m := re.search(r"Open (http://\S+?)/ ", line):
            return m.group(1)


def take(out_dir: Path, chromium: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    demo = subprocess.Popen(
        [sys.executable, "-m", "exporter", "demo", "--web.listen-address", "127.0.0.1:0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = _read_url(demo)

        def settled() -> bool:
            targets = _get_json(url + "/targets?format=json")
            assert isinstance(targets, dict)
            return all(t["health"] != "unknown" for t in targets["targets"])

        _wait(settled, 60, "every target polled")
        # A few seconds more, so that "last poll" shows ages other than "just now".
        time.sleep(3)
        written = []
        with tempfile.TemporaryDirectory() as profile:
            for name, (path, height) in SHOTS.items():
                out = out_dir / name
                chromium_screenshot(chromium, url + path, out, WIDTH, height, Path(profile))
                written.append(out)
        return written
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(10)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="directory for the PNGs")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "", help="Chromium binary")
    args = parser.parse_args()
    if not args.chromium:
        print("chromium not found: install it or pass --chromium", file=sys.stderr)
        return 1
    for path in take(args.out, args.chromium):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
