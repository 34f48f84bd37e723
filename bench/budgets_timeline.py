"""Where one budgets reserve on Redis spends its time, next to a lean EVALSHA of `return 1`.

Sequential requests (0.3 ms apart, as a lightly loaded gateway sees them) through `bench.budgets`'
`redis` runner. Timestamps are taken, by wrapping in this process only, when the plugin's
`reserve_budget` starts, when `_reserve` starts, when the command is queued on the store's lean
connection (`authcore.lean_redis._Protocol.send`), when it is written (`_flush`) and when the reply is read
(`data_received`). Prints the median of each segment.

    uv run python -m bench.budgets_timeline [--requests 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from authcore_budgets.plugin import BudgetsPlugin

from authcore import lean_redis as resp
from bench import budgets

MARKS: dict[str, int] = {}
SEGMENTS = (
    ("start", "hook", "pipeline up to reserve_budget"),
    ("hook", "plan", "reserve_budget up to _reserve (body read)"),
    ("plan", "queued", "_reserve up to the command queued (plan, price, encoding)"),
    ("queued", "flush", "queued -> written (one loop turn)"),
    ("flush", "written", "write()"),
    ("written", "reply", "written -> reply read (Redis and the wake-up)"),
    ("reply", "done", "reply -> request decided"),
    ("start", "done", "total"),
)


def _marking(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def marked(*args: Any) -> Any:
        MARKS.setdefault(name, perf_counter_ns())
        return function(*args)

    return marked


def _instrument() -> None:
    protocol: Any = resp._Protocol
    flush = protocol._flush

    def flushed(self: Any) -> None:
        MARKS.setdefault("flush", perf_counter_ns())
        flush(self)
        MARKS.setdefault("written", perf_counter_ns())

    protocol._flush = flushed
    protocol.send = _marking("queued", protocol.send)
    protocol.data_received = _marking("reply", protocol.data_received)
    plugin: Any = BudgetsPlugin
    hook, reserve = plugin.reserve_budget, plugin._reserve

    # Named parameters: the runner passes a hook the arguments its signature names.
    def reserve_budget(self: Any, request: Any, identity: Any) -> Any:
        MARKS.setdefault("hook", perf_counter_ns())
        return hook(self, request, identity)

    def _reserve(self: Any, request: Any, identity: Any) -> Any:
        MARKS.setdefault("plan", perf_counter_ns())
        return reserve(self, request, identity)

    reserve_budget.__dict__.update(hook.__dict__)  # pluggy's hookimpl marker
    plugin.reserve_budget = reserve_budget
    plugin._reserve = _reserve


def _print(title: str, rows: list[dict[str, int]], segments: tuple[tuple[str, str, str], ...]) -> None:
    print(title)
    for start, end, label in segments:
        values = [row[end] - row[start] for row in rows if start in row and end in row]
        if values:
            print(f"  {label:<55} {statistics.median(values) / 1000:8.1f} µs")


async def run(count: int) -> None:
    _instrument()
    prefix = f"bench-timeline-{uuid.uuid4().hex[:8]}:"
    rows: list[dict[str, int]] = []
    lean: list[dict[str, int]] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            async with budgets._runner("redis", Path(folder), prefix) as (runner, resources):
                for index, request in enumerate(budgets._requests(count)):
                    MARKS.clear()
                    MARKS["start"] = perf_counter_ns()
                    result = await runner.authenticate(request)
                    MARKS["done"] = perf_counter_ns()
                    if result.error is not None:
                        raise SystemExit(f"refused: {result.error!r}")
                    if index >= count // 8:  # after the warm-up
                        rows.append(dict(MARKS))
                    result.usage = budgets.USAGE
                    await runner.settle(result, completed=True)
                    await asyncio.sleep(0.0003)
                client = resources.redis()
                assert client is not None
                sha = str(await client.script_load(budgets.TRIVIAL_SCRIPT))
                connection = resp.ScriptConnection(client.connection_pool.connection_kwargs)
                command = resp.pack("EVALSHA", sha, 0)
                try:
                    for index in range(count):
                        MARKS.clear()
                        MARKS["start"] = perf_counter_ns()
                        await connection.call(command, 0.5)
                        MARKS["done"] = perf_counter_ns()
                        if index >= count // 8:
                            lean.append(dict(MARKS))
                        await asyncio.sleep(0.0003)
                finally:
                    await connection.aclose()
    finally:
        await budgets._cleanup(prefix)
    _print("budgets reserve on Redis (redis variant)", rows, SEGMENTS)
    _print(
        "lean EVALSHA of `return 1`, same kind of connection",
        lean,
        (("start", "queued", "call -> queued"), *SEGMENTS[3:]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args()
    import uvloop

    uvloop.run(run(args.requests))


if __name__ == "__main__":
    main()
