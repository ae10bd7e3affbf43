"""inference-exporter: a Prometheus exporter for hosted inference platforms."""

__version__ = "0.1.0"
