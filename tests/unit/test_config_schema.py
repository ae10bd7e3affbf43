"""The config's JSON Schema: derived from the models, committed, and what the shipped configs follow."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from exporter.config.schema import schema_text
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "config.schema.json"


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_is_up_to_date() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == schema_text(), (
        "config.schema.json is out of date: run `inference-exporter config-schema > config.schema.json`"
    )


def test_cli_prints_the_schema() -> None:
    res = run_cli("config-schema")
    assert res.returncode == 0 and res.stdout == schema_text()


@pytest.mark.parametrize("name", ["config.example.yaml", "exporter/demo/demo.yaml"])
def test_shipped_configs_follow_the_schema(name: str) -> None:
    doc = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator().iter_errors(doc)]
    assert errors == []


def test_example_names_the_schema_on_its_first_line() -> None:
    first = (REPO / "config.example.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=./config.schema.json"


@pytest.mark.parametrize(
    "doc",
    [
        {"together": {"api_key_env": "K", "queus": []}},  # a typo
        {"global": {"poll_interval": "30 seconds"}},
        {"together": {"accounts": [{"name": "a/b", "api_key_env": "K"}]}},
        {"baseten": {"api_key_env": "K", "metric_filter": {"allow": "x"}}},
        {"together": {"api_key_env": "K", "labels": {"team": 1}}},
        {"together": {"api_key_env": "K", "labels": {"team-name": "x"}}},  # not a label name
        {"together": {"api_key_env": "K", "labels": {"account": "x"}}},  # set by the exporter
        {"baseten": {"api_key_env": "K", "discovery": [{"labels": {"__meta": "x"}}]}},
        {"baseten": {"api_key_env": "K", "labels": {"exported_job": "x"}}},
    ],
)
def test_schema_catches_what_editors_should_flag(doc: dict[str, Any]) -> None:
    assert not validator().is_valid(doc)


def test_schema_accepts_both_forms_and_durations() -> None:
    v = validator()
    assert v.is_valid({"global": {"poll_interval": "1m30s", "timeout": 5}, "together": {"api_key_env": "K"}})
    assert v.is_valid({"global": {"poll_interval": "30", "timeout": "2.5"}})
    assert v.is_valid(
        {"together": {"accounts": [{"name": "prod", "api_key_env": "K", "labels": {"t": "x"}}]}}
    )


def test_a_typo_in_a_section_is_reported_as_a_typo_not_as_null() -> None:
    error = jsonschema.exceptions.best_match(
        validator().iter_errors({"together": {"api_key_env": "K", "queus": []}})
    )
    assert error is not None
    assert "null" not in error.message
    assert "'queus' was unexpected" in error.message


def test_no_section_is_offered_as_null() -> None:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    for section in ("together", "baseten"):
        assert "anyOf" not in schema["properties"][section]


def test_the_example_says_how_to_get_the_schema_beside_a_copy() -> None:
    head = (REPO / "config.example.yaml").read_text(encoding="utf-8").splitlines()[:4]
    assert "#   inference-exporter config-schema > config.schema.json" in head


def _key_names(node: Any) -> set[str]:
    """Every property name anywhere in a JSON Schema."""
    if isinstance(node, dict):
        found = set(node.get("properties", {}))
        for value in node.values():
            found |= _key_names(value)
        return found
    if isinstance(node, list):
        return set().union(*(_key_names(value) for value in node))
    return set()


def test_every_key_is_in_the_docs_table_and_the_example() -> None:
    # The table of docs/configuration.md and config.example.yaml each claim every key;
    # a key added to the models without a row or an example line fails here.
    names = _key_names(json.loads(COMMITTED.read_text(encoding="utf-8")))
    docs = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = docs.split("\n## Configuration keys\n", 1)[1].split("\n## ", 1)[0]
    rows = " ".join(line.split(" | ")[0] for line in table.splitlines() if line.startswith("| "))
    example = (REPO / "config.example.yaml").read_text(encoding="utf-8")
    missing_docs = sorted(n for n in names if not re.search(rf"[`.…]{n}(\[\])?[`.]", rows))
    missing_example = sorted(n for n in names if not re.search(rf"^[\s#-]*{n}:", example, re.M))
    assert (missing_docs, missing_example) == ([], [])
