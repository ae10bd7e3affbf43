"""Golden builder of the relay: vendors' own Prometheus endpoints, relayed.

Fixtures:

- ``baseten_org.txt``: Baseten's organisation endpoint (the families and labels of
  vendor-prometheus-endpoints.md), relayed with the prefix its relay has by default;
- ``dedicated_endpoint.txt``: a generic endpoint written loosely (timestamps, a label
  that clashes with ``account``, a family without HELP, a summary, an untyped sample, a
  repeated series), relayed under its own names with the native namespaces reserved.
"""

from __future__ import annotations

from exporter.core.exposition import assemble
from exporter.sources.relay.names import BASETEN_ORG_PREFIX
from exporter.sources.relay.translate import RelayRules, relay
from tests.golden.replay import SCOPE, Fixtures

NATIVE_NAMESPACES = ("baseten_", "together_queue_", "together_finetune_", "together_probe_")


def build_relay(fx: Fixtures) -> bytes:
    org = relay(fx.raw("baseten_org.txt"), SCOPE, RelayRules(prefix=BASETEN_ORG_PREFIX))
    generic = relay(fx.raw("dedicated_endpoint.txt"), SCOPE, RelayRules(reserved=NATIVE_NAMESPACES))
    return assemble([org.rendered, generic.rendered])
