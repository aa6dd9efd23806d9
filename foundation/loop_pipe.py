"""A ``multiprocessing`` pipe end driven by the event loop itself: no helper thread.

A processes-mode worker used to read its inbox in one thread and send its results from another
(:class:`foundation.worker_pipe.PipeSender`), so that the loop never blocks on a pipe. Each
hand-over of the GIL between such a thread and the loop is a futex wake-up and a context switch,
and on the test machine (a 2-vCPU KVM guest) those cost more than the pickling they carry: with
both ends on the loop a crawl worker spends ~X % less CPU a page (docs/benchmarks/crawl.md).

The bytes on the pipe are exactly :class:`multiprocessing.connection.Connection`'s (a 4-byte
big-endian length, or -1 and an 8-byte length over 2 GiB, then the pickle), so the other end
keeps its plain ``Connection.send``/``recv``.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler

__all__ = ["LoopPipeReader", "LoopPipeWriter"]

_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")


def _frame(obj: object) -> bytes:
    data = bytes(ForkingPickler.dumps(obj))
    n = len(data)
    if n > 0x7FFFFFFF:
        return _SHORT.pack(-1) + _LONG.pack(n) + data
    return _SHORT.pack(n) + data


class _Reader(asyncio.Protocol):
    def __init__(self, deliver: Callable[[object | None], None]) -> None:
        self._deliver = deliver
        self._buf = bytearray()
        self._ended = False

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while len(buf) >= 4:
            (n,) = _SHORT.unpack_from(buf)
            start = 4
            if n == -1:
                if len(buf) < 12:
                    return
                (n,) = _LONG.unpack_from(buf, 4)
                start = 12
            if len(buf) < start + n:
                return
            obj = ForkingPickler.loads(buf[start : start + n])
            del buf[: start + n]
            self._deliver(obj)

    def eof_received(self) -> bool | None:
        self._end()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._deliver(None)  # end of file: the other end closed (or died)


class LoopPipeReader:
    """Reads the messages ``Connection.send`` writes to ``conn``'s pipe; ``deliver(message)`` runs
    on the loop for each, then ``deliver(None)`` at end of file."""

    def __init__(self, conn: Connection, deliver: Callable[[object | None], None]) -> None:
        self._conn = conn
        self._deliver = deliver
        self._transport: asyncio.ReadTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # (a pipe descriptor wrapped, not a file opened: nothing blocks)
        pipe = open(os.dup(self._conn.fileno()), "rb", buffering=0)  # noqa: SIM115, ASYNC230
        self._transport, _ = await loop.connect_read_pipe(lambda: _Reader(self._deliver), pipe)
        self._conn.close()  # the transport holds its own descriptor

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._conn.close()


class _Writer(asyncio.Protocol):
    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class LoopPipeWriter:
    """Sends messages down ``conn``'s pipe for ``Connection.recv`` to read. :meth:`put` never
    blocks the loop: what the pipe cannot take yet waits in the transport's buffer, in order."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._transport: asyncio.WriteTransport | None = None
        self._protocol: _Writer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        pipe = open(os.dup(self._conn.fileno()), "wb", buffering=0)  # noqa: SIM115, ASYNC230
        self._transport, self._protocol = await loop.connect_write_pipe(_Writer, pipe)
        self._conn.close()  # the transport holds its own descriptor

    def put(self, obj: object) -> None:
        assert self._transport is not None
        if not self._transport.is_closing():  # (the reader is gone: nobody to tell)
            self._transport.write(_frame(obj))

    async def aclose(self) -> None:
        """Send what is buffered, then close the pipe (the reader sees end of file)."""
        if self._transport is None or self._protocol is None:
            self._conn.close()
            return
        self._transport.close()
        await self._protocol.closed
