"""Node configuration: one table of settings with defaults and help text.

The configuration lives in ``duban.toml`` in the node's data directory. Every
setting is declared once in :data:`SETTINGS` (name, default, help); the file
written by ``duban init`` / ``duban join`` lists them all with their help, and a
test fails when ``docs/configuration.md`` misses one.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.errors import NodeError

CONFIG_NAME = "duban.toml"
KEY_NAME = "node.key"
DB_NAME = "node.db"


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("node.id", "", "This node's id (administrative division code), fixed at init/join."),
    Setting("node.name", "", "This node's display name, e.g. 山西省."),
    Setting("node.level", "", "province, city, county or township."),
    Setting("node.parent_url", "", "Base URL of the parent node ('' for the root)."),
    Setting("node.root_fingerprint", "", "SHA-256 fingerprint of the root key, pinned."),
    Setting(
        "database.url",
        "",
        "SQLAlchemy URL; '' means SQLite in the data directory "
        "(sqlite+aiosqlite:///DIR/node.db). PostgreSQL: postgresql+asyncpg://user@host/db.",
    ),
    Setting("server.listen", "127.0.0.1:8400", "HOST:PORT that `duban run` listens on."),
    Setting("server.public_url", "", "URL children use to reach this node (for invites)."),
    Setting(
        "http.trusted_proxies",
        "",
        "Reverse proxies whose X-Forwarded-For and X-Forwarded-Host are believed: "
        "comma-separated addresses or CIDR networks, e.g. '127.0.0.1, ::1' behind the nginx "
        "of deploy/ on the same machine. '' believes no proxy (the peer is the client).",
    ),
    # -- sign-in limits (docs/api.md "Sign-in"); failures counted in one sliding window
    Setting("signin.window_seconds", 900, "The window in which failed sign-ins are counted."),
    Setting(
        "signin.max_failures", 5, "Failures for one name from one client address, then it waits."
    ),
    Setting(
        "signin.max_account_failures",
        20,
        "Failures for one name from any addresses, then the name waits (guessing spread "
        "over many addresses); counted for unknown names too.",
    ),
    Setting(
        "signin.max_address_failures",
        50,
        "Failures from one client address for any names, then the address waits.",
    ),
    Setting("sync.batch_events", 1000, "Most events in one sync batch."),
    Setting("sync.batch_bytes", 2_000_000, "Most envelope bytes in one sync batch."),
    Setting("sync.long_poll_seconds", 25, "How long a child's pull waits for new events."),
    Setting("sync.retry_initial_seconds", 1.0, "First retry delay after a failed sync."),
    Setting("sync.retry_max_seconds", 300.0, "Cap on the retry delay (with full jitter)."),
    Setting("sync.request_timeout_seconds", 60.0, "Timeout for one sync HTTP request."),
    Setting("sync.clock_skew_seconds", 300, "Accepted clock difference on signed requests."),
    Setting("sync.verify_threads", 2, "Threads verifying signatures of a received batch."),
    Setting(
        "sync.decode_processes",
        1,
        "Worker processes decoding large received batches on another core (0: in place).",
    ),
    # What a child may send this node (docs/sync.md, "What a node accepts"): bounds.
    Setting(
        "sync.max_clock_ahead",
        2**32,
        "Refuse a received event whose Lamport clock is more than this ahead of ours.",
    ),
    Setting(
        "sync.receive_max_events",
        5000,
        "Most events in one received batch (keep >= the children's sync.batch_events).",
    ),
    Setting(
        "sync.blob_chunk_bytes",
        65_536,
        "Bytes of an attachment sent up to the parent in one request (docs/sync.md, "
        "\"Attachments\"): at 20 KiB/s, 64 KiB moves the parent's progress every ~3 s.",
    ),
    Setting(
        "sync.blob_partial_days",
        7.0,
        "Drop the parts of a file a child is sending when no chunk of it has arrived for "
        "this many days (docs/sync.md, \"Attachments\"); 0 keeps them until it comes back.",
    ),
    Setting("sync.refused_keep_events", 10_000, "Refused events kept for audit, per link."),
    Setting(
        "sync.refused_keep_bytes", 16_000_000, "Bytes of refused events kept for audit, per link."
    ),
    Setting("enroll.code_ttl_hours", 72, "How long an enrollment code stays valid."),
    Setting("enroll.cert_days", 3650, "Validity of certificates this node issues."),
    Setting(
        "workflow.calendar",
        "natural",
        "Default day counting for new items: natural or working (official Chinese calendar).",
    ),
    Setting(
        "workflow.extra_boards",
        "",
        "Boards beyond the 1+5 (comma-separated codes [a-z0-9_]), the '1+X'.",
    ),
    Setting("workflow.extra_sources", "", "Sources beyond the built-in ones (comma-separated)."),
    Setting(
        "cascade.auto",
        True,
        "Pass an item marked to go down to a level (cascade) on to every child at once, "
        "as soon as it arrives (docs/cascade.md); false: it waits for a supervisor or "
        "leader to pass it down on its page.",
    ),
    Setting("api.max_attachment_bytes", 10_000_000, "Largest attachment accepted, in bytes."),
    Setting(
        "api.max_upload_bytes",
        50_000_000,
        "Most bytes of files one request may carry together (a feedback or resolution "
        "with several files).",
    ),
    Setting(
        "api.attachment_quota_user_bytes",
        500_000_000,
        "Most bytes of attachments one person's uploads may keep on this node (413 "
        "quota_exceeded beyond).",
    ),
    Setting(
        "api.attachment_quota_node_bytes",
        20_000_000_000,
        "Most bytes of attachments this node keeps in all (413 node_quota_exceeded beyond).",
    ),
    Setting("api.max_body_bytes", 262_144, "Largest JSON request body, in bytes."),
    # -- faults: background work, connection timeouts (docs/sync.md, "Faults")
    Setting(
        "background.retry_initial_seconds",
        1.0,
        "First retry delay of a background task (folding, reminders, tallies) after a failure.",
    ),
    Setting(
        "background.retry_max_seconds",
        60.0,
        "Cap on a background task's retry delay (doubling, with full jitter).",
    ),
    Setting(
        "background.summary_seconds",
        300.0,
        "While a task or the link to the parent keeps failing, a WARNING summary this often.",
    ),
    Setting(
        "server.head_timeout_seconds",
        20.0,
        "A request head must be complete this long after its first byte, or the "
        "connection is closed.",
    ),
    Setting(
        "server.body_idle_timeout_seconds",
        30.0,
        "Close a connection whose request body sends nothing for this long.",
    ),
    Setting(
        "server.body_min_bytes_per_second",
        500,
        "A request body must come at least this fast on average (after a grace of "
        "server.body_idle_timeout_seconds), or the connection is closed; 0 turns it off.",
    ),
    Setting(
        "server.keepalive_timeout_seconds",
        75.0,
        "Close a connection idle this long between requests (or before its first).",
    ),
    Setting(
        "sync.connect_timeout_seconds",
        10.0,
        "Timeout for opening a connection to the parent.",
    ),
    Setting(
        "sync.read_timeout_seconds",
        30.0,
        "A sync request fails when the parent sends nothing for this long (plus a "
        "long-poll's wait).",
    ),
    # -- reminders and notifiers (docs/reminders.md)
    Setting("reminders.enabled", True, "Send deadline reminders for items handled here."),
    Setting("reminders.deploy_before_hours", 5.0, "Remind this long before the 1-day deadline."),
    Setting("reminders.feedback_before_hours", 5.0, "Remind this long before the 3-day one."),
    Setting("reminders.resolve_week_before_hours", 24.0, "Remind before a 7-day resolve."),
    Setting("reminders.resolve_month_before_hours", 48.0, "Remind before a 1-month resolve."),
    Setting("reminders.milestone_before_hours", 24.0, "Remind before each plan milestone."),
    Setting("reminders.overdue", True, "Also send a notice when a deadline passes undone."),
    Setting("reminders.tick_seconds", 60.0, "How often the scheduler looks for due reminders."),
    Setting(
        "reminders.late_after_seconds",
        600.0,
        "A reminder first seen this long after its time goes out marked late ([补发]).",
    ),
    Setting("reminders.retry_initial_seconds", 60.0, "First retry delay of a failed message."),
    Setting("reminders.retry_max_seconds", 3600.0, "Cap on the retry delay (doubling, jittered)."),
    Setting("reminders.max_attempts", 12, "Attempts before a message is marked failed."),
    Setting("reminders.language", "zh", "Message language: zh or en."),
    Setting("sms.enabled", False, "Send reminders by SMS through the HTTP gateway."),
    Setting("sms.url", "", "The SMS gateway's URL (POST)."),
    Setting(
        "sms.body_template",
        '{"phone": "{phone}", "text": "{text}", "id": "{message_id}"}',
        "Request body; {phone} {text} {message_id} {username} {password} are filled in, "
        "escaped for sms.content_type.",
    ),
    Setting("sms.content_type", "application/json", "Content-Type of the gateway request."),
    Setting("sms.headers", "", "Extra request headers as a JSON object, e.g. an API key."),
    Setting("sms.username", "", "Gateway account; sent as HTTP Basic auth when set."),
    Setting("sms.password", "", "Gateway password or secret."),
    Setting("sms.success_match", "", "Text a 2xx answer must contain to count as sent."),
    Setting("sms.timeout_seconds", 10.0, "Timeout of one gateway request."),
    Setting("smtp.enabled", False, "Send reminders by email over SMTP."),
    Setting("smtp.host", "localhost", "SMTP server host."),
    Setting("smtp.port", 25, "SMTP server port."),
    Setting("smtp.username", "", "SMTP login ('' for none)."),
    Setting("smtp.password", "", "SMTP password."),
    Setting("smtp.from", "duban@localhost", "Sender address of reminder emails."),
    Setting("smtp.starttls", False, "Upgrade the connection with STARTTLS before login."),
    Setting("smtp.timeout_seconds", 10.0, "Timeout of one SMTP conversation step."),
    Setting("webhook.enabled", False, "POST every reminder as JSON to webhook.url."),
    Setting("webhook.url", "", "Where the webhook posts."),
    Setting("webhook.secret", "", "Signs the body: X-Duban-Signature: sha256=HMAC (hex)."),
    Setting("webhook.timeout_seconds", 10.0, "Timeout of one webhook request."),
    # -- incentive scores (docs/reports.md); deductions are subtracted
    Setting("scores.deploy_on_time", 0.5, "Points for deploying (研究部署) by the 1-day deadline."),
    Setting("scores.late_deploy", 0.5, "Points deducted for deploying after it."),
    Setting("scores.feedback_on_time", 1.0, "Points for the first feedback by the 3-day deadline."),
    Setting("scores.late_feedback", 1.0, "Points deducted for a first feedback after it."),
    Setting(
        "scores.resolved_excellent",
        3.0,
        "Points for a resolution graded excellent (by default: accepted on first review, "
        "on time).",
    ),
    Setting(
        "scores.resolved_qualified",
        1.0,
        "Points for a resolution graded qualified (by default: accepted after a return, "
        "or late).",
    ),
    Setting("scores.returned", 1.0, "Points deducted for each resolution returned (退回)."),
    Setting("scores.unfinished", 2.0, "Points deducted per item open and overdue at quarter end."),
    Setting("scores.urged", 0.5, "Points deducted for each urge (催办) on the unit's item."),
    Setting(
        "scores.monthly_missed",
        0.5,
        "Points deducted for each monthly progress report date (按月反馈) an approved plan's "
        "item passed before its next report.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


class ConfigError(NodeError):
    """A configuration that cannot be used (reason ``bad_config``); the message says
    what to fix and is the whole of ``str()``."""

    def __init__(self, message: str) -> None:
        super().__init__('bad_config', message)

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    values: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        if name not in _BY_NAME:
            raise KeyError(name)
        return self.values.get(name, _BY_NAME[name].default)

    @property
    def database_url(self) -> str:
        url = str(self["database.url"])
        return url or f"sqlite+aiosqlite:///{self.data_dir / DB_NAME}"

    @property
    def key_path(self) -> Path:
        return self.data_dir / KEY_NAME

    def with_values(self, **changes: Any) -> Config:
        values = dict(self.values)
        for key, value in changes.items():
            values[key.replace("__", ".")] = value
        return Config(self.data_dir, values)


def load(data_dir: Path) -> Config:
    path = data_dir / CONFIG_NAME
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path} not found: create a node with `duban init` or `duban join`"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    values: dict[str, Any] = {}
    for section, table in raw.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        for key, value in table.items():
            name = f"{section}.{key}"
            setting = _BY_NAME.get(name)
            if setting is None:
                raise ConfigError(f"{path}: unknown setting {name!r}")
            if not isinstance(value, type(setting.default)) and not (
                isinstance(setting.default, float) and isinstance(value, int)
            ):
                raise ConfigError(
                    f"{path}: {name} must be {type(setting.default).__name__}, got {value!r}"
                )
            values[name] = value
    return Config(data_dir, values)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render(values: dict[str, Any]) -> str:
    """The whole configuration file: every setting, with its help as a comment."""
    lines = ["# Duban node configuration. Every setting, its default and what it does."]
    sections = list(dict.fromkeys(s.name.split(".", 1)[0] for s in SETTINGS))
    ordered = [s for head in sections for s in SETTINGS if s.name.startswith(head + ".")]
    section = None
    for setting in ordered:
        head, key = setting.name.split(".", 1)
        if head != section:
            lines += ["", f"[{head}]"]
            section = head
        lines.append(f"# {setting.help} (default: {_toml_value(setting.default)})")
        if setting.name in values:
            lines.append(f"{key} = {_toml_value(values[setting.name])}")
        else:
            lines.append(f"# {key} = {_toml_value(setting.default)}")
    return "\n".join(lines) + "\n"


def write(data_dir: Path, values: dict[str, Any]) -> Config:
    unknown = set(values) - set(_BY_NAME)
    if unknown:
        raise ConfigError(f"unknown settings {sorted(unknown)}")
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / CONFIG_NAME).write_text(render(values), encoding="utf-8")
    return load(data_dir)
