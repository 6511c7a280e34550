"""The government tree: ids and levels, routing, permissions, enrollment and keys."""
