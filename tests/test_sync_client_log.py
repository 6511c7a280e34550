"""What the child logs when its parent refuses events of an upload: one line per
upload, however many were refused, with the parent's words escaped."""

from __future__ import annotations

import logging

import pytest

from node.sync.client import _log_refused


def test_one_line_per_upload_with_the_reasons_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="node.sync.client")
    refused = [[i, "seq_conflict", f"seq {i}"] for i in range(400)]
    refused.append([400, "bad\nreason", "detail\nWARNING forged"])
    _log_refused(refused, 500)
    [record] = caplog.records
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert "401 of 500" in message
    assert "seq_conflict x400" in message and "bad\\nreason x1" in message
    assert "\n" not in message
