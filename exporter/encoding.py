"""Which content coding a scraper accepts, from its ``Accept-Encoding`` header (RFC 9110 §12.5.3).

Coding names are case-insensitive, each may carry a weight (``q=0`` means "not
acceptable"), ``*`` stands for every coding not named, and ``x-gzip`` is ``gzip``.
Only gzip is offered besides the uncompressed identity coding.
"""

from __future__ import annotations

import re

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
