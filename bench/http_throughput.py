"""HTTP throughput under wrk: bare Starlette vs the same app behind AuthcoreMiddleware.

Each variant runs in its own uvicorn process (1 worker, uvloop, httptools, no
access log), all started together on free loopback ports. Every round runs wrk
once per variant, in an order rotated between rounds; the figure to trust is
the median of the per-round ratios to bare Starlette, since absolute req/s
moves a lot between rounds on a shared VM. Each round also reads the server's
CPU time from /proc, giving server CPU per request.

    uv run python -m bench.http_throughput [--duration 10] [--rounds 3] [--with-vk] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

from bench.bare_app import gateway_available
from bench.noop_plugins import API_KEY

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.8
TARGET_RATIOS = {"gateway_vk": 0.75}
"""Targets other than TARGET_RATIO (issue #3: a cached virtual key keeps at least 0.75x bare)."""
HOST = "127.0.0.1"
PATH = "/v1/models"
AUTH_HEADER = f"Authorization: Bearer {API_KEY}"

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class Variant:
    name: str
    factory: str
    description: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None


@dataclass
class WrkResult:
    requests_per_s: float
    requests: int
    non_2xx: int
    socket_errors: str | None
    latency_ms: dict[str, float]
    server_cpu_us_per_request: float | None
    load_average: float
    """1-minute load average when the run ended: above ~2 other work shared the 2 vCPUs."""


@dataclass
class VariantSummary:
    name: str
    description: str
    rounds: list[WrkResult] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    cpu_ratios: list[float] = field(default_factory=list)
    """Bare's server CPU per request over this variant's, per round: less sensitive to wrk and neighbours."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _start(variant: Variant) -> None:
    variant.port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", variant.factory,
        "--no-access-log", "--loop", "uvloop", "--http", "httptools", "--workers", "1",
        "--host", HOST, "--port", str(variant.port), "--log-level", "warning",
    ]  # fmt: skip
    # Own session, so the whole process group can be stopped at the end.
    variant.process = subprocess.Popen(command, cwd=ROOT, start_new_session=True)


def _get(port: int, timeout: float = 1.0) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://{HOST}:{port}{PATH}", headers={"Authorization": f"Bearer {API_KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _wait_ready(variants: list[Variant], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(variants)
    while pending:
        for variant in list(pending):
            assert variant.process is not None
            if variant.process.poll() is not None:
                raise RuntimeError(f"{variant.name}: uvicorn exited with {variant.process.returncode}")
            with contextlib.suppress(OSError):
                status, body = _get(variant.port)
                if status != 200:
                    raise RuntimeError(f"{variant.name}: GET {PATH} answered {status}: {body[:200]!r}")
                pending.remove(variant)
        if pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"servers not ready after {timeout:.0f}s: {[v.name for v in pending]}")
            time.sleep(0.2)


def _stop(variants: list[Variant]) -> None:
    for variant in variants:
        process = variant.process
        if process is None or process.poll() is not None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for variant in variants:
        process = variant.process
        if process is None:
            continue
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@contextlib.contextmanager
def _servers(variants: list[Variant]) -> Iterator[None]:
    """Start every server; stop them all on exit, whatever happened (SIGTERM included)."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for variant in variants:
            _start(variant)
        _wait_ready(variants)
        yield
    finally:
        _stop(variants)
        signal.signal(signal.SIGTERM, previous)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of /proc/<pid>/stat (1-based); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _to_ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if match is None:
        raise ValueError(f"unparsed wrk latency {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> tuple[float, int, int, str | None, dict[str, float]]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or total is None:
        raise RuntimeError(f"could not parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:(.*)", output)
    latency = {f"p{pct}": _to_ms(value) for pct, value in re.findall(r"^\s+(\d+)%\s+(\S+)", output, re.MULTILINE)}
    return (
        float(rps.group(1)),
        int(total.group(1)),
        int(non_2xx.group(1)) if non_2xx else 0,
        errors.group(1).strip() if errors else None,
        latency,
    )


def _wrk(wrk: str, variant: Variant, duration: int, threads: int, connections: int) -> WrkResult:
    assert variant.process is not None
    before = _cpu_seconds(variant.process.pid)
    command = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-H", AUTH_HEADER,
        f"http://{HOST}:{variant.port}{PATH}",
    ]  # fmt: skip
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=duration + 30).stdout
    cpu = _cpu_seconds(variant.process.pid) - before
    rps, total, non_2xx, errors, latency = parse_wrk(output)
    per_request = cpu / total * 1e6 if total else None
    return WrkResult(rps, total, non_2xx, errors, latency, per_request, os.getloadavg()[0])


def _vk_variant() -> Variant:
    return Variant(
        "gateway_vk",
        "bench.bare_app:gateway_vk",
        "+ AuthcoreMiddleware, headers + virtual_keys (SQLite), the sent key cached",
    )


def _variants(include_gateway: bool) -> list[Variant]:
    variants = [
        Variant("bare", "bench.bare_app:bare", "Starlette, one JSON route"),
        Variant("authcore", "bench.bare_app:authcore", "+ AuthcoreMiddleware, 5 no-op plugins (authcore_lifespan)"),
        Variant("authcore1", "bench.bare_app:authcore_one", "+ AuthcoreMiddleware, 1 plugin (custom_auth)"),
    ]
    if include_gateway:
        variants.append(Variant("gateway", "bench.bare_app:gateway", "authcore.gateway create_app, 5 no-op plugins"))
    return variants


