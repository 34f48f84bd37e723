"""The runner's own cost per request, in process, with no-op plugins.

Times `await runner.authenticate(RequestContext(scope))` one call at a time
with `perf_counter_ns`. Variants run interleaved within each run (rotated
order), so machine noise hits them alike; the summary is the median of the
per-run medians, the best run's median, and the median of the per-run p99s.
The baseline (building a `RequestContext` and awaiting a trivial coroutine)
is subtracted to give the net overhead.

    uv run python -m bench.runner_overhead [--runs 5] [--iterations 20000] [--json]
    uv run python -m bench.runner_overhead --profile async5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from time import perf_counter_ns
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message

from authcore.request import RequestContext
from authcore.runner import Runner
from bench import bare_app
from bench.noop_plugins import API_KEY, five_plugin_runner, one_plugin_runner
from bench.timing import Summary, percentile

TARGET_US = 15.0
"""The issue's goal for the five no-op plugins (median, per request)."""

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50000),
    "scheme": "http",
    "method": "GET",
    "root_path": "",
    "path": "/v1/models",
    "raw_path": b"/v1/models",
    "query_string": b"",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bench"),
        (b"accept", b"*/*"),
        (b"authorization", b"Bearer " + API_KEY.encode()),
    ],
    "state": {},
}

Step = Callable[[], Awaitable[object]]


async def _trivial() -> None:
    return None


def _baseline_step() -> Step:
    async def step() -> object:
        request = RequestContext(SCOPE)
        await _trivial()
        return request

    return step


def _runner_step(runner: Runner) -> Step:
    async def step() -> object:
        result = await runner.authenticate(RequestContext(SCOPE))
        if result.error is not None:
            raise RuntimeError(f"benchmark pipeline denied: {result.error.reason_id}")
        return result

    return step


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


def _asgi_step(app: ASGIApp) -> Step:
    async def step() -> object:
        # A fresh scope per call, as a server would give: the middleware writes into it.
        scope = dict(SCOPE)
        scope["state"] = {}
        await app(scope, _receive, _send)
        return scope

    return step


async def _started(runner: Runner, stack: contextlib.AsyncExitStack) -> Runner:
    await runner.startup()
    stack.push_async_callback(runner.shutdown)
    return runner


async def _build(stack: contextlib.AsyncExitStack) -> dict[str, tuple[str, Step]]:
    """Every variant, started; `stack` stops them."""
    steps: dict[str, tuple[str, Step]] = {
        "baseline": ("RequestContext(scope) + await a trivial coroutine", _baseline_step()),
        "async5": ("5 no-op plugins, async hooks", _runner_step(await _started(five_plugin_runner(), stack))),
        "sync5": ("5 no-op plugins, sync hooks", _runner_step(await _started(five_plugin_runner(sync=True), stack))),
        "async1": (
            "1 plugin: async custom_auth returns the identity",
            _runner_step(await _started(one_plugin_runner(), stack)),
        ),
        "app_bare": ("in-process ASGI call: Starlette, one JSON route", _asgi_step(bare_app.bare())),
    }
    # The very apps http_throughput serves, each runner started by the app's own lifespan.
    apps = [
        ("app_auth", bare_app.authcore, "the same + AuthcoreMiddleware, 5 async no-op plugins (runner from app.state)"),
        ("app_auth1", bare_app.authcore_one, "the same + AuthcoreMiddleware, 1 plugin (custom_auth)"),
    ]
    if bare_app.gateway_available():
        apps.append(("app_gw", bare_app.gateway, "authcore.gateway create_app, 5 async no-op plugins"))
    for name, factory, description in apps:
        app = factory()
        assert isinstance(app, Starlette)
        await stack.enter_async_context(app.router.lifespan_context(app))
        steps[name] = (f"in-process ASGI call: {description}", _asgi_step(app))
    return steps


async def _time(step: Step, iterations: int) -> tuple[float, float]:
    """(median µs, p99 µs) of `iterations` single calls."""
    samples = [0] * iterations
    clock = perf_counter_ns
    for index in range(iterations):
        start = clock()
        await step()
        samples[index] = clock() - start
    samples.sort()
    return percentile(samples, 0.5) / 1000, percentile(samples, 0.99) / 1000


