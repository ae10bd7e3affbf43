"""inference-exporter: a Prometheus exporter for hosted inference platforms."""

# The one place the version is written: pyproject.toml reads it from here, and
# scripts/set_version.py writes its copies (image tags, the Helm chart, links to the
# documentation of the version, tagged vX.Y.Z). docs/development.md, "Releases".
__version__ = "0.1.0"

import sys

# httpx imports its command-line client (click, rich, pygments: some 6 MB of a daemon's
# memory) whenever those happen to be installed, as development tools pull them in; the
# image has none of them, so there the import fails and httpx goes on without it. The
# exporter never runs that client: the import fails here too, as it does in the image.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
