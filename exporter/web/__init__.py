"""The exporter's HTTP side: server, connection guard, pages and the web config."""
