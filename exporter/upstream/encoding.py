"""Content codings (RFC 9110 §8.4): which one a scraper accepts, and undoing a vendor's.

A scraper's ``Accept-Encoding`` header (§12.5.3): coding names are case-insensitive,
each may carry a weight (``q=0`` means "not acceptable"), ``*`` stands for every coding
not named, and ``x-gzip`` is ``gzip``. Only gzip is offered besides the uncompressed
identity coding.

A vendor's answer: its ``Content-Encoding`` is undone here, in bounded pieces counted
against the body cap as they are produced (:class:`BodyDecoder`), never by the HTTP
library, which would decode a whole chunk at once however large it expands.
"""

from __future__ import annotations

import re
from typing import cast

from isal import isal_zlib

# A weight is 0 to 1 with at most three decimals (RFC 9110 §12.4.2).
_QVALUE = re.compile(r"^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$")


def coding_weights(header: str) -> dict[str, float]:
    """Each coding the header names, lower-cased, with its weight (1 when none is given).

    An element whose weight is malformed is left out, as if it were not there; when a
    coding is named twice, the first one counts.
    """
    weights: dict[str, float] = {}
    for element in header.split(","):
        name, *params = (part.strip() for part in element.split(";"))
        if not name:
            continue
        weight: float | None = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                value = value.strip()
                weight = float(value) if _QVALUE.match(value) else None
        if weight is not None:
            weights.setdefault(name.lower(), weight)
    return weights


def accepts_gzip(header: str | None) -> bool:
    """True when gzip is acceptable and not less preferred than the uncompressed form.

    No header, or an empty one, asks for no coding. When the scraper accepts neither
    gzip nor identity (``*;q=0``), the answer is uncompressed: RFC 9110 lets a server
    answer without a coding rather than fail the scrape.
    """
    if not header:
        return False
    weights = coding_weights(header)
    gzip = weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0)))
    # Identity is acceptable unless excluded, but only a weight written for it (or
    # for ``*``) ranks it against gzip; ties go to gzip.
    identity = weights.get("identity", weights.get("*"))
    return gzip > 0 and (identity is None or gzip >= identity)


# --- Undoing a vendor answer's content coding ------------------------------------------

# What vendor requests say they accept: exactly the codings BodyDecoder undoes.
VENDOR_ACCEPT_ENCODING = "gzip, deflate"
# The codings a vendor answer may come in, each with the window bits that undo it (gzip
# and zlib wrappers; "deflate" is the zlib format, raw deflate is tried when that fails).
_WBITS = {
    "gzip": 16 + isal_zlib.MAX_WBITS,
    "x-gzip": 16 + isal_zlib.MAX_WBITS,
    "deflate": isal_zlib.MAX_WBITS,
}
_RAW_DEFLATE = -isal_zlib.MAX_WBITS
# What the decompressor raises for data it cannot decode (its stubs call it an instance).
_CORRUPT = cast("type[Exception]", isal_zlib.error)
# Most decoded bytes one call into the decompressor may produce: the cap is checked
# after each piece, so this is all a body can hold past it.
DECODE_STEP = 64 * 1024
# Longest part of a refused Content-Encoding header quoted in the detail.
_QUOTE_LIMIT = 64


class UndecodableBody(Exception):
    """An answer whose content coding cannot or will not be undone.

    ``reason`` is the poll's failure reason: ``unsupported_encoding`` for a coding not
    offered (unknown, or several stacked), ``invalid_response`` for data that is not
    what its coding says.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def content_coding(header: str | None) -> str:
    """The one coding named by a ``Content-Encoding`` header ("identity" for none).

    Only what the exporter asks for (gzip, deflate) is accepted, and only one of them:
    each coding undone multiplies what a byte on the wire can become, so a stack of two
    lets a few kilobytes become gigabytes before any cap can look at them.
    """
    if not header:
        return "identity"
    codings = [c for c in (part.strip().lower() for part in header.split(",")) if c and c != "identity"]
    if not codings:
        return "identity"
    quoted = repr(header[:_QUOTE_LIMIT])
    if len(codings) > 1:
        raise UndecodableBody(
            "unsupported_encoding", f"Content-Encoding {quoted}: stacked codings are refused"
        )
    if codings[0] not in _WBITS:
        raise UndecodableBody(
            "unsupported_encoding", f"Content-Encoding {quoted} is not one of identity, gzip, deflate"
        )
    return codings[0]


class BodyDecoder:
    """Gathers an answer's body as it arrives, undoing its coding, up to a cap.

    Decoded bytes are produced in pieces of at most ``DECODE_STEP`` and never past
    ``limit + 1`` in all (one byte past the cap tells that the body is too large), so
    memory and time are bounded by the cap whatever the compressed bytes expand to.
    The bytes on the wire count against the cap too: compressed data that decodes to
    little or nothing (empty gzip members, one after the other) cannot go on forever.
    """

    def __init__(self, coding: str, limit: int) -> None:
        self.body = bytearray()
        self.coding = coding
        self._limit = limit
        self._wire = 0
        self._wbits = _WBITS.get(coding)
        self._inflate = isal_zlib.decompressobj(self._wbits) if self._wbits is not None else None
        self._started = False

    @property
    def over(self) -> bool:
        """True once the decoded body, or what came over the wire, is past the cap."""
        return len(self.body) > self._limit or self._wire > self._limit

    def feed(self, data: bytes) -> bool:
        """Take the next bytes off the wire; False once the body is past the cap (stop reading)."""
        if self._inflate is None:
            self.body += data
        else:
            self._wire += len(data)
            self._inflate_all(data)
        return not self.over

    def _inflate_all(self, data: bytes) -> None:
        while not self.over:
            step = min(DECODE_STEP, self._limit + 1 - len(self.body))
            out = self._decompress(data, step)
            self.body += out
            inflate = self._inflate
            assert inflate is not None
            if inflate.eof:
                data = inflate.unused_data
                if not data or self._wbits != _WBITS["gzip"]:
                    return  # what follows a zlib stream is not part of it
                # Another gzip member: one body may be several, one after the other.
                self._inflate = isal_zlib.decompressobj(self._wbits)
                continue
            tail = inflate.unconsumed_tail
            # A full piece may leave output pending inside the decompressor: ask again,
            # as long as each call makes progress.
            if (not tail and len(out) < step) or (not out and len(tail) == len(data)):
                return
            data = tail

    def _decompress(self, data: bytes, step: int) -> bytes:
        inflate = self._inflate
        assert inflate is not None
        first = not self._started
        self._started = True
        try:
            return inflate.decompress(data, step)
        except _CORRUPT:
            if not (first and self.coding == "deflate"):
                raise UndecodableBody("invalid_response", f"the {self.coding} body is corrupt") from None
        # Some servers send "deflate" as raw deflate data, without the zlib wrapper.
        self._wbits = _RAW_DEFLATE
        self._inflate = isal_zlib.decompressobj(_RAW_DEFLATE)
        return self._decompress(data, step)
