"""The monitoring mixin: Grafana dashboards and Prometheus alert rules, generated from Python.

``python -m mixin`` writes ``grafana/dashboards/*.json`` and ``prometheus/alerts.yaml``;
``python -m mixin --check`` exits 1 when the committed files differ from what the code
generates. Thresholds live in one place, :class:`mixin.config.MixinConfig`, so a dashboard's
threshold line and the alert that fires on it never disagree.
"""
