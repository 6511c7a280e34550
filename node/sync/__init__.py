"""Sync: durable outboxes per link, the child-driven loop, and the sync endpoints."""
