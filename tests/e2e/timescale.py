"""Alert rules on a faster clock, for a story the simulator plays ``speed`` times as fast.

Every time a rule holds or looks back over is divided by the speed: ``for:``, range
selectors, ``predict_linear``'s horizon and an age compared with ``time()``. A rule then
sees the faster story as the original sees it at the story's own pace.
"""

from __future__ import annotations

import re
from typing import Any

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
RANGE = re.compile(r"\[(\w+)\]")
HORIZON = re.compile(r"(predict_linear\([^\[]*\[\w+\], )(\d+)\)")
AGE = re.compile(r"(time\(\) - \w+ > )(\d+)")


def seconds(duration: str) -> float:
    """A Prometheus duration (``1h30m``, ``500ms``) in seconds."""
    parts = DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * UNITS[u] for n, u in parts)


def faster(duration: str, speed: float) -> str:
    return f"{max(1, round(seconds(duration) * 1000 / speed))}ms"


def expr_faster(expr: str, speed: float) -> str:
    expr = RANGE.sub(lambda m: f"[{faster(m.group(1), speed)}]", expr)
    expr = HORIZON.sub(lambda m: f"{m.group(1)}{int(m.group(2)) / speed:g})", expr)
    return AGE.sub(lambda m: f"{m.group(1)}{int(m.group(2)) / speed:g}", expr)


def rules_faster(doc: dict[str, Any], speed: float) -> dict[str, Any]:
    """A rule file (as data) with its times divided by ``speed``."""
    groups = []
    for g in doc["groups"]:
        rules = []
        for rule in g["rules"]:
            rule = {**rule, "expr": expr_faster(str(rule["expr"]), speed)}
            if "for" in rule:
                rule["for"] = faster(str(rule["for"]), speed)
            rules.append(rule)
        groups.append({**g, "rules": rules})
    return {**doc, "groups": groups}