async def _clock_overhead_ns(iterations: int = 100_000) -> float:
    samples = [0] * iterations
    clock = perf_counter_ns
    for index in range(iterations):
        start = clock()
        samples[index] = clock() - start
    return float(statistics.median(samples))


async def measure(runs: int, iterations: int, warmup: int) -> tuple[list[Summary], float]:
    async with contextlib.AsyncExitStack() as stack:
        steps = await _build(stack)
        summaries = {name: Summary(name, description) for name, (description, _) in steps.items()}
        names = list(steps)
        for _, step in steps.values():
            for _ in range(warmup):
                await step()
        for run in range(runs):
            shift = run % len(names)
            for name in names[shift:] + names[:shift]:
                median, p99 = await _time(steps[name][1], iterations)
                summaries[name].run_medians_us.append(median)
                summaries[name].run_p99s_us.append(p99)
        clock_ns = await _clock_overhead_ns()
    return list(summaries.values()), clock_ns


async def profile(variant: str, iterations: int, top: int) -> str:
    async with contextlib.AsyncExitStack() as stack:
        step = (await _build(stack))[variant][1]
        for _ in range(1000):
            await step()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(iterations):
            await step()
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def _report(summaries: list[Summary], clock_ns: float, args: argparse.Namespace) -> str:
    base = next(s for s in summaries if s.name == "baseline")
    lines = [
        f"runner overhead: {args.runs} runs x {args.iterations} calls, loop={args.loop}, "
        f"python {platform.python_version()}, perf_counter_ns pair = {clock_ns:.0f} ns, "
        f"load average {os.getloadavg()[0]:.1f}",
        f"{'variant':<9} {'median':>9} {'best run':>9} {'p99':>9} {'net median':>11}  description",
    ]
    app_bare = next(s for s in summaries if s.name == "app_bare")
    for s in summaries:
        reference = app_bare if s.name.startswith("app_") else base
        net = "-" if s.name in ("baseline", "app_bare") else f"{s.median_us - reference.median_us:.2f} µs"
        lines.append(
            f"{s.name:<9} {s.median_us:>6.2f} µs {s.best_us:>6.2f} µs {s.p99_us:>6.2f} µs {net:>11}  {s.description}"
        )
    five = next(s for s in summaries if s.name == "async5")
    verdict = "meets" if five.median_us <= TARGET_US else "MISSES"
    lines.append(f"async5 median {five.median_us:.2f} µs {verdict} the {TARGET_US:.0f} µs target")
    lines.append("net = median minus baseline; for app_* minus app_bare (middleware + runner + plugins [+ gateway])")
    lines.append(
        "per-run medians (µs): "
        + "; ".join(f"{s.name} " + "/".join(f"{m:.2f}" for m in s.run_medians_us) for s in summaries)
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20_000, help="timed calls per variant per run")
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--profile", metavar="VARIANT", help="cProfile one variant instead of timing")
    parser.add_argument("--top", type=int, default=30, help="rows of the profile to print")
    args = parser.parse_args(argv)

    if args.loop == "uvloop":
        import uvloop

        run: Callable[[Any], Any] = uvloop.run
    else:
        run = asyncio.run
    if args.profile:
        print(run(profile(args.profile, args.iterations, args.top)))
        return 0
    summaries, clock_ns = run(measure(args.runs, args.iterations, args.warmup))
    if args.json:
        payload = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(),
            "loop": args.loop,
            "runs": args.runs,
            "iterations": args.iterations,
            "gc_enabled": gc.isenabled(),
            "clock_overhead_ns": clock_ns,
            "load_average_1m": os.getloadavg()[0],
            "target_us": TARGET_US,
            "variants": [
                {**asdict(s), "median_us": s.median_us, "best_us": s.best_us, "p99_us": s.p99_us} for s in summaries
            ],
        }
        json.dump(payload, sys.stdout, indent=2)
        print()
    else:
        print(_report(summaries, clock_ns, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
