"""The JSON Schema of the config file, derived from the config models.

Editors that speak the YAML language server complete and check keys with it (the
``# yaml-language-server: $schema=…`` comment at the top of ``config.example.yaml``).
It describes the shape of the file; rules that span fields (unique names, a timeout
shorter than its interval, which key each account needs) are checked by the loader.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from exporter.config.model import Config, ConfigBase
from exporter.configkit.common import reserve_in_schema

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


def _titled_models(model: type[BaseModel], seen: dict[str, str]) -> dict[str, str]:
    """Class name → title of every model below ``model`` whose title is not its class name."""
    for info in model.model_fields.values():
        for arg in _types_in(info.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg.__name__ not in seen:
                title = arg.model_config.get("title") or arg.__name__
                seen[arg.__name__] = title
                _titled_models(arg, seen)
    return {name: title for name, title in seen.items() if name != title}


def _types_in(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    return [annotation] if not args else [t for a in args for t in _types_in(a)]


def _named_by_title(model: type[BaseModel]) -> type[GenerateJsonSchema]:
    """A schema generator that names each model's definition by its title: a model
    renamed in the code keeps the name the schema has always given it."""
    titles = _titled_models(model, {})

    class ByTitle(GenerateJsonSchema):
        def normalize_name(self, name: str) -> str:
            return super().normalize_name(titles.get(name, name))

    return ByTitle


def config_schema(model: type[ConfigBase] = Config) -> dict[str, Any]:
    generated = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_named_by_title(model)
    )
    schema = _without_null_sections(reserve_in_schema(generated, model.registry.reserved_labels))
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "inference-exporter config",
        "description": "The YAML config file of inference-exporter (--config.file).",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text() -> str:
    """The schema as committed in ``config.schema.json``."""
    return json.dumps(config_schema(), indent=2, sort_keys=False) + "\n"
