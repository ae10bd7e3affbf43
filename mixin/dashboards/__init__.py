"""One module per dashboard; each exposes ``UID``, ``FILENAME`` and ``build(cfg) -> Dashboard``."""
