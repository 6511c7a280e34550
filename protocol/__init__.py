"""Duban's protocol core: pure functions over bytes and values.

Nothing in this package performs I/O or imports asyncio, aiohttp or
SQLAlchemy; the node is the I/O shell around it.
"""
