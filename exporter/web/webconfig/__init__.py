"""``--web.config.file``: TLS, basic auth, headers and a rate limit, in exporter-toolkit's format.

``model`` reads the file, ``tls`` builds an SSL context from it, ``site`` serves HTTPS
with the context current at each connection, ``auth`` checks passwords and rates, and
``security`` wires them into the HTTP server and its reloads.
"""

from exporter.web.webconfig.model import WebConfig, WebConfigError, load_web_config
from exporter.web.webconfig.security import WebSecurity

__all__ = ["WebConfig", "WebConfigError", "WebSecurity", "load_web_config"]
