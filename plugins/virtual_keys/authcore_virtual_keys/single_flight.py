"""Concurrent loads of one key share a single read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class SingleFlight(Generic[V]):
    """Calls of `run` for a key already loading wait for that load instead of starting another.

    The load runs in a task of its own, so a waiter that gives up (its request was
    cancelled) does not cancel it for the others. `forget` and `clear` make the
    next call start a fresh load (after a change, an answer already on its way is
    stale); waiters of the old one still get its answer.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[V]] = {}

    async def run(self, key: str, load: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """The outcome of the load running for `key`, started with `load` if none is."""
        return await asyncio.shield(self.start(key, load))

    def start(self, key: str, load: Callable[[], Coroutine[Any, Any, V]]) -> asyncio.Task[V]:
        """The load running for `key`, started with `load` if none is; nobody has to wait for it."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.create_task(self._tracked(key, load()))
            task.add_done_callback(_retrieve)
            self._running[key] = task
        return task

    async def _tracked(self, key: str, load: Coroutine[Any, Any, V]) -> V:
        try:
            return await load
        finally:
            if self.is_current(key):
                del self._running[key]

    def is_current(self, key: str) -> bool:
        """Whether the calling task is the load running for `key` (neither forgotten nor cleared since it started)."""
        return self._running.get(key) is asyncio.current_task()

    def forget(self, key: str) -> None:
        self._running.pop(key, None)

    def clear(self) -> None:
        self._running.clear()


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Mark the outcome as seen even when every waiter went away, so asyncio logs nothing.
    if not task.cancelled():
        task.exception()
