"""Added latency of the budgets plugin per request, in process and on Redis.

A runner with one `custom_auth` plugin that returns a fixed identity carrying a
key budget (`limits={"max_budget": 1000}`), with and without the budgets plugin.
Per request it times the reservation (`await runner.authenticate(request)`) and
the settlement (`await runner.settle(result, completed=True)` with a `Usage`)
separately, and counts the Redis commands and SQL statements of each phase. One
raw `EVALSHA` of a trivial script on the same client is timed in the same run:
the Redis target is stated relative to it (`evalsha`: through redis-py;
`evalsha_reserve`: through redis-py, the baselines' check-and-reserve script
(GET, compare, INCRBY) that "one Redis EVALSHA round trip" was measured with;
`evalsha_lean`: pre-encoded on the store's own pipelined connection, which its
two request-path scripts use). `none_models` / `memory_models`: the identity plugin
reads the body's model first, as virtual_keys' model check does in a gateway, so
the body parse is not counted as budgets' cost. `memory_rl` / `redis_rl`: the same key with rpm and
tpm limits too (still one script to reserve and one to settle).

    uv run python -m bench.budgets [--iterations 5000] [--runs 3] [--no-redis] [--json]
    uv run python -m bench.budgets --profile memory      # cProfile of reserve+settle (memory[_rl], redis[_rl])
    uv run python -m bench.budgets --wrk [--duration 10] [--rounds 3]   # req/s under wrk, POST chat

`--wrk` serves each app below in its own uvicorn process (as `http_throughput`
does) and sends `POST /v1/chat/completions` with a JSON body naming a priced
model: `bare` (Starlette, the route reads the body), `ident` (+ AuthcoreMiddleware,
the fixed identity, no budgets), `memory` and `redis` (+ the budgets plugin).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from authcore_budgets import BudgetsPlugin
from pydantic import BaseModel, ConfigDict
from sqlalchemy import event
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from authcore import Identity, Plugin, RequestContext, Usage, hookimpl
from authcore.config import parse_config
from authcore.lifespan import authcore_lifespan
from authcore.loader import mapping_resolver
from authcore.middleware import AuthcoreMiddleware
from authcore.resources import Resources
from authcore.runner import Runner
from authcore.testing import make_request, started_runner

REDIS_URL = "redis://127.0.0.1:6379/0"
DIR_ENV = "AUTHCORE_BENCH_BUDGETS_DIR"
PREFIX_ENV = "AUTHCORE_BENCH_BUDGETS_PREFIX"
WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{body}'
"""
IDENTITY = Identity(
    auth_method="api_key", key_id="bench-key", team_id="bench-team", user_id="bench-user", limits={"max_budget": 1000}
)
IDENTITY_RATES = Identity(
    auth_method="api_key",
    key_id="bench-key-rl",
    team_id="bench-team",
    user_id="bench-user",
    limits={"max_budget": 1000, "rpm_limit": 10**9, "tpm_limit": 10**12},
)
"""The `*_rl` variants: the same budget plus rpm and tpm limits (reserve and settle stay one script each)."""
BODY: dict[str, Any] = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
USAGE = Usage(model="bench-model", prompt_tokens=8, completion_tokens=8)
PRICES = {"bench-model": {"input_per_1m_tokens": 1, "output_per_1m_tokens": 2}}
TRIVIAL_SCRIPT = "return 1"
CHECK_AND_RESERVE_SCRIPT = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if spent + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end
redis.call('INCRBY', KEYS[1], ARGV[1])
return 1
"""
"""The reference of `../shared/reference/performance_baselines.md` ("EVALSHA check-and-reserve Lua: GET,
compare, INCRBYFLOAT"), with integers: the one-round-trip budget check the issue's 1.3x is stated against."""


class _FixedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rates: bool = False
    reads_models: bool = False
    """Read the requested models first, as virtual_keys' model check does in a gateway."""


class FixedIdentity(Plugin[_FixedConfig]):
    """Every request is the bench key (with rate limits when `rates`)."""

    Config = _FixedConfig

    def __init__(self, name: str, config: _FixedConfig) -> None:
        super().__init__(name, config)
        # Attributed to this instance already, as a real plugin's identities are (else the runner copies it).
        self.identity = replace(IDENTITY_RATES if config.rates else IDENTITY, plugin=name)

    @hookimpl
    async def custom_auth(self, request: RequestContext) -> Identity:
        if self.config.reads_models:
            await request.requested_models()
        return self.identity


async def _chat(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse(_COMPLETION)


async def _models(request: Request) -> JSONResponse:
    return JSONResponse({"object": "list", "data": []})


_COMPLETION = {"id": "bench", "object": "chat.completion", "choices": [], "usage": {"total_tokens": 16}}


def _routes() -> list[Route]:
    return [Route("/v1/chat/completions", _chat, methods=["POST"]), Route("/v1/models", _models, methods=["GET"])]


def bare_app() -> ASGIApp:
    """uvicorn factory: Starlette with the chat route, no authcore."""
    return Starlette(routes=_routes())


def _app(kind: str) -> ASGIApp:
    directory = Path(os.environ.get(DIR_ENV) or tempfile.mkdtemp(prefix="authcore-bench-budgets-"))
    plugins: dict[str, Any] = {"ident": {"use": "fixed"}}
    pipeline: dict[str, list[str]] = {"extract_credentials": [], "custom_auth": ["ident"]}
    storage: dict[str, Any] = {"database_url": f"sqlite+aiosqlite:///{directory / (kind + '-wrk.db')}"}
    if kind != "none":
        settings = {"prices": PRICES, "lock_file": str(directory / f"{kind}-wrk.lock")}
        plugins["budgets"] = {"use": "budgets", "config": settings}
        pipeline["reserve_budget"] = ["budgets"]
    if kind == "redis":
        storage.update(redis_url=REDIS_URL, redis_prefix=os.environ.get(PREFIX_ENV, "bench-budgets-wrk:"))
    config = parse_config({"plugins": plugins, "pipeline": pipeline, "storage": storage}, source=f"<bench:{kind}>")
    resolve = mapping_resolver({"fixed": FixedIdentity, "budgets": BudgetsPlugin})
    return Starlette(
        routes=_routes(),
        middleware=[Middleware(AuthcoreMiddleware)],
        lifespan=authcore_lifespan(config, resolve=resolve),
    )


def ident_app() -> ASGIApp:
    """uvicorn factory: the chat route behind AuthcoreMiddleware, the fixed identity, no budgets."""
    return _app("none")


def memory_app() -> ASGIApp:
    """uvicorn factory: + the budgets plugin, in-process store."""
    return _app("memory")


def redis_app() -> ASGIApp:
    """uvicorn factory: + the budgets plugin on Redis (prefix from the environment)."""
    return _app("redis")


class Counts:
    """Redis commands and SQL statements seen since the last `take()`."""

    def __init__(self) -> None:
        self.redis = 0
        self.sql = 0

    def take(self) -> tuple[int, int]:
        found = (self.redis, self.sql)
        self.redis = self.sql = 0
        return found


@dataclass
class Variant:
    name: str
    reserve_us: list[float] = field(default_factory=list)
    settle_us: list[float] = field(default_factory=list)
    reserve_redis: list[int] = field(default_factory=list)
    reserve_sql: list[int] = field(default_factory=list)
    settle_redis: list[int] = field(default_factory=list)
    settle_sql: list[int] = field(default_factory=list)


_COUNTS: list[Counts] = []
"""The `Counts` being filled; Redis commands of every client are counted (the plugin has its own)."""


def _count_redis_commands() -> None:
    """Wrap redis-py's `execute_command` and the lean connection (`authcore.lean_redis.ScriptConnection.call`)."""
    from redis.asyncio import Redis

    original: Callable[..., Awaitable[Any]] = Redis.execute_command
    if getattr(original, "counted", False):
        return

    async def counted(self: Redis, *args: Any, **options: Any) -> Any:
        for counts in _COUNTS:
            counts.redis += 1
        return await original(self, *args, **options)

    counted.counted = True  # type: ignore[attr-defined]
    Redis.execute_command = counted  # type: ignore[method-assign]
    try:
        from authcore.lean_redis import ScriptConnection
    except ImportError:  # an older plugin (A/B through PYTHONPATH) has no lean connection
        return
    lean: Any = ScriptConnection
    lean_call: Callable[..., Awaitable[Any]] = lean.call

    async def counted_lean(self: Any, command: bytes, *args: Any) -> Any:
        for counts in _COUNTS:
            counts.redis += 1
        return await lean_call(self, command, *args)

    lean.call = counted_lean


def _instrument(resources: Resources, counts: Counts) -> None:
    """Count SQL statements on the engine and Redis commands (each is one round trip)."""

    def on_sql(*_: Any) -> None:
        counts.sql += 1

    event.listen(resources.engine().sync_engine, "before_cursor_execute", on_sql)
    _count_redis_commands()
    _COUNTS[:] = [counts]


@asynccontextmanager
async def _runner(kind: str, directory: Path, prefix: str) -> AsyncIterator[tuple[Runner, Resources]]:
    database = f"sqlite+aiosqlite:///{directory / (kind + '.db')}"
    redis = kind.startswith("redis")
    resources = Resources(database, REDIS_URL, prefix) if redis else Resources(database)
    settings = {"rates": kind.endswith("_rl"), "reads_models": kind.endswith("_models")}
    specs: dict[str, Any] = {"ident": (FixedIdentity, settings)}
    pipeline: dict[str, list[str]] = {"extract_credentials": [], "custom_auth": ["ident"]}
    if not kind.startswith("none"):
        specs["budgets"] = (BudgetsPlugin, {"prices": PRICES, "lock_file": str(directory / f"{kind}.lock")})
        pipeline["reserve_budget"] = ["budgets"]
    async with started_runner(specs, pipeline=pipeline, resources=resources) as runner:
        yield runner, resources


def _requests(count: int) -> list[RequestContext]:
    return [make_request("POST", "/v1/chat/completions", json=BODY) for _ in range(count)]


async def _measure(runner: Runner, counts: Counts, variant: Variant, iterations: int) -> None:
    requests = _requests(iterations)
    counts.take()
    for request in requests:
        start = perf_counter_ns()
        result = await runner.authenticate(request)
        middle = perf_counter_ns()
        reserve_counts = counts.take()
        if result.identity is None:
            raise SystemExit(f"{variant.name}: request refused: {result.error!r}")
        result.usage = USAGE
        middle2 = perf_counter_ns()
        await runner.settle(result, completed=True)
        end = perf_counter_ns()
        settle_counts = counts.take()
        variant.reserve_us.append((middle - start) / 1000)
        variant.settle_us.append((end - middle2) / 1000)
        variant.reserve_redis.append(reserve_counts[0])
        variant.reserve_sql.append(reserve_counts[1])
        variant.settle_redis.append(settle_counts[0])
        variant.settle_sql.append(settle_counts[1])


async def _measure_evalsha(resources: Resources, variant: Variant, iterations: int, *, reserve: bool = False) -> None:
    """redis-py EVALSHA of `return 1`, or with `reserve` of `CHECK_AND_RESERVE_SCRIPT` on a key of this run."""
    client = resources.redis()
    assert client is not None
    sha = str(await client.script_load(CHECK_AND_RESERVE_SCRIPT if reserve else TRIVIAL_SCRIPT))
    keys = (f"{resources.redis_prefix}bench-evalsha-spent",) if reserve else ()
    args = (1, 10**15) if reserve else ()
    for _ in range(iterations):
        start = perf_counter_ns()
        await client.evalsha(sha, len(keys), *keys, *args)
        variant.reserve_us.append((perf_counter_ns() - start) / 1000)


async def _measure_lean_evalsha(resources: Resources, variant: Variant, iterations: int) -> None:
    """The same EVALSHA sent pre-encoded on the store's lean connection (what its two scripts use)."""
    try:
        from authcore.lean_redis import ScriptConnection, pack
    except ImportError:  # an older plugin (A/B through PYTHONPATH)
        return
    client = resources.redis()
    assert client is not None
    sha = str(await client.script_load(TRIVIAL_SCRIPT))
    connection = ScriptConnection(client.connection_pool.connection_kwargs)
    command = pack("EVALSHA", sha, 0)
    try:
        for _ in range(iterations):
            start = perf_counter_ns()
            await connection.call(command, 0.5)
            variant.reserve_us.append((perf_counter_ns() - start) / 1000)
    finally:
        await connection.aclose()


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(variant: Variant) -> dict[str, Any]:
    out: dict[str, Any] = {"name": variant.name}
    for phase in ("reserve", "settle"):
        values: list[float] = getattr(variant, f"{phase}_us")
        if not values:
            continue
        out[f"{phase}_p50_us"] = round(statistics.median(values), 1)
        out[f"{phase}_p99_us"] = round(_p(values, 0.99), 1)
        for what in ("redis", "sql"):
            counted: list[int] = getattr(variant, f"{phase}_{what}")
            if counted:
                out[f"{phase}_{what}_per_request"] = round(statistics.mean(counted), 3)
                out[f"{phase}_{what}_max"] = max(counted)
    return out


async def _cleanup(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


async def run(iterations: int, runs: int, with_redis: bool) -> list[dict[str, Any]]:
    kinds = ["none", "memory", "memory_rl", "none_models", "memory_models"] + (
        ["redis", "redis_rl"] if with_redis else []
    )
    variants = {kind: Variant(kind) for kind in kinds}
    if with_redis:
        variants["evalsha"] = Variant("evalsha")
        variants["evalsha_reserve"] = Variant("evalsha_reserve")
        variants["evalsha_lean"] = Variant("evalsha_lean")
    prefix = f"bench-budgets-{uuid.uuid4().hex[:8]}:"
    try:
        with tempfile.TemporaryDirectory() as folder:
            directory = Path(folder)
            for run_index in range(runs):
                order = kinds[run_index % len(kinds) :] + kinds[: run_index % len(kinds)]
                for kind in order:
                    async with _runner(kind, directory, prefix) as (runner, resources):
                        counts = Counts()
                        _instrument(resources, counts)
                        await _measure(runner, counts, Variant("warmup"), min(500, iterations))
                        await _measure(runner, counts, variants[kind], iterations)
                        if kind == "redis":
                            await _measure_evalsha(resources, Variant("warmup"), 200)
                            await _measure_evalsha(resources, variants["evalsha"], iterations)
                            await _measure_evalsha(resources, Variant("warmup"), 200, reserve=True)
                            await _measure_evalsha(resources, variants["evalsha_reserve"], iterations, reserve=True)
                            await _measure_lean_evalsha(resources, Variant("warmup"), 200)
                            await _measure_lean_evalsha(resources, variants["evalsha_lean"], iterations)
                (directory / "memory.db").unlink(missing_ok=True)
                (directory / "memory_rl.db").unlink(missing_ok=True)
                (directory / "memory_models.db").unlink(missing_ok=True)
    finally:
        if with_redis:
            await _cleanup(prefix)
    return [_summary(variant) for variant in variants.values()]


async def profile(kind: str, iterations: int) -> str:
    prefix = f"bench-budgets-{uuid.uuid4().hex[:8]}:"
    try:
        with tempfile.TemporaryDirectory() as folder:
            async with _runner(kind, Path(folder), prefix) as (runner, _resources):
                counts = Counts()
                await _measure(runner, counts, Variant("warmup"), 300)
                profiler = cProfile.Profile()
                profiler.enable()
                await _measure(runner, counts, Variant(kind), iterations)
                profiler.disable()
    finally:
        if kind.startswith("redis"):
            await _cleanup(prefix)
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(40)
    return stream.getvalue()


def run_wrk(duration: int, rounds: int, threads: int, connections: int) -> list[dict[str, Any]]:
    """Req/s and server CPU per request of each app, rounds rotated; ratios to `bare` within each round."""
    from bench import http_throughput as ht

    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    prefix = f"bench-budgets-wrk-{uuid.uuid4().hex[:8]}:"
    folder = tempfile.mkdtemp(prefix="authcore-bench-budgets-")
    os.environ[DIR_ENV], os.environ[PREFIX_ENV] = folder, prefix
    names = ("bare", "ident", "memory", "redis")
    variants = [ht.Variant(name, f"bench.budgets:{name}_app", name) for name in names]
    script = Path(folder) / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(BODY)), encoding="utf-8")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}

    def one(variant: Any) -> dict[str, float]:
        before = ht._cpu_seconds(variant.process.pid)
        command = [
            wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
            f"http://{ht.HOST}:{variant.port}/v1/chat/completions",
        ]  # fmt: skip
        output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=duration + 30).stdout
        cpu = ht._cpu_seconds(variant.process.pid) - before
        rps, total, non_2xx, _errors, latency = ht.parse_wrk(output)
        return {
            "rps": rps,
            "cpu_us": cpu / total * 1e6,
            "p50_ms": latency.get("p50", 0.0),
            "load": os.getloadavg()[0],
            "non_2xx": non_2xx,
        }

    try:
        with ht._servers(variants):
            for variant in variants:
                one(variant)  # warm-up: imports, caches, connections
            for index in range(rounds):
                shift = index % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    results[variant.name].append(one(variant))
                    row = results[variant.name][-1]
                    print(
                        f"round {index + 1} {variant.name:<7} {row['rps']:>8,.0f} req/s  p50 {row['p50_ms']:.2f} ms"
                        f"  server CPU {row['cpu_us']:.0f} µs/req  load {row['load']:.1f}"
                        + (f"  NON-2XX {row['non_2xx']:.0f}" if row["non_2xx"] else ""),
                        flush=True,
                    )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        asyncio.run(_cleanup(prefix))
    summary: list[dict[str, Any]] = []
    for name in names:
        ratios = [row["rps"] / bare["rps"] for row, bare in zip(results[name], results["bare"], strict=True)]
        cpu = [bare["cpu_us"] / row["cpu_us"] for row, bare in zip(results[name], results["bare"], strict=True)]
        summary.append(
            {
                "name": name,
                "rps_median": round(statistics.median(row["rps"] for row in results[name])),
                "ratio_to_bare_median": round(statistics.median(ratios), 3),
                "server_cpu_ratio_median": round(statistics.median(cpu), 3),
                "server_cpu_us_per_request_median": round(statistics.median(r["cpu_us"] for r in results[name]), 1),
                "non_2xx": int(sum(r["non_2xx"] for r in results[name])),
            }
        )
    return summary


