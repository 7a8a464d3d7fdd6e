"""The sending run's group writer: settles committed off the event loop, the ones that wait committed together."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from reminders.delivery.writer import GroupWriter


class Recorder:
    """A commit that blocks until released the first time, so that the other writes queue up behind it."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.groups: list[list[int]] = []
        self.first_running = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on
        self.loop_thread: int | None = None
        self.threads: set[int] = set()

    def commit(self, items: Sequence[int]) -> list[str]:
        self.threads.add(threading.get_ident())
        if not self.groups:
            self.first_running.set()
            self.release.wait(10)
        self.groups.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError("database gone")
        return [f"done {item}" for item in items]


async def _write_all(writer: GroupWriter[int, str], recorder: Recorder, count: int) -> list[str | BaseException]:
    recorder.loop_thread = threading.get_ident()
    first = asyncio.ensure_future(writer.write(0))
    await asyncio.get_running_loop().run_in_executor(None, recorder.first_running.wait, 10)
    rest = [asyncio.ensure_future(writer.write(n)) for n in range(1, count)]
    await asyncio.sleep(0.05)  # every other write is queued while the first commit still runs
    recorder.release.set()
    return list(await asyncio.gather(first, *rest, return_exceptions=True))


def test_writes_queued_during_a_commit_are_committed_together_in_order_off_the_loop() -> None:
    recorder = Recorder()
    with GroupWriter(recorder.commit) as writer:
        results = asyncio.run(_write_all(writer, recorder, 8))
    assert results == [f"done {n}" for n in range(8)]  # each writer gets its own item's result
    assert recorder.groups == [[0], [1, 2, 3, 4, 5, 6, 7]]  # 2 commits for 8 writes
    assert writer.commits == 2
    assert recorder.loop_thread not in recorder.threads  # never on the event loop's thread


def test_a_failed_commit_fails_every_write_of_its_group_and_only_those() -> None:
    recorder = Recorder(fail_on=5)
    with GroupWriter(recorder.commit) as writer:
        results = asyncio.run(_write_all(writer, recorder, 8))
    assert results[0] == "done 0"
    assert all(isinstance(r, RuntimeError) and str(r) == "database gone" for r in results[1:])
    assert writer.commits == 1


def test_the_writer_ends_with_its_context_and_refuses_nothing_before() -> None:
    recorder = Recorder()
    recorder.release.set()
    with GroupWriter(recorder.commit) as writer:
        assert asyncio.run(writer.write(41)) == "done 41"
    assert not writer._thread.is_alive()
    with pytest.raises(RuntimeError):
        writer._thread.start()  # a writer is used for one run only
