"""Strict, bounded msgpack: the only way bytes become values in Duban.

Decoding refuses anything an honest node would never send: oversize input,
over-long strings, bytes, arrays or maps, nesting deeper than the cap, map keys
that are not strings, duplicate keys, extension types (msgpack timestamps
included), floats, invalid UTF-8 and trailing bytes. Every refusal is a
:class:`ProtocolError` with a stable reason; no other exception escapes.

Encoding is deterministic for our own values: map keys are emitted sorted and
every header (integer, string, bin, array, map) takes its shortest form, so the
same value always gives the same bytes. Signatures are always checked over the
received bytes, never over a re-encoding; but an envelope's bytes are its event's
id, so ``protocol.envelope.parse`` accepts only this canonical encoding of the
outer map (docs/sync.md, "Event identity").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from protocol import errors
from protocol.errors import ProtocolError

Value = None | bool | int | str | bytes | list["Value"] | dict[str, "Value"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Caps applied while decoding. Defaults fit one signed event or batch."""

    max_size: int = 4 * 1024 * 1024
    max_str: int = 64 * 1024
    max_bin: int = 1024 * 1024
    max_array: int = 10_000
    max_map: int = 256
    max_depth: int = 16

    def __post_init__(self) -> None:
        for name in ("max_size", "max_str", "max_bin", "max_array", "max_map", "max_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")


DEFAULT_LIMITS = Limits()

_BYTES_LIKE = (bytes, bytearray, memoryview)
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


class _DuplicateKey(Exception):
    pass


class _NonStringKey(Exception):
    pass


class _Extension(Exception):
    pass


def _pairs_hook(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if type(key) is not str:
            raise _NonStringKey
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _ext_hook(code: int, data: bytes) -> Any:
    raise _Extension(code)


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS, *, check_tree: bool = True) -> Value:
    """Decode exactly one msgpack value from ``data`` under ``limits``.

    ``check_tree=False`` leaves out the last step, the walk over the decoded
    value that checks its depth and that no leaf is a float: every other check
    still runs. It is for a caller that checks the type of everything it
    accepts anyway, so that an accepted value is one the walk would pass (the
    envelope and event decoders). Such a caller, when it refuses the value,
    must decode again with the walk, so that the reason given is the one a
    full decode would give first (``float_not_allowed`` rather than its own).
    """
    if not isinstance(data, _BYTES_LIKE):
        raise ProtocolError(errors.MALFORMED, "input is not bytes")
    if len(data) > limits.max_size:
        raise ProtocolError(errors.TOO_LARGE, f"{len(data)} bytes > {limits.max_size}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=False,  # keys are checked by the hook with a clearer reason
            object_pairs_hook=_pairs_hook,
            ext_hook=_ext_hook,
            max_str_len=limits.max_str,
            max_bin_len=limits.max_bin,
            max_array_len=limits.max_array,
            max_map_len=limits.max_map,
            max_ext_len=0,
        )
    except _DuplicateKey as exc:
        raise ProtocolError(errors.DUPLICATE_KEY, repr(exc.args[0])[:80]) from None
    except _NonStringKey:
        raise ProtocolError(errors.NON_STRING_KEY) from None
    except _Extension:
        raise ProtocolError(errors.EXTENSION_TYPE) from None
    except msgpack.ExtraData:
        raise ProtocolError(errors.TRAILING_BYTES) from None
    except UnicodeDecodeError:
        raise ProtocolError(errors.INVALID_UTF8) from None
    except ValueError as exc:
        raise ProtocolError(_limit_reason(str(exc)), str(exc)[:120]) from None
    except Exception as exc:
        raise ProtocolError(errors.MALFORMED, type(exc).__name__) from None
    if check_tree:
        _check_tree(value, limits)
    return value  # type: ignore[no-any-return]


def _limit_reason(message: str) -> str:
    for marker, reason in (
        ("str_len", errors.STRING_TOO_LONG),
        ("bin_len", errors.BYTES_TOO_LONG),
        ("array_len", errors.ARRAY_TOO_LONG),
        ("map_len", errors.MAP_TOO_LONG),
        ("ext_len", errors.EXTENSION_TYPE),
    ):
        if marker in message:
            return reason
    return errors.MALFORMED


_SCALARS = frozenset({str, bytes, int, bool, type(None)})


def _check_tree(value: Any, limits: Limits) -> None:
    """Check depth and leaf types. Recursion is bounded: it stops at ``max_depth``."""
    kind = type(value)
    if kind is dict or kind is list:
        _check_container(value, 1, limits.max_depth)
    elif kind not in _SCALARS:
        _bad_leaf(kind)


def _check_container(node: Any, depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise ProtocolError(errors.TOO_DEEP, f"deeper than {max_depth}")
    children = node.values() if type(node) is dict else node
    for child in children:
        kind = type(child)
        if kind in _SCALARS:
            continue
        if kind is dict or kind is list:
            _check_container(child, depth + 1, max_depth)
        else:
            _bad_leaf(kind)


def _bad_leaf(kind: type) -> None:
    if kind is float:
        raise ProtocolError(errors.FLOAT_NOT_ALLOWED)
    # msgpack.Timestamp (ext -1) is decoded without the ext hook.
    raise ProtocolError(errors.EXTENSION_TYPE, kind.__name__)


def encode(value: Value) -> bytes:
    """Encode a value of the allowed types; map keys are emitted sorted."""
    return msgpack.packb(_canonical(value, 0), use_bin_type=True)  # type: ignore[no-any-return]


def _canonical(value: Any, depth: int) -> Any:
    if depth > DEFAULT_LIMITS.max_depth:
        raise ProtocolError(errors.TOO_DEEP, "value too deep to encode")
    kind = type(value)
    if kind is dict:
        out = {}
        for key in sorted(value):
            if type(key) is not str:
                raise ProtocolError(errors.NON_STRING_KEY, repr(key)[:40])
            out[key] = _canonical(value[key], depth + 1)
        return out
    if kind is list or kind is tuple:
        return [_canonical(v, depth + 1) for v in value]
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise ProtocolError(errors.BAD_FIELD, "integer out of range")
        return value
    if kind in (str, bytes, bool, type(None)):
        return value
    raise ProtocolError(errors.UNSUPPORTED_TYPE, kind.__name__)
