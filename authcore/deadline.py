"""Await a plugin's coroutine under a timeout, paying for the timer only if it suspends.

Most hook calls finish without ever yielding to the event loop (a cache hit, a
header parse). Arming an `asyncio.timeout` for each of them would cost more
than the call itself, so the coroutine is stepped once by hand; only when it
actually suspends is the rest awaited under the deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


async def await_with_timeout(coro: Coroutine[Any, Any, T], timeout: float) -> T:  # noqa: ASYNC109 - the deadline is the point
    """Run `coro` to completion; raise `TimeoutError` once `timeout` seconds pass while it waits."""
    try:
        first = coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    except BaseException:
        coro.close()
        raise
    return await finish_with_timeout(coro, first, timeout)


async def finish_with_timeout(coro: Coroutine[Any, Any, T], first: Any, timeout: float) -> T:  # noqa: ASYNC109
    """Finish `coro`, already stepped once (it yielded `first`), under `timeout`."""
    async with asyncio.timeout(timeout) as deadline:
        result: T = await _Resumed(coro, first)
    if deadline.expired():
        # The coroutine swallowed the cancellation and answered late: a late answer never counts.
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
