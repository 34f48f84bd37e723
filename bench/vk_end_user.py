"""virtual_keys with a named end user (`"user"` in the body), in process: the end-user row cached or read.

Same set-up as `bench.virtual_keys` (headers + virtual_keys, a cached key limited
to two models, `runner.authenticate` of `POST /v1/chat/completions`), with:

- no_user: the body names no end user (the fast path, for reference);
- user_cached: the body names an existing customer; its row is in the plugin's end-user cache;
- user_read: the same, the end-user cache cleared before each call (not timed), so each call
  reads the row from the database, as every such request did before the cache.

The cases run interleaved in each round; medians over rounds are reported.

    uv run python -m bench.vk_end_user [--runs 5] [--iterations 20000] [--read-iterations 1000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from authcore_virtual_keys.tables import end_users
from starlette.types import Message

from authcore.request import RequestContext
from bench.timing import Summary
from bench.virtual_keys import Case, Setup, chat_scope, measure_cases, postgres_database, started

END_USER = "customer-1"
BODY = json.dumps({"model": "gpt-4o", "user": END_USER, "messages": [{"role": "user", "content": "hi"}]}).encode()


async def _receive_with_user() -> Message:
    return {"type": "http.request", "body": BODY, "more_body": False}


def user_step(setup: Setup, *, read: bool) -> tuple[Callable[[], Any], Callable[[], None]]:
    scope = chat_scope(setup.key)
    scope["headers"] = [
        (name, str(len(BODY)).encode() if name == b"content-length" else value) for name, value in scope["headers"]
    ]

    async def step() -> object:
        result = await setup.runner.authenticate(RequestContext(scope, _receive_with_user))
        if result.error is not None:
            raise RuntimeError(f"benchmark request denied: {result.error.reason_id}")
        return result

    def before() -> None:
        if read:
            setup.plugin.cache.invalidate_end_user(END_USER)

    return step, before


def plain_step(setup: Setup) -> tuple[Callable[[], Any], Callable[[], None]]:
    from bench.virtual_keys import cached_step

    return cached_step(setup)


async def _with_customer(setup: Setup) -> Setup:
    await setup.plugin.store.insert_row(
        end_users,
        {"user_id": END_USER, "blocked": False, "spend": 0.0, "metadata": {}, "created_at": datetime.now(UTC)},
    )
    return setup


async def build_cases(stack: contextlib.AsyncExitStack, args: argparse.Namespace) -> list[Case]:
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="authcore-bench-vk-user-")))
    stores = [("sqlite", f"sqlite+aiosqlite:///{folder / 'keys.db'}")]
    if not args.no_postgres:
        stores.append(("pg", await stack.enter_async_context(postgres_database())))
    cases: list[Case] = []
    for label, url in stores:
        setup = await _with_customer(await stack.enter_async_context(started(url)))
        cases += [
            Case(f"no_user_{label}", f"no end user named ({label})", *plain_step(setup), args.iterations),
            Case(
                f"user_cached_{label}",
                f"end user named, row cached ({label})",
                *user_step(setup, read=False),
                args.iterations,
            ),
            Case(
                f"user_read_{label}",
                f"end user named, row read each call ({label})",
                *user_step(setup, read=True),
                args.read_iterations,
            ),
        ]
    return cases


async def measure(args: argparse.Namespace) -> list[Summary]:
    async with contextlib.AsyncExitStack() as stack:
        return await measure_cases(await build_cases(stack, args), args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--read-iterations", type=int, default=1_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    import uvloop

    summaries = uvloop.run(measure(args))
    print(f"{'case':<20} {'median':>10} {'best run':>10} {'p99':>10}  description")
    for s in summaries:
        print(f"{s.name:<20} {s.median_us:>7.1f} µs {s.best_us:>7.1f} µs {s.p99_us:>7.1f} µs  {s.description}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
