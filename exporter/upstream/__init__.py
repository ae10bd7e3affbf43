"""The one request path to the vendors: clients, retry, budgets, decoding and failure reasons."""
