"""virtual_keys on the request path, in process: a cached key, and a cold key (one database read).

Builds `headers` + `virtual_keys` behind `authcore_lifespan`, creates a key
limited to two models through `POST /key/generate`, then times
`await runner.authenticate(RequestContext(scope, receive))` for
`POST /v1/chat/completions` with `Authorization: Bearer <key>` and a small JSON
body naming an allowed model: extraction, HMAC hashing, the cache, the expiry,
block and model checks (the body is read and parsed).

- cached: the key is in the plugin's cache (every call after the first);
- cold: `plugin.cache.invalidate(token)` before each call (not timed), so each
  call reads the key from the database: SQLite (file in a temp dir) and Postgres
  (a temporary database on 127.0.0.1:5432, created and dropped here).

Postgres also runs with engine settings other than `authcore/resources.py`'s
(`--pg-engines`), to show where the round trips go; and raw asyncpg
`fetchrow` of the same row on a held connection, the floor.

    uv run python -m bench.virtual_keys [--runs 5] [--iterations 20000] [--cold-iterations 1000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from authcore_virtual_keys import VirtualKeysPlugin
from authcore_virtual_keys.invalidation import Change
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import Message

from authcore.lifespan import authcore_lifespan
from authcore.middleware import STATE_KEY, AuthcoreMiddleware
from authcore.request import RequestContext
from authcore.resources import Resources
from authcore.runner import Runner
from authcore.testing import services
from bench import bare_app, runner_overhead
from bench.timing import Summary, percentile
from bench.vk_setup import INSTANCE, create_key, vk_config, vk_resolver

CACHED_TARGET_US = 20.0
COLD_PG_TARGET_US = 500.0

BODY = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()

Step = Callable[[], Awaitable[object]]


def chat_scope(key: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            (b"authorization", b"Bearer " + key.encode()),
        ],
        "state": {},
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": BODY, "more_body": False}


# -- engines ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """Which engine `KeyStore.lookup` reads through in one cold-path variant."""

    name: str
    description: str
    shared: bool = False
    """Read through `engine()` (pool_pre_ping=True, a transaction per read), as before `read_engine()` existed."""
    pre_ping: bool = True
    """With `shared`: the shared engine's `pool_pre_ping`."""


ENGINES = {
    engine.name: engine
    for engine in (
        Engine("default", "resources.py as it is: read_engine() (AUTOCOMMIT pool, no pre-ping, retry once)"),
        Engine("shared", "reads through engine(): pool_pre_ping=True, BEGIN/ROLLBACK per read (the old path)", True),
        Engine("shared_noping", "reads through engine(), pool_pre_ping=False", shared=True, pre_ping=False),
    )
}


class TunedResources(Resources):
    """`Resources` whose store reads through the shared engine (the path before `read_engine()`)."""

    def __init__(self, database_url: str, engine: Engine) -> None:
        super().__init__(database_url)
        self._spec = engine

    def engine(self) -> Any:
        if self._engine is None:
            from sqlalchemy.ext.asyncio import create_async_engine

            options: dict[str, Any] = {"pool_pre_ping": self._spec.pre_ping, "pool_size": 10, "max_overflow": 10}
            self._engine = create_async_engine(self._database_url, **options)
        return self._engine

    def read_engine(self) -> Any:
        return self.engine() if self._spec.shared else super().read_engine()


# -- the measured set-ups --------------------------------------------------------------------------------


@dataclass
class Setup:
    runner: Runner
    plugin: VirtualKeysPlugin
    key: str
    token: str


@contextlib.asynccontextmanager
async def started(database_url: str, resources: Resources | None = None, **plugin: Any) -> AsyncIterator[Setup]:
    """A started app (headers + virtual_keys on `database_url`, `plugin` settings added) and a fresh key limited
    to two models."""
    config = vk_config(database_url, **plugin)
    app = Starlette(
        routes=bare_app.routes(),
        middleware=[Middleware(AuthcoreMiddleware)],
        lifespan=authcore_lifespan(config, resolve=vk_resolver(), resources=resources),
    )
    async with app.router.lifespan_context(app):
        runner: Runner = getattr(app.state, STATE_KEY)
        plugin = next(instance for instance in runner.instances if instance.name == INSTANCE)
        assert isinstance(plugin, VirtualKeysPlugin)
        key, token = await create_key(app)
        yield Setup(runner, plugin, key, token)


