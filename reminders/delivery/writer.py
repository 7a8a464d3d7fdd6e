"""Group commit off the event loop: a thread that runs the sending run's database writes, several at once.

A settle committed on the event loop stalls every open SMTP connection while the database flushes. Here each
connection hands its settle to one writer thread and awaits it: the loop goes on sending on the other connections,
and the settles that arrive while a commit runs are committed together in the next one. A connection still waits
for its own settle before it takes another message, so a process killed at any moment leaves at most one message
per connection sent and not recorded, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

_In = TypeVar("_In")
_Out = TypeVar("_Out")

# At most this many writes in one commit: a commit is short, and a bounded one keeps a retry after a fault small.
GROUP = 64


class _Waiting(Generic[_In, _Out]):
    __slots__ = ("future", "item", "loop")

    def __init__(self, item: _In, loop: asyncio.AbstractEventLoop, future: asyncio.Future[_Out]) -> None:
        self.item, self.loop, self.future = item, loop, future


class GroupWriter(Generic[_In, _Out]):
    """Runs `commit(items) -> results` (one result per item, in order) in a thread of its own, on every item queued
    while the previous commit ran. Use as a context manager around the event loop that awaits `write`."""

    def __init__(self, commit: Callable[[Sequence[_In]], Sequence[_Out]], name: str = "outbox-writer") -> None:
        self._commit = commit
        self._queue: queue.SimpleQueue[_Waiting[_In, _Out] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.commits = 0  # how many commits ran: fewer than writes when they were grouped

    def __enter__(self) -> GroupWriter[_In, _Out]:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._queue.put(None)
        self._thread.join()

    async def write(self, item: _In) -> _Out:
        """The item's result once its commit is done; the commit's exception if it failed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Out] = loop.create_future()
        self._queue.put(_Waiting(item, loop, future))
        return await future

    def _run(self) -> None:
        closing = False
        while not closing:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < GROUP:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if waiting is None:
                    closing = True
                    break
                group.append(waiting)
            self._finish(group)

    def _finish(self, group: list[_Waiting[_In, _Out]]) -> None:
        try:
            results = self._commit([waiting.item for waiting in group])
        except BaseException as exc:  # every write of the group failed with it; the awaiting senders decide
            for waiting in group:
                _tell(waiting, None, exc)
            return
        self.commits += 1
        for waiting, result in zip(group, results, strict=True):
            _tell(waiting, result, None)


def _tell(waiting: _Waiting[_In, _Out], result: _Out | None, error: BaseException | None) -> None:
    def on_loop() -> None:
        if waiting.future.done():  # a sender cancelled meanwhile does not want it
            return
        if error is not None:
            waiting.future.set_exception(error)
        else:
            waiting.future.set_result(cast(_Out, result))

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        waiting.loop.call_soon_threadsafe(on_loop)
