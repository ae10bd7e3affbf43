"""Polling: daemon wiring, the target set, the poller, health and the store."""
