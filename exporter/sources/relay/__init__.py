"""Relaying a vendor's own Prometheus endpoint: one fetch per interval serves every scrape.

A relay is not a vendor but a kind of target any vendor's account may have (Baseten's
``organisation_metrics``, every account's ``prometheus_endpoints``): fetched with the
account's key and client, in its scope and request budget.

``translate`` reads a body in the text format 0.0.4 and renders it, relabelled, for a
target (what is kept of a body and why is in its docstring); ``lines`` is the grammar,
``labels`` the ``honor_labels: false`` relabelling, ``names`` the prefix and the
collision rule, ``rules`` a relay's settings and result, ``config`` its keys in an
account and their checks; ``target`` fetches the endpoint, ``build`` makes a target
from its keys, ``stats`` are the relays' self-metrics. ``config``, ``lines``,
``labels``, ``names``, ``rules`` and ``translate`` are pure (checked by the import
contracts in pyproject.toml).
"""
