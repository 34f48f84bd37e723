"""await_with_timeout: a free fast path, an exact deadline once the coroutine waits."""

from __future__ import annotations

import asyncio
import time

import pytest

from authcore.deadline import Deadlines, await_with_timeout


async def immediate() -> str:
    return "done"


async def waits(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "late"


async def fails_fast() -> None:
    raise ValueError("fast failure")


async def fails_after_wait() -> None:
    await asyncio.sleep(0)
    raise ValueError("slow failure")


async def test_fast_coroutine_returns_even_with_a_tiny_timeout() -> None:
    assert await await_with_timeout(immediate(), Deadlines(1e-9)) == "done"


async def test_suspending_coroutine_within_deadline_returns() -> None:
    assert await await_with_timeout(waits(0.01), Deadlines(1.0)) == "late"


async def test_suspending_coroutine_past_deadline_raises_timeout_promptly() -> None:
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await await_with_timeout(waits(5), Deadlines(0.05))
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("factory", [fails_fast, fails_after_wait])
async def test_exceptions_propagate_unchanged(factory: object) -> None:
    with pytest.raises(ValueError, match="failure"):
        await await_with_timeout(factory(), Deadlines(1.0))  # type: ignore[operator]


async def test_late_answer_after_swallowed_cancellation_is_a_timeout() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "sneaky allow"
        return "never"

    with pytest.raises(TimeoutError):
        await await_with_timeout(stubborn(), Deadlines(0.02))


async def test_outer_cancellation_still_cancels() -> None:
    task = asyncio.create_task(await_with_timeout(waits(5), Deadlines(10)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_coroutine_awaiting_a_future_gets_its_result() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()

    async def wait_future() -> int:
        return await future + 1

    loop.call_later(0.01, future.set_result, 41)
    assert await await_with_timeout(wait_future(), Deadlines(1.0)) == 42


async def test_many_concurrent_calls_each_get_their_own_result() -> None:
    async def echo(value: int) -> int:
        await asyncio.sleep(0.001 * (value % 3))
        return value

    results = await asyncio.gather(*(await_with_timeout(echo(i), Deadlines(1.0)) for i in range(50)))
    assert results == list(range(50))


async def test_calls_sharing_one_timeout_each_meet_their_own_deadline() -> None:
    deadlines = Deadlines(0.05)

    async def one(index: int) -> str:
        try:
            return await await_with_timeout(waits(0.005 if index % 2 else 5), deadlines)
        except TimeoutError:
            return "timeout"

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(20)))
    assert results == ["timeout" if i % 2 == 0 else "late" for i in range(20)]
    assert time.perf_counter() - started < 0.5


async def test_a_deadline_armed_after_finished_ones_still_expires_on_time() -> None:
    deadlines = Deadlines(0.05)
    assert await await_with_timeout(waits(0.001), deadlines) == "late"
    await asyncio.sleep(0.03)
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await await_with_timeout(waits(5), deadlines)
    # Its own 50 ms, not what was left of the first call's.
    assert 0.04 <= time.perf_counter() - started < 0.5


async def test_a_timed_out_task_carries_no_cancellation_into_its_next_await() -> None:
    deadlines = Deadlines(0.02)
    with pytest.raises(TimeoutError):
        await await_with_timeout(waits(5), deadlines)
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    assert await waits(0.01) == "late"


async def test_outer_cancellation_under_a_shared_deadline_still_cancels() -> None:
    deadlines = Deadlines(10)
    task = asyncio.create_task(await_with_timeout(waits(5), deadlines))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The same deadlines still serve later calls.
    assert await await_with_timeout(waits(0.001), deadlines) == "late"


def test_deadlines_move_to_the_event_loop_in_use() -> None:
    # A runner outlives the loop of one test: its timers there must not disturb the next loop's calls.
    deadlines = Deadlines(0.05)

    async def slow_then_fast(first: float) -> str:
        try:
            return await await_with_timeout(waits(first), deadlines)
        except TimeoutError:
            return "timeout"

    assert asyncio.run(slow_then_fast(5)) == "timeout"
    assert asyncio.run(slow_then_fast(0.001)) == "late"
    assert asyncio.run(slow_then_fast(5)) == "timeout"
