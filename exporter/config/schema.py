"""The JSON Schema of the config file, derived from the config models.

Editors that speak the YAML language server complete and check keys with it (the
``# yaml-language-server: $schema=…`` comment at the top of ``config.example.yaml``).
It describes the shape of the file; rules that span fields (unique names, a timeout
shorter than its interval, which key each account needs) are checked by the loader.
"""

from __future__ import annotations

import json
from typing import Any

from exporter.config.model import Config

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _without_null_sections(node: Any) -> Any:
    """``anyOf: [section, null]`` written as the section alone: with the null branch an
    editor reports a misspelt key inside a section as "is not of type null". A section
    left empty is still accepted by the loader; the schema just does not suggest it."""
    if isinstance(node, list):
        return [_without_null_sections(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _without_null_sections(v) for k, v in node.items()}
    members = out.get("anyOf")
    if isinstance(members, list) and len(members) == 2 and {"type": "null"} in members:
        (section,) = [m for m in members if m != {"type": "null"}]
        if "$ref" in section:
            del out["anyOf"]
            out.pop("default", None)
            out.update(section)
    return out


def config_schema() -> dict[str, Any]:
    schema = _without_null_sections(Config.model_json_schema(by_alias=True, mode="validation"))
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "inference-exporter config",
        "description": "The YAML config file of inference-exporter (--config.file).",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text() -> str:
    """The schema as committed in ``config.schema.json``."""
    return json.dumps(config_schema(), indent=2, sort_keys=False) + "\n"