def cached_step(setup: Setup) -> tuple[Step, Callable[[], None]]:
    scope = chat_scope(setup.key)

    async def step() -> object:
        result = await setup.runner.authenticate(RequestContext(scope, _receive))
        if result.error is not None:
            raise RuntimeError(f"benchmark request denied: {result.error.reason_id}")
        return result

    return step, lambda: None


def cold_step(setup: Setup) -> tuple[Step, Callable[[], None]]:
    step, _ = cached_step(setup)

    def before() -> None:
        setup.plugin.cache.invalidate(setup.token)

    return step, before


def dropped_here_step(setup: Setup) -> tuple[Step, Callable[[], None]]:
    """A key this process dropped (as a new replica would not hold it, or after `cache_ttl_s`), told no one."""
    step, _ = cached_step(setup)
    forget = Change("key", setup.token)

    def before() -> None:
        # This process only: `invalidate` would also publish the change (Redis work during the timed call).
        setup.plugin.cache.apply(forget)

    return step, before


def lookup_step(setup: Setup) -> tuple[Step, Callable[[], None]]:
    """`KeyStore.lookup` alone: the database read the cold path adds."""

    async def step() -> object:
        return await setup.plugin.store.lookup(setup.token)

    return step, lambda: None


def raw_asyncpg_step(connection: Any, token: str) -> tuple[Step, Callable[[], None]]:
    async def step() -> object:
        row = await connection.fetchrow("SELECT * FROM vk_keys WHERE token_hash = $1", token)
        if row is None:
            raise RuntimeError("raw asyncpg: the key row is missing")
        return row

    return step, lambda: None


# -- timing ----------------------------------------------------------------------------------------------


async def _time(step: Step, before: Callable[[], None], iterations: int) -> tuple[float, float]:
    samples = [0] * iterations
    clock = perf_counter_ns
    for index in range(iterations):
        before()
        start = clock()
        await step()
        samples[index] = clock() - start
    samples.sort()
    return percentile(samples, 0.5) / 1000, percentile(samples, 0.99) / 1000


