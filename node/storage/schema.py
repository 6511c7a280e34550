"""The node's tables (SQLAlchemy Core). Every change here needs an Alembic revision.

- ``events``: every accepted event as its exact envelope bytes, in local arrival
  order (``pos``). Item events also carry their header columns for routing and
  folding; trust records (certificates, revocations) have no origin sequence.
- ``routes``: the durable outboxes. One row per (link, event) that must travel
  over that link: ``"parent"`` for upward, a child node id for downward. A
  link's outbox is its routes after the receiver's cursor, in ``pos`` order.
- ``links``: per link, the cursors (what the other side has durably applied of
  ours, and what we have applied of theirs), last contact and the last error.
- ``refused``: events refused on receipt, kept with their reason for audit.
- ``items``: items materialised from the fold, with the columns ledgers filter on.
- ``meta``: small key/value facts about this node (identity, own sequence...).
- ``node_seen``: per origin node, the newest of its events we hold and when it
  arrived: how fresh our mirror of that node is.
- ``users``, ``credentials``: people of this node, their roles, hashed
  passwords and hashed bearer tokens / session ids.
- ``units``: the node's general office and departments.
- ``attachments``: content-addressed files referenced by feedback, uploaded here or
  received from a child (``source``).
- ``item_files``: which item's report names which file, with the signed name, size
  and type: what an upload from a child is checked against, and who may open it.
- ``blob_queue``, ``blob_parts``: files waiting to go up a link, and the chunks of
  files still arriving from a child (docs/sync.md, "Attachments").
- ``node_units``: each subtree node's unit list, as that node signed it.
- ``reminders``, ``reminder_messages``: the durable reminder schedule (one row
  per reminder that fell due, keyed by item, deadline, milestone, kind and due
  time) and its per-recipient, per-channel deliveries (docs/reminders.md).
- ``item_facts``, ``tally_*``, ``score_*``: the page tallies, counts kept beside
  the item rows so the tree page and the command board never scan items
  (``node.items.tallies``, docs/pages.md "Scale"). Derived data.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite needs INTEGER (not BIGINT) for an autoincrementing rowid alias.
Pos = BigInteger().with_variant(Integer(), "sqlite")
# Tree paths compare bytewise (prefix ranges) on both databases.
Path = String(512).with_variant(String(512, collation="C"), "postgresql")

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("pos", Pos, primary_key=True, autoincrement=True),
    Column("event_id", LargeBinary(32), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("origin", String(64)),
    Column("origin_seq", BigInteger),
    Column("lamport", BigInteger),
    Column("item_id", String(96)),
    Column("to_node", String(64)),
    Column("source", String(64), nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    UniqueConstraint("origin", "origin_seq", name="uq_events_origin_seq"),
)
Index("ix_events_item", events.c.item_id, events.c.pos)

routes = Table(
    "routes",
    metadata,
    Column("link", String(64), nullable=False),
    Column("pos", BigInteger, nullable=False),
    PrimaryKeyConstraint("link", "pos", name="pk_routes"),
)

links = Table(
    "links",
    metadata,
    Column("link", String(64), primary_key=True),
    # Highest pos of ours the other side has durably applied (outbox cursor).
    Column("acked_pos", BigInteger, nullable=False, default=0),
    # Highest pos of theirs we have durably applied (inbox cursor).
    Column("applied_pos", BigInteger, nullable=False, default=0),
    Column("last_contact", BigInteger),
    Column("last_error", Text),
    Column("last_error_at", BigInteger),
    Column("failures", Integer, nullable=False, default=0),
    # The other side's stream epoch; a new epoch (a restored node) resets applied_pos.
    Column("peer_epoch", LargeBinary(16)),
    # Events the child said were still waiting in its outbox after its last push.
    Column("peer_pending", BigInteger),
    # Refused events from this link pruned to keep within the quota (docs/sync.md).
    Column("refused_dropped", BigInteger, nullable=False, default=0, server_default="0"),
)

refused = Table(
    "refused",
    metadata,
    Column("id", Pos, primary_key=True, autoincrement=True),
    Column("event_id", LargeBinary(32)),
    Column("type", String(64)),
    Column("source", String(64), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("received_at", BigInteger, nullable=False),
    Column("raw", LargeBinary, nullable=False),
)
# A link's refused events, oldest first: pruning to the quota reads this.
Index("ix_refused_source", refused.c.source, refused.c.id)

items = Table(
    "items",
    metadata,
    Column("item_id", String(96), primary_key=True),
    Column("assigner", String(64), nullable=False),
    Column("assignee", String(64), nullable=False),
    Column("assignee_unit", String(64)),
    Column("lead_unit", String(64)),
    Column("parent_item", String(96)),
    Column("board", String(32), nullable=False),
    Column("class", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("deploy_due", BigInteger),
    Column("feedback_due", BigInteger),
    Column("resolve_due", BigInteger),
    Column("progress", Integer, nullable=False, default=0),
    Column("assigned_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("done", Boolean, nullable=False, default=False),
    Column("state", LargeBinary, nullable=False),
    # The assignee's path from the root, "14/1401/140101/": a subtree is a prefix range.
    Column("assignee_path", Path, nullable=False, default=""),
    # When the item turns yellow / red if nothing more happens (None: never).
    Column("yellow_from", BigInteger),
    Column("red_from", BigInteger),
    Column("search_text", Text, nullable=False, default=""),
    # The level the item goes down to (Assigned.cascade), None when it does not cascade.
    Column("cascade", String(32)),
    # Urges (催办) on the item: how many, and the last one's time and signing node.
    Column("urges", Integer, nullable=False, default=0),
    Column("last_urged_at", BigInteger),
    Column("last_urged_by", String(64)),
    # What waits on a person besides the deadlines (the to-do, node/queries/todo.py): the
    # pending extension request's time, the oldest unanswered instruction's time, the first
    # urge since the handling node's last feedback; None when nothing waits.
    Column("extension_asked_at", BigInteger),
    Column("instruction_open_at", BigInteger),
    Column("urge_open_at", BigInteger),
    # When the next monthly progress report is due under an approved plan (None: none owed).
    Column("monthly_due", BigInteger),
    # The closing grade (评价) the accepting review signed; None before (revision 0011).
    Column("grade", String(16)),
)
# The ledger's access paths (node/queries/ledger.py; docs/performance.md, "Ledger"). The
# ledger's cheap filter columns ride along in the wide indexes, so filters are checked
# in the index and a table row is read only for an item on the page.
_c = items.c
_filters = (_c.yellow_from, _c.red_from, _c.status, _c.board, _c.lead_unit, _c.assignee_unit)
# A subtree: its path range.
Index("ix_items_path", _c.assignee_path, _c.resolve_due, _c.item_id, _c.done, *_filters)
# Every item in deadline order; open (or done) items alone in deadline order.
Index("ix_items_due", _c.resolve_due, _c.item_id, _c.assignee_path, _c.done, *_filters)
Index("ix_items_open", _c.done, _c.resolve_due, _c.item_id, _c.assignee_path, *_filters)
# The other sort orders.
Index("ix_items_updated", _c.updated_at, _c.item_id, _c.assignee_path, _c.status, _c.done)
Index("ix_items_assigned", _c.assigned_at, _c.item_id, _c.assignee_path, _c.status, _c.done)
Index("ix_items_progress", _c.progress, _c.item_id, _c.assignee_path, _c.status, _c.done)
# One node's own items (depth=node, the reminder scheduler), in deadline order.
Index("ix_items_assignee", _c.assignee, _c.resolve_due, _c.item_id, _c.done, _c.status)
Index("ix_items_parent", items.c.parent_item)
# The items one node assigned, open ones apart, by status (the to-do's assigner side).
Index("ix_items_assigner", _c.assigner, _c.done, _c.status, _c.item_id)

node_seen = Table(
    "node_seen",
    metadata,
    Column("node", String(64), primary_key=True),
    Column("max_seq", BigInteger, nullable=False),
    Column("last_event_at", BigInteger, nullable=False),
    Column("last_received_at", BigInteger, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Pos, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("display_name", Text, nullable=False, default=""),
    Column("role", String(16), nullable=False),
    Column("unit", String(64)),
    Column("password_hash", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    # Contact details for reminders (SMS, email); None when not given.
    Column("phone", String(32)),
    Column("email", String(254)),
)

credentials = Table(
    "credentials",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("last_used_at", BigInteger),
)
Index("ix_credentials_user", credentials.c.user_id)

units = Table(
    "units",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("office", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
)

attachments = Table(
    "attachments",
    metadata,
    Column("digest", LargeBinary(32), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(128), nullable=False),
    Column("filename", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    # The person (users.id) whose upload stored it first: their attachment quota.
    Column("uploaded_by", Integer),
    # The child link it arrived from; None for a file uploaded at this node.
    Column("source", String(64)),
)
# Covering: one person's bytes, and the node's, are summed from the index alone.
Index("ix_attachments_uploader", attachments.c.uploaded_by, attachments.c.size)

item_files = Table(
    "item_files",
    metadata,
    Column("digest", LargeBinary(32), nullable=False),
    Column("item_id", String(96), nullable=False),
    Column("name", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(128), nullable=False),
    PrimaryKeyConstraint("digest", "item_id", name="pk_item_files"),
)
Index("ix_item_files_item", item_files.c.item_id)

blob_queue = Table(
    "blob_queue",
    metadata,
    Column("link", String(64), nullable=False),
    Column("digest", LargeBinary(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    # The position of the event that named it: it goes once the link has that event.
    Column("pos", BigInteger, nullable=False),
    Column("queued_at", BigInteger, nullable=False),
    # Why the other side refused it for good (None: still to send).
    Column("refused", String(64)),
    Column("refused_detail", Text),
    Column("refused_at", BigInteger),
    PrimaryKeyConstraint("link", "digest", name="pk_blob_queue"),
)
Index("ix_blob_queue_link", blob_queue.c.link, blob_queue.c.pos)

blob_parts = Table(
    "blob_parts",
    metadata,
    Column("digest", LargeBinary(32), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("source", String(64), nullable=False),
    Column("received_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("digest", "offset", name="pk_blob_parts"),
)

node_units = Table(
    "node_units",
    metadata,
    Column("node", String(64), primary_key=True),
    Column("version", BigInteger, nullable=False),
    # [[code, name, office], ...] as the node signed it.
    Column("units", Text, nullable=False),
    Column("signed_at", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    # The signed record itself, forwarded up unchanged.
    Column("raw", LargeBinary, nullable=False),
)

reminders = Table(
    "reminders",
    metadata,
    Column("id", Pos, primary_key=True, autoincrement=True),
    Column("item_id", String(96), nullable=False),
    Column("deadline", String(16), nullable=False),
    # The plan milestone's index; -1 for deploy/feedback/resolve (NULLs never collide).
    Column("milestone", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("due", BigInteger, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("seen_at", BigInteger, nullable=False),
    Column("late", Boolean, nullable=False, default=False),
    # queued (messages made), superseded, no_recipient
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    UniqueConstraint("item_id", "deadline", "milestone", "kind", "due", name="uq_reminders_key"),
)

reminder_messages = Table(
    "reminder_messages",
    metadata,
    Column("id", Pos, primary_key=True, autoincrement=True),
    # Idempotency key handed to gateways, mail servers and webhooks.
    Column("message_key", String(64), nullable=False, unique=True),
    Column("reminder_id", BigInteger, nullable=False),
    Column("item_id", String(96), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("person", String(64), nullable=False, default=""),
    Column("recipient", Text, nullable=False),
    Column("subject", Text, nullable=False, default=""),
    Column("text", Text, nullable=False),
    Column("body", Text),
    # pending, sent, failed (gave up), cancelled (item or step done before delivery)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_attempt_at", BigInteger),
    Column("last_error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger),
    Column("late", Boolean, nullable=False, default=False),
    # When the person read it in the message centre; None while unread.
    Column("read_at", BigInteger),
)
Index("ix_reminder_messages_item", reminder_messages.c.item_id, reminder_messages.c.id)
Index("ix_reminder_messages_person", reminder_messages.c.person, reminder_messages.c.id)
Index(
    "ix_reminder_messages_due", reminder_messages.c.status, reminder_messages.c.next_attempt_at
)

# -- Page aggregates, kept beside the item rows by node.items.projection.write_rows through
# node.items.tallies (docs/pages.md, "Scale"). Derived data, rebuilt from ``items``.
# Paths are assignee paths ("14/1401/"); units are the handling unit ("" for none);
# quarters and weeks are their start in unix ms (China time); NEVER = 2**62.

item_facts = Table(
    "item_facts",
    metadata,
    Column("item_id", String(96), primary_key=True),
    Column("path", Path, nullable=False),
    Column("unit", String(64), nullable=False),
    Column("board", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("done", Boolean, nullable=False),
    Column("assigned_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("resolve_due", BigInteger),
    # The resolution met its deadline (None until resolved), from the folded state.
    Column("resolve_met", Boolean),
    # When the item was accepted or withdrawn (None while open).
    Column("finished_at", BigInteger),
    # When the item turns yellow or red (the earlier), and red, if nothing more happens.
    Column("warn_from", BigInteger),
    Column("red_from", BigInteger),
    sqlite_with_rowid=False,
)
# Items crossing a colour threshold between two instants. Partial: finished items have
# no thresholds, and writing them then costs no entry here.
_f = item_facts.c
Index("ix_item_facts_red", _f.red_from, _f.done, _f.path, _f.unit,
      sqlite_where=_f.red_from.is_not(None), postgresql_where=_f.red_from.is_not(None))
Index("ix_item_facts_warn", _f.warn_from, _f.done, _f.path, _f.unit,
      sqlite_where=_f.warn_from.is_not(None), postgresql_where=_f.warn_from.is_not(None))

# Open, done, and open items red / yellow-or-red as of the watermark.
tally_nodes = Table(
    "tally_nodes",
    metadata,
    Column("path", Path, nullable=False),
    Column("unit", String(64), nullable=False),
    Column("open", BigInteger, nullable=False),
    Column("done", BigInteger, nullable=False),
    Column("red", BigInteger, nullable=False),
    Column("warn", BigInteger, nullable=False),
    PrimaryKeyConstraint("path", "unit", name="pk_tally_nodes"),
    sqlite_with_rowid=False,
)
# Items (not withdrawn) by the quarter of their resolve deadline: the board's rates.
tally_quarters = Table(
    "tally_quarters",
    metadata,
    Column("quarter", BigInteger, nullable=False),
    Column("path", Path, nullable=False),
    Column("board", String(32), nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("done", BigInteger, nullable=False),
    Column("resolved", BigInteger, nullable=False),
    Column("met", BigInteger, nullable=False),
    # Not resolved, and due by the watermark.
    Column("due", BigInteger, nullable=False),
    PrimaryKeyConstraint("quarter", "path", "board", name="pk_tally_quarters"),
    sqlite_with_rowid=False,
)
# Items assigned, and done (dated by their last event), per ISO week.
tally_weeks = Table(
    "tally_weeks",
    metadata,
    Column("week", BigInteger, nullable=False),
    Column("path", Path, nullable=False),
    Column("assigned", BigInteger, nullable=False),
    Column("done", BigInteger, nullable=False),
    Column("late", BigInteger, nullable=False),
    PrimaryKeyConstraint("week", "path", name="pk_tally_weeks"),
    sqlite_with_rowid=False,
)
# Open items by the quarter of their last event and of their red threshold.
tally_open = Table(
    "tally_open",
    metadata,
    Column("path", Path, nullable=False),
    Column("unit", String(64), nullable=False),
    Column("quarter", BigInteger, nullable=False),
    Column("red_quarter", BigInteger, nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("path", "unit", "quarter", "red_quarter", name="pk_tally_open"),
    sqlite_with_rowid=False,
)
# Finished items whose last event falls in the quarter they finished in.
tally_finished = Table(
    "tally_finished",
    metadata,
    Column("quarter", BigInteger, nullable=False),
    Column("path", Path, nullable=False),
    Column("unit", String(64), nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("quarter", "path", "unit", name="pk_tally_finished"),
    sqlite_with_rowid=False,
)
# "colours": the instant the time-dependent counts are kept for (the watermark);
# "ranking": the start of the quarter tally_ranking holds.
tally_marks = Table(
    "tally_marks",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("at", BigInteger, nullable=False),
)

# Incentive points (node.queries.standings): an item's point lines per quarter and unit,
# counted per rule, from its events; summed per (quarter, path, unit) in score_tallies.
_SCORE_COUNTERS = (
    "deploy_on_time", "late_deploy", "feedback_on_time", "late_feedback",
    "resolved_excellent", "resolved_qualified", "returned", "unfinished", "urged",
    "monthly_missed", "node_items", "unit_items",
)
score_rows = Table(
    "score_rows",
    metadata,
    Column("item_id", String(96), nullable=False),
    Column("quarter", BigInteger, nullable=False),
    Column("unit", String(64), nullable=False),
    Column("path", Path, nullable=False),
    *(Column(name, Integer, nullable=False) for name in _SCORE_COUNTERS),
    PrimaryKeyConstraint("item_id", "quarter", "unit", name="pk_score_rows"),
    sqlite_with_rowid=False,
)
score_tallies = Table(
    "score_tallies",
    metadata,
    Column("quarter", BigInteger, nullable=False),
    Column("path", Path, nullable=False),
    Column("unit", String(64), nullable=False),
    *(Column(name, BigInteger, nullable=False) for name in _SCORE_COUNTERS),
    PrimaryKeyConstraint("quarter", "path", "unit", name="pk_score_tallies"),
    sqlite_with_rowid=False,
)
# The quarter running now, whole, per (path, unit): score_tallies of that quarter plus
# the items taking part (open, or finished in it) and unfinished (red as of the watermark).
tally_ranking = Table(
    "tally_ranking",
    metadata,
    Column("path", Path, nullable=False),
    Column("unit", String(64), nullable=False),
    *(Column(name, BigInteger, nullable=False) for name in _SCORE_COUNTERS),
    PrimaryKeyConstraint("path", "unit", name="pk_tally_ranking"),
    sqlite_with_rowid=False,
)
# Items whose points come from their events at every read: "dirty" (written since
# they were last scored) or "irregular" (a history the tallies cannot stand for).
score_exceptions = Table(
    "score_exceptions",
    metadata,
    Column("item_id", String(96), primary_key=True),
    Column("path", Path, nullable=False),
    Column("reason", String(16), nullable=False),
    sqlite_with_rowid=False,
)
Index("ix_score_exceptions_path", score_exceptions.c.path)
