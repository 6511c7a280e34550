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
    Setting("sync.batch_events", 1000, "Most events in one sync batch."),
    Setting("sync.batch_bytes", 2_000_000, "Most envelope bytes in one sync batch."),
    Setting("sync.long_poll_seconds", 25, "How long a child's pull waits for new events."),
    Setting("sync.retry_initial_seconds", 1.0, "First retry delay after a failed sync."),
    Setting("sync.retry_max_seconds", 300.0, "Cap on the retry delay (with full jitter)."),
    Setting("sync.request_timeout_seconds", 60.0, "Timeout for one sync HTTP request."),
    Setting("sync.clock_skew_seconds", 300, "Accepted clock difference on signed requests."),
    Setting("sync.verify_threads", 2, "Threads verifying signatures of a received batch."),
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
    Setting("api.max_attachment_bytes", 10_000_000, "Largest attachment accepted, in bytes."),
    Setting("api.max_body_bytes", 262_144, "Largest JSON request body, in bytes."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


class ConfigError(Exception):
    """A configuration file that cannot be used; the message says what to fix."""


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
