"""One OS process of the cross-process race: fires N concurrent $0.05 requests at a shared $1.00 key budget.

Usage: race_worker.py DATABASE_URL REDIS_URL PREFIX N START_AT MODE HOLD_TTL_S
MODE `settle` commits each admitted request; `hold` keeps the holds and waits to be killed.
Prints one JSON line: {"admitted": a, "denied": d, "other": o}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from budget_helpers import chat, plugins

from authcore import Usage
from authcore.resources import Resources
from authcore.testing import started_runner

IDENTITY = {"key_id": "race-key", "limits": {"max_budget": 1.0}}


async def main(database: str, redis_url: str, prefix: str, count: int, start_at: float, mode: str, ttl: float) -> None:
    specs = plugins({"tok": IDENTITY}, create_schema=False, hold_ttl_s=ttl, store_timeout_s=5)
    async with started_runner(specs, timeout_s=10, resources=Resources(database, redis_url, prefix)) as runner:

        async def one() -> int:
            result = await runner.authenticate(chat("tok"))
            if result.error is None and mode == "settle":
                result.usage = Usage("m5c", 1, 1000)
                await runner.settle(result, completed=True)
            return result.status_code

        await asyncio.sleep(max(0.0, start_at - time.time()))
        statuses = await asyncio.gather(*(one() for _ in range(count)))
        admitted, denied = statuses.count(200), statuses.count(429)
        print(json.dumps({"admitted": admitted, "denied": denied, "other": count - admitted - denied}), flush=True)
        if mode == "hold":
            await asyncio.sleep(3600)


if __name__ == "__main__":
    db, url, prefix, n, start, mode, ttl = sys.argv[1:8]
    asyncio.run(main(db, url, prefix, int(n), float(start), mode, float(ttl)))
