"""Await a plugin's coroutine under a timeout, paying for a timer only if it suspends, and little then.

Most hook calls finish without ever yielding to the event loop (a cache hit, a
header parse). Arming an `asyncio.timeout` for each of them would cost more
than the call itself, so the coroutine is stepped once by hand; only when it
actually suspends is the rest awaited under the deadline. Every call of one hook
instance has the same timeout, so their deadlines fall due in the order they
were armed and one timer (`Deadlines`) serves them all, where an
`asyncio.timeout` would schedule and cancel a timer of its own per call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class _Deadline:
    __slots__ = ("cancelling", "expired", "finished", "task", "when")

    def __init__(self, task: asyncio.Task[Any], when: float) -> None:
        self.task = task
        self.when = when
        self.cancelling = task.cancelling()
        self.finished = False
        self.expired = False


class Deadlines:
    """Deadlines of calls that share one timeout: they expire in the order armed, so one timer serves all."""

    __slots__ = ("_loop", "_pending", "_timer", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._pending: deque[_Deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def arm(self, task: asyncio.Task[Any]) -> _Deadline:
        """A deadline `timeout` seconds from now for `task`, cancelled by the timer if still running then."""
        loop = task.get_loop()
        pending = self._pending
        if loop is not self._loop:
            # Used from another event loop (a runner shared across tests): the old one's timer is moot.
            pending = self._pending = deque()
            self._timer = None
            self._loop = loop
        while pending and pending[0].finished:
            pending.popleft()
        deadline = _Deadline(task, loop.time() + self.timeout)
        pending.append(deadline)
        if self._timer is None:
            self._timer = loop.call_at(deadline.when, self._expire, loop)
        return deadline

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return  # a timer of the event loop used before: its deadlines were dropped with it
        self._timer = None
        now = loop.time()
        pending = self._pending
        while pending and (pending[0].finished or pending[0].when <= now):
            deadline = pending.popleft()
            if not deadline.finished:
                deadline.expired = True
                deadline.task.cancel()
        if pending:
            self._timer = loop.call_at(pending[0].when, self._expire, loop)


async def await_with_timeout(coro: Coroutine[Any, Any, T], deadlines: Deadlines) -> T:
    """Run `coro` to completion; raise `TimeoutError` once `deadlines.timeout` passes while it waits."""
    try:
        first = coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    except BaseException:
        coro.close()
        raise
    return await finish_with_timeout(coro, first, deadlines)


async def finish_with_timeout(coro: Coroutine[Any, Any, T], first: Any, deadlines: Deadlines) -> T:
    """Finish `coro`, already stepped once (it yielded `first`), under `deadlines.timeout`."""
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("a deadline needs a running task")
    deadline = deadlines.arm(task)
    try:
        result: T = await _Resumed(coro, first)
    except asyncio.CancelledError:
        # Ours only if no one else cancelled the task meanwhile (as `asyncio.timeout` decides).
        if deadline.expired and task.uncancel() <= deadline.cancelling:
            raise TimeoutError from None
        raise
    finally:
        deadline.finished = True
    if deadline.expired:
        # The coroutine swallowed the cancellation and answered late: a late answer never counts.
        task.uncancel()
        raise TimeoutError
    return result


async def finish(coro: Coroutine[Any, Any, T], first: Any) -> T:
    """Finish `coro`, already stepped once (it yielded `first`), with no deadline."""
    result: T = await _Resumed(coro, first)
    return result


class _Resumed:
    """An awaitable that continues a coroutine already stepped once.

    It forwards what the event loop sends or throws, exactly as `await` would
    have, starting from the future the coroutine first yielded.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._coro
        pending = self._first
        self._first = None
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - forwarded into the coroutine, as `await` would
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as done:
                    return done.value
