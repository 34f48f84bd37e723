"""`authcore explain`: run the pipeline for one made-up request and show every plugin's decision.

Nothing the caller passes with -H is printed: only the trace (names and
reason ids), the identity summary and the public error body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from typing import Any
from urllib.parse import unquote

from starlette.types import Message

from authcore.cli.common import CliError, load_cli_config
from authcore.gateway.settings import gateway_resolver
from authcore.request import RequestContext
from authcore.result import AuthResult
from authcore.runner import Runner

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_METHOD = re.compile(r"[A-Za-z]+")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "explain",
        help="show how the pipeline decides one request",
        description="Run the auth pipeline for one request without serving, and print the decision trace.",
    )
    parser.add_argument("--config", metavar="FILE", help="authcore.yaml (default: the embedded default)")
    parser.add_argument("method", metavar="METHOD")
    parser.add_argument("path", metavar="PATH", help="path and optional query string, e.g. /v1/chat/completions")
    parser.add_argument(
        "-H", "--header", action="append", default=[], metavar="'Name: value'", help="a request header (repeatable)"
    )
    parser.add_argument("--json", dest="body", metavar="BODY", help="request body, sent as application/json")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--no-reserve", action="store_true", help="skip reserve_budget (otherwise holds are made, then released)"
    )
    parser.set_defaults(handler=run)


def parse_headers(values: list[str]) -> list[tuple[bytes, bytes]]:
    """`Name: value` strings as ASGI headers. Errors name the position, never the value."""
    headers: list[tuple[bytes, bytes]] = []
    for position, text in enumerate(values, start=1):
        name, colon, value = text.partition(":")
        name = name.strip()
        if not colon or not _HEADER_NAME.fullmatch(name):
            raise CliError(f"-H #{position}: expected 'Name: value'")
        try:
            raw = value.strip().encode("latin-1")
        except UnicodeEncodeError:
            raise CliError(f"-H #{position} ({name}): the value must be Latin-1 text") from None
        headers.append((name.lower().encode("ascii"), raw))
    return headers


def build_scope(method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes | None) -> dict[str, Any]:
    if not _METHOD.fullmatch(method):
        raise CliError(f"invalid HTTP method {method!r}")
    if not target.startswith("/"):
        raise CliError("PATH must start with '/'")
    raw_path, _, query = target.partition("?")
    if body is not None:
        names = {name for name, _ in headers}
        if b"content-type" not in names:
            headers = [*headers, (b"content-type", b"application/json")]
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 4000),
    }


def run(args: argparse.Namespace) -> int:
    config = load_cli_config(args.config)
    runner = Runner.from_config(config, gateway_resolver(config))
    body = args.body.encode() if args.body is not None else None
    scope = build_scope(args.method, args.path, parse_headers(args.header), body)
    result = asyncio.run(_decide(runner, scope, body or b"", reserve=not args.no_reserve))
    if args.format == "json":
        print(json.dumps(_as_dict(result), indent=2))
    else:
        _print_text(result)
    return 0 if result.allowed else 1


async def _decide(runner: Runner, scope: dict[str, Any], body: bytes, *, reserve: bool) -> AuthResult:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    await runner.startup()
    try:
        request = RequestContext(scope, receive, max_body_bytes=runner.config.max_body_bytes)
        result = await runner.authenticate(request, reserve=reserve)
        # Nothing is served, so nothing may be charged: every hold goes back.
        await runner.settle(result, completed=False)
        return result
    finally:
        await runner.shutdown()


def _as_dict(result: AuthResult) -> dict[str, Any]:
    return {
        "allowed": result.allowed,
        "status": result.status_code,
        "identity": result.identity.summary() if result.identity else None,
        "error": result.error.body() if result.error else None,
        "trace": result.trace.to_dict(),
    }


def _print_text(result: AuthResult) -> None:
    print(result.trace.format())
    print()
    print(f"request_id: {result.trace.request_id}")
    if result.error is not None:
        print(f"outcome:    denied ({result.status_code})")
        print(f"error:      {json.dumps(result.error.body())}")
        return
    print("outcome:    allowed")
    if result.identity is None:
        print("identity:   none (public route)")
        return
    for field, value in result.identity.summary().items():
        if value is not None:
            print(f"  {field + ':':<12} {value}")
