"""What the HTTP layer's handlers are given: each service of the node under its own
typed key (aiohttp's ``web.AppKey``), set once by ``create_app`` (node/app.py) when
the node opens, and read by a handler as ``request.app[WORKFLOW]``.

A handler names the services it uses, one key each; there is no object holding the
whole node, and nothing here is built or changed after start. Keys of one area
only (the replay guard, the login limiter) stay beside their handlers.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from node.background import Background
from node.clock import Clock
from node.config import Config
from node.items.materialiser import SyncActivity
from node.queries.assemble import Reports
from node.queries.figures import Figures
from node.queries.ledger import Ledger
from node.queries.messages import Messages
from node.queries.rollup import Rollup
from node.queries.todo import Todo
from node.storage.accounts import Accounts
from node.storage.db import Database
from node.storage.events import EventLog
from node.sync.ingest import Ingestor
from node.sync.outbox import Outbox
from node.sync.presence import Presence
from node.sync.routing import KnownTree
from node.workflow.actions import Workflow
from node.workflow.cascade import Cascade
from protocol.keys import SigningKey

CONFIG = web.AppKey("config", Config)
CLOCK = web.AppKey("clock", Clock)
DB = web.AppKey("db", Database)
KEY = web.AppKey("key", SigningKey)
TREE = web.AppKey("tree", KnownTree)
"""This node's id and the tree its certificates draw (``.me``, ``.trust``, paths)."""
EVENTS = web.AppKey("events", EventLog)
OUTBOX = web.AppKey("outbox", Outbox)
INGESTOR = web.AppKey("ingestor", Ingestor)
ACCOUNTS = web.AppKey("accounts", Accounts)
WORKFLOW = web.AppKey("workflow", Workflow)
CASCADE = web.AppKey("cascade", Cascade)
"""Passes cascade items down (node/workflow/cascade.py): by a person, or by the policy."""
PRESENCE = web.AppKey("presence", Presence)
ACTIVITY = web.AppKey("activity", SyncActivity)
BACKGROUND = web.AppKey("background", Background)
STOPPING = web.AppKey("stopping", asyncio.Event)
"""Set when the node stops: long-polls answer at once."""
LEDGER = web.AppKey("ledger", Ledger)
"""The ledger's reads: items in scope, and how fresh each node's mirror is."""
REPORTS = web.AppKey("reports", Reports)
"""Colour counts, the weekly and quarterly reports, scores, the ledger as Excel."""
ROLLUP = web.AppKey("rollup", Rollup)
"""An item's whole subtree of sub-items summed up (node/queries/rollup.py)."""
FIGURES = web.AppKey("figures", Figures)
"""The tree page's and the command board's figures, from the page tallies."""
TODO = web.AppKey("todo", Todo)
"""What waits for each person here (node/queries/todo.py): the to-do and its count."""
MESSAGES = web.AppKey("messages", Messages)
"""The message centre: the reminders that reached each person, read and unread."""
