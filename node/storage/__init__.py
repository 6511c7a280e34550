"""Storage: one schema, SQLite (embedded default) or PostgreSQL chosen by URL."""
