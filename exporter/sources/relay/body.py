"""A relayed body as lines, a piece at a time: never held whole as text or as lines, and
a line too long to be worth reading never decoded. What the lines say is
``translate``'s."""

from __future__ import annotations

from collections.abc import Iterator

from exporter.core.errors import InvalidResponse

# Bytes of the body decoded and split at a time: a piece and its lines are small objects.
PIECE_BYTES = 1 << 16
# A line longer than this many bytes per character of ``max_label_length`` (or than
# PIECE_BYTES, if that is more) is left out unread and counted as too long: room for
# dozens of labels at that length. Read, such a line would cost far more than its size:
# the regular expressions keep a frame per escape or label they go through.
LINE_BYTES_PER_LABEL_CHAR = 64
# What stands for a line left out unread: no line split from a body holds a newline.
OVERLONG = "\n"


def max_line_bytes(max_label_length: int) -> int:
    """The longest line a relay reads (see ``LINE_BYTES_PER_LABEL_CHAR``)."""
    return max(PIECE_BYTES, LINE_BYTES_PER_LABEL_CHAR * max_label_length)


def pieces(body: bytes, max_line: int) -> Iterator[tuple[int, list[str]]]:
    """The body's lines, decoded, a piece of about ``PIECE_BYTES`` at a time, each with the
    number of the line before it: the whole body is never held as text or as lines. A
    line longer than ``max_line`` bytes (at least PIECE_BYTES) is neither decoded nor
    split, and comes as ``OVERLONG``."""
    pos = before = 0
    view = memoryview(body)
    size = len(body)
    while pos < size:
        mark = pos + PIECE_BYTES
        end = body.find(b"\n", mark)
        if end < 0:
            end = size
        # Only a piece's last line can be longer than PIECE_BYTES: the others end before the mark.
        start = max(pos, body.rfind(b"\n", pos, mark) + 1)
        if end - start <= max_line:
            lines = decoded(body, view, pos, end, before)
        else:
            lines = decoded(body, view, pos, start - 1, before) if start > pos else []
            lines.append(OVERLONG)
        yield before, lines
        before += len(lines)
        pos = end + 1


def decoded(body: bytes, view: memoryview, pos: int, end: int, before: int) -> list[str]:
    """The lines of ``body[pos:end]`` (``view`` is the body's), the first of them line ``before + 1``."""
    try:
        text = str(view[pos:end], "utf-8")
    except UnicodeDecodeError as exc:
        line = before + body.count(b"\n", pos, pos + exc.start) + 1
        raise InvalidResponse(f"line {line}: not valid UTF-8 (byte {pos + exc.start} of the body)") from None
    return text.split("\n")
