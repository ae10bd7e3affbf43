"""Config: several accounts per vendor, target labels and metric filters; every mistake
reported with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import load_config
from exporter.core.scope import DEFAULT_ACCOUNT
from exporter.engine.targets import build_targets
from exporter.upstream.api import Clients
from tests.helpers import problems, run_cli, write_yaml

TWO_ACCOUNTS = """\
together:
  accounts:
    - name: prod
      api_key_env: KEY_PROD
      labels: {team: platform}
      queues:
        - model: org/m
        - model: org/n
          labels: {team: search, tier: gold}
    - name: staging
      api_key_env: KEY_STAGING
      base_url: http://127.0.0.1:9/v1
      requests_per_second: 2
      queues:
        - model: org/m
baseten:
  api_key_env: KEY_BASETEN
  deployments:
    - {model_id: m1, deployment_id: d1}
"""


def write(tmp_path: Path, body: str) -> Path:
    return write_yaml(tmp_path, body, "c.yaml")


def located(tmp_path: Path, body: str) -> list[str]:
    """The problems of ``body`` as ``line: key: message``."""
    path = write(tmp_path, body)
    return [p.removeprefix(f"{path}:") for p in problems(path)]


def test_flat_form_is_one_account_named_default(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, "together:\n  api_key_env: K\n  queues: [{model: a/b}]\n"), read_secrets=False
    )
    assert cfg.config.together is not None
    [(path, account)] = cfg.config.together.account_list()
    assert path == ("together",) and account.name == DEFAULT_ACCOUNT
    [target] = build_targets(cfg.config, Clients())
    # The ids of single-account configs are the ones they always had (sharding keeps them).
    assert target.id == "together_queue/a/b" and target.account == "default"
    assert target.scope.extra == (("account", "default"),)


def test_flat_form_may_name_its_account(tmp_path: Path) -> None:
    body = "together:\n  name: prod\n  api_key_env: K\n  queues: [{model: a/b}]\n"
    [target] = build_targets(load_config(write(tmp_path, body), read_secrets=False).config, Clients())
    assert target.id == "together_queue@prod/a/b" and target.account == "prod"


def test_accounts_form_builds_distinct_targets_for_the_same_model(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, TWO_ACCOUNTS), read_secrets=False).config
    targets = {t.id: t for t in build_targets(cfg, Clients())}
    assert sorted(targets) == [
        "baseten/m1/d1",
        "together_queue@prod/org/m",
        "together_queue@prod/org/n",
        "together_queue@staging/org/m",
    ]
    # A target's labels override its account's; sorted by name, after the account.
    assert targets["together_queue@prod/org/m"].scope.extra == (("account", "prod"), ("team", "platform"))
    assert targets["together_queue@prod/org/n"].scope.extra == (
        ("account", "prod"),
        ("team", "search"),
        ("tier", "gold"),
    )
    assert targets["together_queue@staging/org/m"].scope.extra == (("account", "staging"),)


def test_each_account_has_its_own_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_PROD", "prod-key-1")
    monkeypatch.setenv("KEY_STAGING", "staging-key-2")
    monkeypatch.setenv("KEY_BASETEN", "baseten-key-3")
    loaded = load_config(write(tmp_path, TWO_ACCOUNTS))
    assert loaded.secrets == {
        ("together", "prod"): "prod-key-1",
        ("together", "staging"): "staging-key-2",
        ("baseten", "default"): "baseten-key-3",
    }


def test_an_unset_key_of_one_account_names_that_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEY_PROD", "prod-key-1")
    monkeypatch.setenv("KEY_BASETEN", "baseten-key-3")
    monkeypatch.delenv("KEY_STAGING", raising=False)
    path = write(tmp_path, TWO_ACCOUNTS)
    assert problems(path, read_secrets=True) == [
        f"{path}:11: together.accounts[1].api_key_env: environment variable KEY_STAGING is not set or empty"
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "together:\n  accounts:\n    - {name: a, api_key_env: K}\n    - {name: a, api_key_env: L}\n",
            ["4: together.accounts[1].name: duplicate account name 'a' (first at together.accounts[0].name)"],
        ),
        (
            "together:\n  accounts:\n    - name: a\n      queues: [{model: x/y}]\n",
            ["3: together.accounts[0]: an API key reference is required: api_key_env or api_key_file"],
        ),
        (
            "baseten:\n  accounts:\n    - {api_key_env: K}\n",
            ["3: baseten.accounts[0].name: required key is missing: each listed account has a name"],
        ),
        (
            "together:\n  api_key_env: K\n  accounts:\n    - {name: a, api_key_env: K}\n",
            [
                "2: together.api_key_env: with accounts: listed, api_key_env belongs in each account "
                "(the flat form is one account)"
            ],
        ),
        (
            "together:\n  accounts:\n    - {name: 'prod/eu', api_key_env: K}\n",
            [
                "3: together.accounts[0].name: 'prod/eu' is not an account name ('/' not allowed): "
                "1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit"
            ],
        ),
        (
            "together:\n  api_key_env: K\n  labels: {account: x}\n",
            [
                "3: together.labels.account: label 'account' clashes with a label the exporter sets itself; "
                "reserved: account, base_model, deployment_id, deployment_name, environment, instance, "
                "is_production, job, job_id, le, model, model_id, model_name, output_name, phase, "
                "quantile, reason, result, source, status, target and exported_*"
            ],
        ),
        (
            "together:\n  api_key_env: K\n  queues:\n    - model: a/b\n      labels: {__meta: x}\n",
            [
                "5: together.queues[0].labels.__meta: label '__meta': names starting with __ are reserved for Prometheus"
            ],
        ),
        (
            "baseten:\n  api_key_env: K\n  discovery:\n    - labels: {9lives: x}\n",
            [
                "4: baseten.discovery[0].labels.9lives: '9lives' is not a label name "
                "(letters, digits and _, not starting with a digit)"
            ],
        ),
        (
            "global:\n  metric_filter:\n    deny: ['together_(']\n",
            [
                "3: global.metric_filter.deny[0]: invalid regular expression 'together_(': "
                "missing ), unterminated subpattern at position 9"
            ],
        ),
        (
            "together:\n  api_key_env: K\n  metric_filter:\n    allow: ['together_(?!finetune).*']\n",
            [
                "4: together.metric_filter.allow[0]: 'together_(?!finetune).*': "
                "lookarounds are not in the RE2 syntax these expressions use"
            ],
        ),
    ],
)
def test_bad_accounts_labels_and_filters(tmp_path: Path, body: str, expected: list[str]) -> None:
    assert located(tmp_path, body) == expected


def test_duplicates_are_per_account(tmp_path: Path) -> None:
    body = (
        "together:\n  accounts:\n"
        "    - {name: a, api_key_env: K, queues: [{model: x/y}, {model: x/y}]}\n"
        "    - {name: b, api_key_env: K, queues: [{model: x/y}]}\n"
    )
    assert located(tmp_path, body) == [
        "3: together.accounts[0].queues[1].model: duplicate queue model 'x/y' (first at "
        "together.accounts[0].queues[0].model)"
    ]


def test_a_filter_that_removes_every_family_warns_with_its_line(tmp_path: Path) -> None:
    body = (
        "together:\n  accounts:\n"
        "    - name: a\n      api_key_env: K\n      queues: [{model: x/y}]\n"
        "      metric_filter:\n        deny: ['together_queue_.*']\n"
        "    - {name: b, api_key_env: K, queues: [{model: x/y}]}\n"
    )
    path = write(tmp_path, body)
    loaded = load_config(path, read_secrets=False)
    assert [str(w) for w in loaded.warnings] == [
        f"{path}:6: together.accounts[0].metric_filter: account 'a': the filter removes every family of its "
        "queues (together_queue_jobs_waiting, together_queue_jobs_running); they will export their health "
        "series only"
    ]
    res = run_cli("check-config", "--no-secrets", str(path))
    assert res.returncode == 0
    assert f"warning: {path}:6: together.accounts[0].metric_filter: account 'a'" in res.stderr


def test_a_global_allow_list_that_misses_baseten_warns_at_the_global_filter(tmp_path: Path) -> None:
    body = (
        "global:\n  metric_filter:\n    allow: ['together_.*']\n"
        "baseten:\n  api_key_env: K\n  deployments: [{model_id: m, deployment_id: d}]\n"
    )
    path = write(tmp_path, body)
    [warning] = load_config(path, read_secrets=False).warnings
    assert str(warning).startswith(f"{path}:2: global.metric_filter: account 'default': the filter removes ")
    assert "deployments[0]" in str(warning)


def test_watches_nothing_looks_into_every_account(tmp_path: Path) -> None:
    idle = "together:\n  accounts:\n    - {name: a, api_key_env: K}\n    - {name: b, api_key_env: K}\n"
    assert load_config(write(tmp_path, idle), read_secrets=False).config.watches_nothing()
    busy = idle.replace("{name: b, api_key_env: K}", "{name: b, api_key_env: K, queues: [{model: x/y}]}")
    assert not load_config(write(tmp_path, busy), read_secrets=False).config.watches_nothing()
