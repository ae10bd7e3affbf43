"""The monitoring mixin: Grafana dashboards, Prometheus alert rules and SLO rules, generated
from Python.

``python -m mixin`` writes ``grafana/dashboards/*.json``, ``prometheus/alerts.yaml`` and
``prometheus/slos.yaml``; ``python -m mixin --check`` exits 1 when the committed files differ
from what the code generates. Thresholds and objectives live in one place,
:class:`mixin.config.MixinConfig`, so a dashboard's threshold line and the alert that fires on
it never disagree; ``--set NAME=VALUE`` overrides one for a run.
"""
