"""Reading the files an operator points us at (config, web config, key files), safely.

A path can name anything: a FIFO that never delivers a byte, ``/dev/zero`` that never
ends, a file being rewritten. Each would hang a reload (while it holds the reload
lock) or grow memory until the process is killed. So a file is opened without
blocking, must be a regular file, and is read up to a bounded size.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Large enough for any real config (thousands of targets fit in a few hundred KiB),
# small enough that parsing one never takes long.
MAX_CONFIG_BYTES = 1024 * 1024


class FileProblem(ValueError):
    """Why a file could not be read; ``line`` points at the offending byte when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def read_bytes(path: Path, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of the regular file at ``path`` (links followed), at most ``limit`` of them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileProblem(f"cannot read: {exc.strerror or type(exc).__name__}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileProblem("not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1024 * 1024, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise FileProblem(f"larger than {limit:,} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise FileProblem(f"cannot read: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)


def read_text(path: Path, limit: int = MAX_CONFIG_BYTES) -> str:
    """``read_bytes`` decoded as UTF-8 text; invalid UTF-8 or a NUL byte is a problem with its line."""
    data = read_bytes(path, limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileProblem(
            f"not valid UTF-8 (byte {exc.start + 1})", line=data.count(b"\n", 0, exc.start) + 1
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        raise FileProblem("contains a NUL byte", line=text.count("\n", 0, nul) + 1)
    return text
