"""A fake of the Together and Baseten APIs, served on loopback.

Used by ``inference-exporter demo``, by the tests and by the benchmarks. It speaks the
vendors' documented contracts (tests validate its answers against their schemas) and
can be scripted through ``/_sim/…`` endpoints: scenarios such as a growing backlog.
"""
