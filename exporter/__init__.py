"""inference-exporter: a Prometheus exporter for hosted inference platforms."""

# The one place the version is written: pyproject.toml reads it from here, and
# scripts/set_version.py writes its copies (image tags, the Helm chart, links to the
# documentation of the version, tagged vX.Y.Z). docs/development.md, "Releases".
__version__ = "0.1.0"
