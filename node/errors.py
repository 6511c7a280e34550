"""The one error root of ``node/`` and its kinds, by meaning.

Every error the node raises is a :class:`NodeError` with a stable ``reason``
code (snake_case; docs/api.md lists the API's, never rename one), a ``detail``
for a person and, when an input is to blame, the ``field`` it names. Domain code
(storage, items, sync, workflow, queries, reminders) says *what* went wrong by
the kind it raises; only the HTTP layer turns a kind into a status, in one table
(``node.http.errors.STATUS``; docs/errors.md)::

    NodeError                     no kind: a failure, not a refusal (500 if it
    │                             reaches a request; the CLI prints it)
    ├── Invalid                   bad input
    ├── Unauthenticated           who is asking is not established
    ├── Forbidden                 not allowed for this node or person
    ├── NotFound                  no such thing here
    ├── NotAllowed                the thing does not take this request
    ├── Conflict                  the state does not allow it now
    ├── TooLarge                  more than the node accepts (a body, a quota)
    ├── Unsupported               a form of input the node does not read
    ├── TooMany                   too many attempts; ``retry_after``
    └── Unavailable               cannot be done now; ``retry_after``

The error classes of node's modules (``ConfigError``, ``StorageError``,
``AccountError``, ``SyncFailure``...) sit on this root, on a kind where they are
refusals. ``protocol.errors.ProtocolError`` and ``hierarchy.errors.HierarchyError``
keep their own roots; :func:`refused` and :func:`invalid` turn them into kinds
where the node acts on them. This module imports nothing from ``node``.
"""

from __future__ import annotations

from hierarchy.errors import UNKNOWN_NODE, HierarchyError, Refusal
from protocol.errors import ProtocolError


class NodeError(Exception):
    """A refusal or failure of the node, with a stable ``reason`` code.

    ``str()`` is ``"reason: detail"`` (or the reason alone); ``retry_after`` is how
    many seconds to wait before trying again, when that is known."""

    def __init__(
        self,
        reason: str,
        detail: str = "",
        field: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.field = field
        self.retry_after = retry_after


class Invalid(NodeError):
    """Bad input: a field, a parameter, a body or a file that cannot be used."""


class Unauthenticated(NodeError):
    """Who is asking is not established (no, unknown or expired credentials)."""


class Forbidden(NodeError):
    """The node or the person may not do this (scope, ownership, role, unit)."""


class NotFound(NodeError):
    """No such thing here (an item, a node, a path)."""


class NotAllowed(NodeError):
    """The thing exists but does not take this request (a method)."""


class Conflict(NodeError):
    """The state does not allow it now (an item's status, a parent item that is done)."""


class TooLarge(NodeError):
    """More than the node accepts: a body, a file or a quota."""


class Unsupported(NodeError):
    """Input in a form the node does not read (a media type)."""


class TooMany(NodeError):
    """Too many attempts; ``retry_after`` says when to try again."""


class Unavailable(NodeError):
    """It cannot be done now (a full disk, a peer or gateway that does not answer)."""


KINDS: tuple[type[NodeError], ...] = (
    Invalid,
    Unauthenticated,
    Forbidden,
    NotFound,
    NotAllowed,
    Conflict,
    TooLarge,
    Unsupported,
    TooMany,
    Unavailable,
)
"""Every kind: ``except KINDS`` catches the refusals and lets failures by."""


def bad(field: str, detail: str, reason: str = "bad_field") -> Invalid:
    """The usual bad-input refusal: ``field: detail``, naming the field."""
    return Invalid(reason, f"{field}: {detail}", field)


def invalid(exc: ProtocolError, field: str | None = None) -> Invalid:
    """A protocol refusal of what a person asked for (an event that does not validate)."""
    return Invalid(exc.reason, exc.detail, field)


def refused(refusal: Refusal | HierarchyError) -> NotFound | Forbidden:
    """A permission check's refusal: ``unknown_node`` is not found, the rest forbidden."""
    if isinstance(refusal, Refusal) and refusal.reason == UNKNOWN_NODE:
        return NotFound(refusal.reason, refusal.detail)
    return Forbidden(refusal.reason, refusal.detail)
