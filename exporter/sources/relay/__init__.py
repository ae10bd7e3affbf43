"""Relaying a vendor's own Prometheus endpoint: one fetch per interval serves every scrape.

``translate`` reads a body in the text format 0.0.4 and renders it, relabelled, for a
target (what is kept of a body and why is in its docstring); ``lines`` is the grammar,
``labels`` the ``honor_labels: false`` relabelling, ``names`` the prefix and the
collision rule, ``rules`` a relay's settings and result; ``target`` fetches the
endpoint. All but ``target`` are pure.
"""
