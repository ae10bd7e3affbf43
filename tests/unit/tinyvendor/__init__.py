"""A vendor made from the contract alone (``exporter.sources.contract``), as a new one would be.

"Tiny" has gauges, each read with ``GET /v1/gauges/{name}`` (``{"level": <number>}``):
a config section (``config``), a target and its family (``target``), and the
declaration that plugs them in (``plugin``). Nothing outside this package knows it;
tests/unit/test_vendor_contract.py registers it and runs it from a config file to
``/metrics``.
"""