@dataclass
class Case:
    name: str
    description: str
    step: Step
    before: Callable[[], None]
    iterations: int


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A temporary database on the test server, dropped afterwards."""
    server = services.server_url()
    name = f"authcore_bench_vk_{services.random_suffix()}"
    await asyncio.to_thread(services.create_database, server, name)
    try:
        yield services.with_database(server, name)
    finally:
        await asyncio.to_thread(services.drop_database, server, name)


async def build_cases(stack: contextlib.AsyncExitStack, args: argparse.Namespace) -> list[Case]:
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="authcore-bench-vk-")))
    sqlite = await stack.enter_async_context(started(f"sqlite+aiosqlite:///{folder / 'keys.db'}"))
    cases = [
        Case(
            "cached",
            "cached key, whole pipeline (SQLite store; no database read)",
            *cached_step(sqlite),
            args.iterations,
        ),
        Case(
            "cold_sqlite",
            "cold: cache invalidated before each call, SQLite file",
            *cold_step(sqlite),
            args.cold_iterations,
        ),
    ]
    # The apps http_throughput serves (GET /v1/models, the key cached), called in process.
    for name, factory, description in (
        ("app_bare", bare_app.bare, "in-process ASGI call: Starlette, one JSON route"),
        ("app_vk", bare_app.gateway_vk, "in-process ASGI call: gateway_vk (+ AuthcoreMiddleware, headers + vk)"),
    ):
        app = factory()
        assert isinstance(app, Starlette)
        await stack.enter_async_context(app.router.lifespan_context(app))
        cases.append(Case(name, description, runner_overhead._asgi_step(app), lambda: None, args.iterations))
    if args.no_postgres:
        return cases
    url = await stack.enter_async_context(postgres_database())
    tokens: list[str] = []
    for engine_name in args.pg_engines:
        engine = ENGINES[engine_name]
        resources = None if engine_name == "default" else TunedResources(url, engine)
        setup = await stack.enter_async_context(started(url, resources))
        cases.append(
            Case(
                f"cold_pg_{engine.name}",
                f"cold, Postgres: {engine.description}",
                *cold_step(setup),
                args.cold_iterations,
            )
        )
        if engine_name == "default":
            cases.append(
                Case("cached_pg", "cached key, whole pipeline (Postgres store)", *cached_step(setup), args.iterations)
            )
        if engine_name in ("default", "shared"):
            cases.append(
                Case(
                    f"lookup_pg_{engine.name}",
                    f"KeyStore.lookup alone, Postgres: {engine.description}",
                    *lookup_step(setup),
                    args.cold_iterations,
                )
            )
        tokens.append(setup.token)
    redis_url = services.redis_url()
    try:
        services.ping_redis(redis_url)
    except services.ServiceUnavailable:
        redis_url = ""
    if redis_url:
        prefix = f"bench-vk-{os.getpid()}:"
        stack.callback(services.delete_prefix, redis_url, prefix)
        shared = await stack.enter_async_context(started(url, Resources(url, redis_url, prefix), shared_cache=True))
        cases.append(
            Case(
                "cold_pg_redis",
                "cold, Postgres, with Redis (invalidation channel, shared_cache on): the request reads Postgres only",
                *dropped_here_step(shared),
                args.cold_iterations,
            )
        )
    import asyncpg

    connection = await asyncpg.connect(services.with_database(url, url.rsplit("/", 1)[1], "postgresql"))
    stack.push_async_callback(connection.close)
    cases.append(
        Case(
            "raw_asyncpg",
            "floor: raw asyncpg fetchrow of the key row, held connection",
            *raw_asyncpg_step(connection, tokens[0]),
            args.cold_iterations,
        )
    )
    return cases


async def profile(args: argparse.Namespace) -> str:
    """cProfile of `args.profile` (a case name), cumulative time, top 40."""
    import cProfile
    import io
    import pstats

    async with contextlib.AsyncExitStack() as stack:
        cases = {case.name: case for case in await build_cases(stack, args)}
        case = cases[args.profile]
        for _ in range(args.warmup):
            case.before()
            await case.step()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(case.iterations):
            case.before()
            await case.step()
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
    return out.getvalue()


async def measure_cases(cases: list[Case], args: argparse.Namespace, *, quiet: bool = False) -> list[Summary]:
    """Warm every case up, then `args.runs` rounds over all of them, rotating which goes first."""
    summaries = {case.name: Summary(case.name, case.description) for case in cases}
    for case in cases:
        for _ in range(min(args.warmup, case.iterations)):
            case.before()
            await case.step()
    for run in range(args.runs):
        shift = run % len(cases)
        for case in cases[shift:] + cases[:shift]:
            median, p99 = await _time(case.step, case.before, case.iterations)
            summaries[case.name].run_medians_us.append(median)
            summaries[case.name].run_p99s_us.append(p99)
        if not quiet:
            print(f"run {run + 1}/{args.runs} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    return list(summaries.values())


async def measure(args: argparse.Namespace) -> list[Summary]:
    async with contextlib.AsyncExitStack() as stack:
        return await measure_cases(await build_cases(stack, args), args, quiet=args.json)


def report(summaries: list[Summary]) -> str:
    lines = [f"{'case':<24} {'median':>10} {'best run':>10} {'p99':>10}  description"]
    for s in summaries:
        lines.append(f"{s.name:<24} {s.median_us:>7.1f} µs {s.best_us:>7.1f} µs {s.p99_us:>7.1f} µs  {s.description}")
    by_name = {s.name: s for s in summaries}
    cached = by_name["cached"].median_us
    verdict = "meets" if cached < CACHED_TARGET_US else "MISSES"
    lines.append(f"cached: median {cached:.1f} µs {verdict} the {CACHED_TARGET_US:.0f} µs target")
    if "cold_pg_default" in by_name:
        cold = by_name["cold_pg_default"].median_us
        verdict = "meets" if cold < COLD_PG_TARGET_US else "MISSES"
        lines.append(f"cold Postgres, engine as in resources.py: median {cold:.0f} µs {verdict} the 500 µs target")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20_000, help="calls per run, cached cases")
    parser.add_argument("--cold-iterations", type=int, default=1_000, help="calls per run, cold cases")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--pg-engines",
        nargs="+",
        choices=list(ENGINES),
        default=list(ENGINES),
        help="Postgres engine variants (default: all)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", metavar="CASE", help="print a cProfile of one case instead (e.g. cached)")
    args = parser.parse_args(argv)
    if args.profile:
        import uvloop

        print(uvloop.run(profile(args)))
        return 0
    # uvloop, as uvicorn runs the gateway.
    import uvloop

    summaries = uvloop.run(measure(args))
    if args.json:
        payload = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_average": os.getloadavg()[0],
            "cases": [
                {**asdict(s), "median_us": s.median_us, "best_us": s.best_us, "p99_us": s.p99_us} for s in summaries
            ],
        }
        json.dump(payload, sys.stdout, indent=2)
        print()
    else:
        print(report(summaries))
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
