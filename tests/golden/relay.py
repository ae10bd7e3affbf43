"""Golden builders of the relay: vendors' own Prometheus endpoints, relayed.

Fixtures:

- ``baseten_relay/org_metrics.txt``: Baseten's organisation endpoint (the families and
  labels of vendor-prometheus-endpoints.md), relayed with the prefix its relay has by
  default;
- ``together_relay/dedicated_endpoint_metrics.txt``: a generic endpoint written loosely
  (timestamps, a label that clashes with ``account``, a family without HELP, a summary,
  an untyped sample, a repeated series), relayed under its own names with the native
  namespaces reserved.
"""

from __future__ import annotations

from exporter.sources.relay.names import BASETEN_ORG_PREFIX
from exporter.sources.relay.rules import RelayRules
from exporter.sources.relay.translate import relay
from tests.golden.replay import SCOPE, Fixtures
from tests.helpers import exposition

NATIVE_NAMESPACES = ("baseten_", "together_queue_", "together_finetune_", "together_probe_")


def build_baseten_relay(fx: Fixtures) -> bytes:
    body = fx.raw("org_metrics.txt")
    return exposition([relay(body, SCOPE, RelayRules(prefix=BASETEN_ORG_PREFIX)).rendered])


def build_together_relay(fx: Fixtures) -> bytes:
    body = fx.raw("dedicated_endpoint_metrics.txt")
    return exposition([relay(body, SCOPE, RelayRules(reserved=NATIVE_NAMESPACES)).rendered])
