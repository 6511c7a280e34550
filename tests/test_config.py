"""The configuration: every setting documented, files round-trip, bad files refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from node import config as cfg

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [s.name for s in cfg.SETTINGS if f"`{s.name}`" not in text]
    assert missing == []


def test_written_file_lists_every_setting_and_loads_back(tmp_path: Path) -> None:
    config = cfg.write(tmp_path, {"node.id": "14", "sync.batch_events": 10})
    text = (tmp_path / cfg.CONFIG_NAME).read_text(encoding="utf-8")
    for setting in cfg.SETTINGS:
        assert setting.name.split(".", 1)[1] in text
        assert setting.help in text
    assert config["node.id"] == "14"
    assert config["sync.batch_events"] == 10
    assert config["sync.long_poll_seconds"] == 25  # default
    assert config.database_url == f"sqlite+aiosqlite:///{tmp_path / cfg.DB_NAME}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[sync]\nbatch_events = 'many'\n", "sync.batch_events must be int"),
        ("[sync]\nbogus = 1\n", "unknown setting 'sync.bogus'"),
        ("[sync\n", "duban.toml"),
        ("sync = 1\n", "[sync] must be a table"),
    ],
)
def test_bad_files_are_refused_with_the_setting_named(
    tmp_path: Path, body: str, message: str
) -> None:
    (tmp_path / cfg.CONFIG_NAME).write_text(body, encoding="utf-8")
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.load(tmp_path)
    assert message in str(caught.value)


def test_missing_file_says_how_to_create_a_node(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.load(tmp_path)
    assert "duban init" in str(caught.value)