def _print(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'variant':<13} {'reserve p50/p99 µs':>20} {'settle p50/p99 µs':>19}"
        f" {'reserve redis/sql':>18} {'settle redis/sql':>17}"
    )
    base = next(row for row in rows if row["name"] == "none")
    for row in rows:
        if "reserve_p50_us" not in row:
            continue
        reserve = f"{row['reserve_p50_us']:.1f}/{row['reserve_p99_us']:.1f}"
        settle = f"{row['settle_p50_us']:.1f}/{row['settle_p99_us']:.1f}" if "settle_p50_us" in row else "-"
        counts = (
            f"{row.get('reserve_redis_per_request', 0):g}/{row.get('reserve_sql_per_request', 0):g}"
            if "reserve_sql_per_request" in row
            else "-"
        )
        settle_counts = (
            f"{row.get('settle_redis_per_request', 0):g}/{row.get('settle_sql_per_request', 0):g}"
            if "settle_sql_per_request" in row
            else "-"
        )
        print(f"{row['name']:<13} {reserve:>20} {settle:>19} {counts:>18} {settle_counts:>17}")
    print()
    for row in rows:
        if row["name"] in ("memory", "memory_rl", "redis", "redis_rl"):
            added = row["reserve_p50_us"] - base["reserve_p50_us"]
            added99 = row["reserve_p99_us"] - base["reserve_p99_us"]
            print(f"{row['name']}: reserve adds {added:.1f} µs (p50), {added99:.1f} µs (p99) over no budgets")
    read = next((row for row in rows if row["name"] == "none_models"), None)
    for row in rows:
        if read is not None and row["name"] == "memory_models":
            added = row["reserve_p50_us"] - read["reserve_p50_us"]
            added99 = row["reserve_p99_us"] - read["reserve_p99_us"]
            print(
                f"memory_models: reserve adds {added:.1f} µs (p50), {added99:.1f} µs (p99) over no budgets when the"
                " auth plugin has already read the body's model (as virtual_keys does)"
            )
    evalsha = next((row for row in rows if row["name"] == "evalsha"), None)
    lean = next((row for row in rows if row["name"] == "evalsha_lean" and "reserve_p50_us" in row), None)
    checked = next((row for row in rows if row["name"] == "evalsha_reserve" and "reserve_p50_us" in row), None)
    for row in rows:
        if not (evalsha and row["name"].startswith("redis")):
            continue
        added = row["reserve_p50_us"] - base["reserve_p50_us"]
        name = row["name"]
        print(f"{name}: reserve adds {added / evalsha['reserve_p50_us']:.2f}x one redis-py EVALSHA round trip (p50)")
        if checked:
            print(
                f"{name}: reserve adds {added / checked['reserve_p50_us']:.2f}x one redis-py EVALSHA of the baselines'"
                " check-and-reserve script (p50)"
            )
        if lean:
            print(f"{name}: reserve adds {added / lean['reserve_p50_us']:.2f}x one lean EVALSHA round trip (p50)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3, help="runs; each starts every variant afresh")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", choices=("memory", "memory_rl", "redis", "redis_rl"))
    parser.add_argument("--wrk", action="store_true", help="req/s under wrk instead of in-process latency")
    parser.add_argument("--duration", type=int, default=10, help="--wrk: seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="--wrk: rounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    if args.wrk:
        summary = run_wrk(args.duration, args.rounds, args.threads, args.connections)
        if args.json:
            json.dump(summary, sys.stdout, indent=2)
            print()
        else:
            for row in summary:
                print(
                    f"{row['name']:<7} {row['rps_median']:>8,} req/s  ratio to bare {row['ratio_to_bare_median']:.3f}"
                    f"  server-CPU ratio {row['server_cpu_ratio_median']:.3f}"
                    f"  ({row['server_cpu_us_per_request_median']} µs/req)"
                    + (f"  NON-2XX {row['non_2xx']}" if row["non_2xx"] else "")
                )
        return 0
    import uvloop

    loop: Callable[[Any], Any] = uvloop.run
    if args.profile:
        print(loop(profile(args.profile, args.iterations)))
        return 0
    rows = loop(run(args.iterations, args.runs, not args.no_redis))
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        _print(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
