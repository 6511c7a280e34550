"""Alembic migrations of the node schema (driven from node.storage.db, no alembic.ini)."""
