"""The one error root of the hierarchy package, and the refusal value.

Two shapes on purpose. Something that cannot go on (a broken tree, a bad CSV
file, a join request with a used code) raises :class:`HierarchyError`. A
permission check is a question, not a failure: it returns ``None`` when the
action is allowed or a :class:`Refusal` saying why not, so callers can show the
reason, log it and keep the refused event for audit without try/except.

Every ``reason`` is a stable snake_case code that the HTTP layer maps to a
status and the log and UI show. Never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import printable


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where (a 1-based line or position), why, what."""

    line: int
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


class HierarchyError(Exception):
    """A refusal from the hierarchy package, with a stable reason code.

    Inputs checked as a whole (a tree, a CSV file) list every problem found in
    ``problems``, so an office fixes its file once instead of once per error.

    The detail is made printable here, once, as ``ProtocolError``'s is: it may quote
    what anyone sent (a join request's parent or node id reaches the log). It is not
    cut: a file's problems are summed up by their caller, and a join request's
    strings are at most 256 characters.
    """

    def __init__(self, reason: str, detail: str = "", problems: tuple[Problem, ...] = ()) -> None:
        detail = printable(detail, limit=len(detail) * 10)
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a permission check said no. Positional on purpose: ``Refusal(reason, detail)``."""

    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


# The tree and its CSV import
UNKNOWN_NODE = "unknown_node"
DUPLICATE_CODE = "duplicate_code"
UNKNOWN_PARENT = "unknown_parent"
CYCLE = "cycle"
SECOND_ROOT = "second_root"
NO_ROOT = "no_root"
UNKNOWN_LEVEL = "unknown_level"
LEVEL_ORDER = "level_order"
EMPTY_CODE = "empty_code"
EMPTY_NAME = "empty_name"
BAD_NAME = "bad_name"
BAD_CODE = "bad_code"
BAD_COLUMNS = "bad_columns"
BAD_ENCODING = "bad_encoding"
BAD_CSV = "bad_csv"
NOT_DESCENDANT = "not_descendant"
# A published tree against the certificates a node holds (``duban tree import``)
PARENT_DIFFERS = "parent_differs"
LEVEL_DIFFERS = "level_differs"
NOT_IN_FILE = "not_in_file"

# Permissions
NOT_IN_SCOPE = "not_in_scope"
NOT_ANCESTOR = "not_ancestor"
NOT_ASSIGNEE = "not_assignee"
NOT_ASSIGNER = "not_assigner"
NOT_SUPERVISOR = "not_supervisor"
ROLE_FORBIDDEN = "role_forbidden"
WRONG_UNIT = "wrong_unit"
UNKNOWN_ACTION = "unknown_action"
UNKNOWN_ROLE = "unknown_role"
UNKNOWN_UNIT = "unknown_unit"
BAD_UNIT = "bad_unit"

# Enrollment
CODE_UNKNOWN = "code_unknown"
CODE_USED = "code_used"
CODE_EXPIRED = "code_expired"
WRONG_CHILD = "wrong_child"
WRONG_PARENT = "wrong_parent"
BAD_PROOF = "bad_proof"
REQUEST_STALE = "request_stale"
BAD_REQUEST = "bad_request"
BAD_RESPONSE = "bad_response"
ALREADY_ENROLLED = "already_enrolled"
BAD_STATE = "bad_state"

# Keys: rotation and revocation
NOT_CURRENT_KEY = "not_current_key"
BAD_ROTATION = "bad_rotation"
ALREADY_REVOKED = "already_revoked"
