"""The loop-driven pipe ends speak Connection's framing: a plain Connection reads and writes the
other end, messages of every size arrive whole and in order, end of file reads as None."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading

from foundation.loop_pipe import LoopPipeReader, LoopPipeWriter
from foundation.runtime import run

# small, at the 16 KiB split of Connection's own writes, and past the pipe's 64 KiB buffer
MESSAGES: list[object] = [[1, "a"], b"x" * 16_384, {"k": "v" * 300_000}, None, ("end",)]


def test_writer_to_a_connection() -> None:
    ours, theirs = multiprocessing.Pipe(duplex=False)[::-1]
    got: list[object] = []

    def read() -> None:  # a slow reader: the writer's buffer holds what the pipe cannot
        while True:
            try:
                got.append(theirs.recv())
            except EOFError:
                return

    async def main() -> None:
        writer = LoopPipeWriter(ours)
        await writer.start()
        for msg in MESSAGES:
            writer.put(msg)
        await writer.aclose()

    thread = threading.Thread(target=read)
    thread.start()
    run(main(), "asyncio")
    thread.join(10)
    assert got == MESSAGES


def test_reader_from_a_connection() -> None:
    theirs, ours = multiprocessing.Pipe(duplex=False)[::-1]
    got: list[object] = []

    def write() -> None:
        for msg in MESSAGES:
            theirs.send(msg)
        theirs.close()

    async def main() -> None:
        done = asyncio.get_running_loop().create_future()
        ended: list[int] = []

        def deliver(msg: object) -> None:
            if msg is None and len(got) == len(MESSAGES):  # (None is also a message here)
                ended.append(1)
                if not done.done():
                    done.set_result(None)
                return
            got.append(msg)

        reader = LoopPipeReader(ours, deliver)
        await reader.start()
        threading.Thread(target=write).start()
        await asyncio.wait_for(done, 10)
        reader.close()
        assert ended == [1]

    run(main(), "uvloop")
    assert got == MESSAGES
