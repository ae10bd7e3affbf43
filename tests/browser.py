"""Headless Chromium for the page tests: the DOM after rendering, and screenshots.

In CI a missing Chromium is a failure (``need_binary``), never a skip.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import need_binary

DESKTOP = (1280, 900)
NARROW = (390, 1600)


def _chromium(profile: Path, *args: str) -> str:
    chromium = need_binary("chromium")
    res = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def dump_dom(url: str, profile: Path, size: tuple[int, int] = DESKTOP) -> str:
    """The page's DOM as Chromium serialises it after loading ``url``."""
    return _chromium(profile, f"--window-size={size[0]},{size[1]}", "--dump-dom", url)


def screenshot(url: str, out: Path, profile: Path, size: tuple[int, int] = DESKTOP) -> Path:
    """A PNG of ``url`` in a window of ``size``; returns ``out`` once it is written."""
    _chromium(profile, f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", url)
    assert out.exists(), f"chromium wrote no screenshot to {out}"
    return out


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header (its IHDR chunk)."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
