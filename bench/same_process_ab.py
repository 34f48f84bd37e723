"""Before/after in one process: an earlier commit's code next to the current one, batches alternating.

On a noisy host two separate runs can differ by more than a change is worth; here both
versions share the process, the clock and the noise. The earlier commit comes from
`bench/renamed_copy.sh REV DEST` (packages renamed `authcore_base`, `bench_base`...):

    bench/renamed_copy.sh ecb0c62 /tmp/previous
    PYTHONPATH=/tmp/previous uv run python -m bench.same_process_ab budgets [none_models memory_models memory]
    PYTHONPATH=/tmp/previous uv run python -m bench.same_process_ab lookup

`budgets`: `bench.budgets`' reserve time (p50 per batch of 1,500) of each variant named, old and new.
`lookup`: `KeyStore.lookup` of one key on Postgres, the old store class and the new one on the
same engines, and raw asyncpg `fetchrow` of the key row. Each prints the median of the batch
medians and the paired median difference (new - old).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROUNDS = 16
BATCH = 1500


def _paired(new: list[float], old: list[float]) -> float:
    return statistics.median(n - o for n, o in zip(new, old, strict=True))


async def budgets(kinds: list[str]) -> None:
    import bench.budgets as new

    old: Any = importlib.import_module("bench_base.budgets")
    import tempfile

    async with contextlib.AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="authcore-ab-")))
        runners: dict[tuple[str, str], tuple[Any, Any]] = {}
        for label, module in (("old", old), ("new", new)):
            for kind in kinds:
                directory = folder / f"{label}-{kind}"
                directory.mkdir()
                runner, _ = await stack.enter_async_context(module._runner(kind, directory, "ab:"))
                await module._measure(runner, module.Counts(), module.Variant("warmup"), 500)
                runners[(label, kind)] = (module, runner)
        medians: dict[tuple[str, str], list[float]] = {key: [] for key in runners}
        for index in range(ROUNDS):
            order = list(runners.items())
            for key, (module, runner) in order if index % 2 else reversed(order):
                variant = module.Variant(key[1])
                await module._measure(runner, module.Counts(), variant, BATCH)
                medians[key].append(module._p(variant.reserve_us, 0.5))
                await asyncio.sleep(0.06)  # the ledger writers run between batches, as between requests
        for (label, kind), values in medians.items():
            print(f"{label:4s} {kind:14s} reserve p50 {statistics.median(values):7.2f} us (min {min(values):.2f})")
        for kind in kinds:
            change = _paired(medians[("new", kind)], medians[("old", kind)])
            print(f"{kind:14s} new - old, paired median: {change:+.2f} us")


async def lookup() -> None:
    import asyncpg
    from authcore_virtual_keys.store import KeyStore

    from authcore.testing import services
    from bench import virtual_keys

    old_store: Any = importlib.import_module("authcore_vk_base.store").KeyStore
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(virtual_keys.postgres_database())
        setup = await stack.enter_async_context(virtual_keys.started(url))
        current = setup.plugin.store
        assert isinstance(current, KeyStore)
        earlier = old_store(current.engine, current.read_engine)
        connection = await asyncpg.connect(services.with_database(url, url.rsplit("/", 1)[1], "postgresql"))
        stack.push_async_callback(connection.close)

        async def raw() -> object:
            return await connection.fetchrow("SELECT * FROM vk_keys WHERE token_hash = $1", setup.token)

        steps: dict[str, Callable[[], Awaitable[object]]] = {
            "old": lambda: earlier.lookup(setup.token),
            "new": lambda: current.lookup(setup.token),
            "raw": raw,
        }
        for step in steps.values():
            for _ in range(200):
                assert await step() is not None
        medians: dict[str, list[float]] = {name: [] for name in steps}
        for index in range(20):
            order = list(steps.items())
            for name, step in order if index % 2 else reversed(order):
                times = []
                for _ in range(200):
                    start = time.perf_counter_ns()
                    await step()
                    times.append((time.perf_counter_ns() - start) / 1000)
                medians[name].append(statistics.median(times))
        for name, values in medians.items():
            print(f"{name:4s} lookup {statistics.median(values):7.1f} us (min {min(values):.1f})")
        print(f"new - old, paired median: {_paired(medians['new'], medians['old']):+.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["budgets", "lookup"])
    parser.add_argument("kinds", nargs="*", default=["none_models", "memory_models", "memory"])
    args = parser.parse_args()
    asyncio.run(budgets(args.kinds) if args.what == "budgets" else lookup())


if __name__ == "__main__":
    main()