def _extra(spec: str) -> Variant:
    name, sep, factory = spec.partition("=")
    if not sep or not name or ":" not in factory:
        raise SystemExit(f"--variant wants NAME=module:factory, got {spec!r}")
    return Variant(name, factory, f"extra: {factory}")


def run(args: argparse.Namespace) -> list[VariantSummary]:
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    include_gateway = not args.no_gateway and gateway_available()
    variants = _variants(include_gateway) + ([_vk_variant()] if args.with_vk else [])
    variants += [_extra(spec) for spec in args.variant]
    summaries = {v.name: VariantSummary(v.name, v.description) for v in variants}
    with _servers(variants):
        for variant in variants if args.warmup > 0 else ():
            # Warm-up: first requests pay for imports, caches and connection set-up.
            _wrk(wrk, variant, args.warmup, args.threads, args.connections)
        for round_index in range(args.rounds):
            shift = round_index % len(variants)
            measured: dict[str, WrkResult] = {}
            for variant in variants[shift:] + variants[:shift]:
                measured[variant.name] = result = _wrk(wrk, variant, args.duration, args.threads, args.connections)
                if not args.json:
                    print(
                        f"round {round_index + 1} {variant.name:<9} {result.requests_per_s:>9,.0f} req/s  "
                        f"p50 {result.latency_ms.get('p50', float('nan')):.2f} ms  "
                        f"p99 {result.latency_ms.get('p99', float('nan')):.2f} ms  "
                        f"server CPU {result.server_cpu_us_per_request or float('nan'):.1f} µs/req  "
                        f"load {result.load_average:.1f}"
                        + (f"  NON-2XX {result.non_2xx}" if result.non_2xx else "")
                        + (f"  socket errors: {result.socket_errors}" if result.socket_errors else ""),
                        flush=True,
                    )
            for name, result in measured.items():
                summaries[name].rounds.append(result)
                summaries[name].ratios.append(result.requests_per_s / measured["bare"].requests_per_s)
                bare_cpu = measured["bare"].server_cpu_us_per_request
                if bare_cpu and result.server_cpu_us_per_request:
                    summaries[name].cpu_ratios.append(bare_cpu / result.server_cpu_us_per_request)
    if not include_gateway and not args.no_gateway and not args.json:
        print("(gateway variant skipped: authcore.gateway.app.create_app is not available)")
    return list(summaries.values())


def _report(summaries: list[VariantSummary]) -> str:
    header = f"{'variant':<9} {'req/s median':>12} {'min..max':>17} {'ratio':>6} {'p50':>8} {'p99':>8} {'CPU/req':>9}"
    lines = [header + "  description"]
    for s in summaries:
        rps = [r.requests_per_s for r in s.rounds]
        cpu = [r.server_cpu_us_per_request for r in s.rounds if r.server_cpu_us_per_request is not None]
        p50 = statistics.median(r.latency_ms.get("p50", float("nan")) for r in s.rounds)
        p99 = statistics.median(r.latency_ms.get("p99", float("nan")) for r in s.rounds)
        lines.append(
            f"{s.name:<9} {statistics.median(rps):>12,.0f} {min(rps):>8,.0f}..{max(rps):<7,.0f} "
            f"{statistics.median(s.ratios):>6.3f} {p50:>5.2f} ms {p99:>5.2f} ms "
            f"{statistics.median(cpu) if cpu else float('nan'):>6.1f} µs  {s.description}"
        )
    for s in summaries:
        if s.name != "bare":
            ratio = statistics.median(s.ratios)
            target = TARGET_RATIOS.get(s.name, TARGET_RATIO)
            verdict = "meets" if ratio >= target else "MISSES"
            per_round = ", ".join(f"{r:.3f}" for r in s.ratios)
            lines.append(f"{s.name}: median ratio {ratio:.3f} ({per_round}) {verdict} the {target}x target")
            if s.cpu_ratios:
                cpu_ratio = statistics.median(s.cpu_ratios)
                per_round = ", ".join(f"{r:.3f}" for r in s.cpu_ratios)
                lines.append(f"{s.name}: server-CPU ratio {cpu_ratio:.3f} ({per_round})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="whole seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--warmup", type=int, default=2, help="whole seconds of wrk per server before round 1 (0: none)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--no-gateway", action="store_true", help="skip the gateway variant even if it exists")
    parser.add_argument(
        "--with-vk",
        action="store_true",
        help="also serve gateway_vk: headers + virtual_keys, the key wrk sends created at start-up",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=module:factory",
        help="also serve this uvicorn factory (A/B a candidate change; extend PYTHONPATH if needed)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    summaries = run(args)
    if args.json:
        payload = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wrk": f"-t{args.threads} -c{args.connections} -d{args.duration}s",
            "rounds": args.rounds,
            "variants": [
                {**asdict(s), "median_rps": statistics.median(r.requests_per_s for r in s.rounds),
                 "median_ratio": statistics.median(s.ratios),
                 "median_cpu_ratio": statistics.median(s.cpu_ratios) if s.cpu_ratios else None}
                for s in summaries
            ],
        }  # fmt: skip
        json.dump(payload, sys.stdout, indent=2)
        print()
    else:
        print(_report(summaries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
