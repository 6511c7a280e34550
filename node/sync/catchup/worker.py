"""The decoding worker process: ``python -S -m node.sync.catchup.worker`` (started by
:class:`node.sync.catchup.decoder.Decoder`, never by hand).

It imports nothing but the protocol package and :mod:`node.sync.catchup.transfer`
(the packages on the way hold no code: tests/test_purity.py), says it is ready,
then answers requests on stdin with replies on stdout until stdin closes. A
request is ``(raws, skip)``, a reply :func:`~node.sync.catchup.transfer.decode_packed`
of it, both in ``marshal`` form (plain tuples, lists, bytes, str and int: cheaper
than pickle both ways, docs/performance.md), each framed by its length (8 bytes,
little-endian). Both ends are the same node, which alone writes these bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import marshal
import sys
from typing import BinaryIO

from node.sync.catchup import transfer

READY = b"duban-decode-ready\n"
PIPE_BYTES = 1 << 20
"""Pipe buffers as large as Linux lets anyone make them (``fs.pipe-max-size``): a
page's request and reply then fit, so neither side waits for the other to read."""


def _widen(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError, AttributeError):  # not a pipe, not Linux
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    # This process is the worker's alone, so it tunes its own collector: what a
    # request makes is gone once its reply is written, freed by reference counting
    # (strings, bytes, tuples and frozen dataclasses: no cycles), so the cycle
    # collector would only cost time while decoding (docs/performance.md). It runs
    # once after each reply instead, over the little that is left.
    gc.disable()
    gc.freeze()
    replies.write(READY)
    replies.flush()
    while True:
        header = _read_exactly(requests, 8)
        if header is None:
            return
        payload = _read_exactly(requests, int.from_bytes(header, "little"))
        if payload is None:
            return
        raws, skip = marshal.loads(payload)
        reply = marshal.dumps(transfer.decode_packed(raws, skip), transfer.MARSHAL_VERSION)
        replies.write(len(reply).to_bytes(8, "little"))
        replies.write(reply)
        replies.flush()
        del raws, reply
        gc.collect()


if __name__ == "__main__":
    _widen(sys.stdin.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, sys.stdout.buffer)
