"""The running node: storage, sync, HTTP API, pages, reminders, CLI."""
