"""Logging in logfmt or JSON, with API keys scrubbed from every record.

Keys never reach a log call on purpose; the scrubber is the second line of defence
for text we do not control (exception messages from libraries, vendor error bodies).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TypeVar

_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
REDACTED = "<redacted>"
_REDACTED_BYTES = REDACTED.encode()
_Bytes = TypeVar("_Bytes", bytes, bytearray)


class SecretScrubber(logging.Filter):
    """Replaces every registered secret in a record's rendered text, and in vendor answers.

    ``scrub_bytes`` cleans a vendor's answer before it is parsed (see
    ``exporter.upstream.client``): a vendor that echoes the key inside a data field (a job's
    output name, a deployment's name) would otherwise carry it into label values,
    metric names, target ids and error details, some of them cut short where a
    partial key could no longer be recognised. What the raw bytes cannot show (a key
    spelled with JSON escapes) is scrubbed after parsing (``exporter.upstream.vendorjson``),
    which asks ``finds`` first whether there is anything to scrub.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self._encoded: tuple[bytes, ...] = ()

    def set_secrets(self, secrets: set[str] | frozenset[str]) -> None:
        # Longest first, so a key that contains another is replaced whole.
        self._secrets = tuple(sorted((s for s in set(secrets) if len(s) >= 4), key=len, reverse=True))
        self._encoded = tuple(s.encode() for s in self._secrets)

    def finds(self, text: str) -> bool:
        """True if a secret occurs in ``text``."""
        return any(s in text for s in self._secrets)

    def scrub(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        return text

    def scrub_bytes(self, data: _Bytes) -> _Bytes:
        """``scrub`` for raw bytes: one search per secret, and ``data`` itself when clean."""
        for s in self._encoded:
            if s in data:
                data = data.replace(s, _REDACTED_BYTES)
        return data

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.scrub(record.getMessage())
            record.args = None
            if record.exc_info:
                record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
            for k, v in list(vars(record).items()):
                if k not in _STD_ATTRS and isinstance(v, str):
                    setattr(record, k, self.scrub(v))
        return True


SCRUBBER = SecretScrubber()


# The level names lines carry: the words ``--log.level`` takes, so that a line can be
# matched with the flag's own value (``level=warn``), not Python's ``WARNING``.
LEVEL_NAMES = {logging.WARNING: "warn"}


def level_name(record: logging.LogRecord) -> str:
    return LEVEL_NAMES.get(record.levelno, record.levelname.lower())


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": level_name(record),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for k, v in vars(record).items():
        if k not in _STD_ATTRS and not k.startswith("_"):
            out[k] = v
    if record.exc_text:
        out["exc"] = record.exc_text
    elif record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


def _logfmt_value(v: Any) -> str:
    s = str(v)
    if s == "" or any(c in s for c in ' ="\n\t'):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return s


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    handler.addFilter(SCRUBBER)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at info level (every request, every job run) is noise for an exporter.
    for noisy in ("httpx", "httpcore", "apscheduler", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
