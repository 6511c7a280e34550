"""The JSON API under /api/v1: people, the 13710 workflow, the ledger."""
