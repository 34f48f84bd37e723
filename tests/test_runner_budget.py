"""reserve_budget: all-or-nothing holds, and exactly one settlement per request however it ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

import authcore
from authcore.middleware import AuthcoreMiddleware
from authcore.runner import Runner
from tests._runner_helpers import KeyHeader, KeyTable, build_runner, request, started

LOG: list[str] = []


SETTLING: asyncio.Event
"""Set when a `slow` hold starts settling (its store round trip); each test that waits for it makes a new one."""


class Hold(authcore.Reservation):
    def __init__(self, owner: str, fail_commit: bool = False, slow: bool = False) -> None:
        self.owner = owner
        self.fail_commit = fail_commit
        self.slow = slow
        self.headers = {"X-RateLimit-Remaining-Requests": f"9-{owner}"}

    async def _round_trip(self) -> None:
        if self.slow:
            SETTLING.set()
            await asyncio.sleep(0.05)

    async def commit(self, usage: authcore.Usage | None) -> None:
        await self._round_trip()
        LOG.append(f"commit:{self.owner}:{usage.total_tokens if usage else None}")
        if self.fail_commit:
            raise RuntimeError("ledger down")

    async def release(self) -> None:
        await self._round_trip()
        LOG.append(f"release:{self.owner}")


async def idle_client() -> Message:
    """A client that sends nothing more and stays connected (for the length of a test)."""
    await asyncio.sleep(10)
    return {"type": "http.disconnect"}


async def discard(message: Message) -> None:
    return None


def reserve_type(behaviour: str) -> type[Any]:
    class Reserve(authcore.Plugin[authcore.EmptyConfig]):
        @authcore.hookimpl
        async def reserve_budget(self, identity: authcore.Identity) -> authcore.Reservation | None:
            LOG.append(f"reserve:{self.name}")
            if behaviour == "deny":
                raise authcore.BudgetExceeded(retry_after=30)
            if behaviour == "crash":
                raise RuntimeError("crash")
            if behaviour == "none":
                return None
            return Hold(self.name, fail_commit=behaviour == "bad_commit", slow=behaviour == "slow")

    return Reserve


TYPES: dict[str, Any] = {"key": KeyHeader, "table": KeyTable} | {
    b: reserve_type(b) for b in ("hold", "deny", "crash", "none", "bad_commit", "slow")
}


def runner_for(*reserves: tuple[str, str]) -> Runner:
    plugins: dict[str, Any] = {"k": "key", "t": "table"} | {name: kind for name, kind in reserves}
    return build_runner(TYPES, plugins, {"extract_credentials": ["k"], "reserve_budget": [n for n, _ in reserves]})


async def test_all_reserves_run_and_all_holds_are_kept() -> None:
    LOG.clear()
    runner = await started(runner_for(("a", "hold"), ("n", "none"), ("b", "hold")))
    result = await runner.authenticate(request(headers={"x-key": "good"}))
    assert result.allowed
    assert LOG == ["reserve:a", "reserve:n", "reserve:b"]
    assert [held.plugin for held in result.reservations] == ["a", "b"]


@pytest.mark.parametrize(("kind", "status"), [("deny", 429), ("crash", 503)])
async def test_later_reserve_failing_releases_earlier_holds_in_reverse(kind: str, status: int) -> None:
    LOG.clear()
    runner = await started(runner_for(("a", "hold"), ("b", "hold"), ("c", kind), ("d", "hold")))
    result = await runner.authenticate(request(headers={"x-key": "good"}))
    assert result.status_code == status
    assert LOG == ["reserve:a", "reserve:b", "reserve:c", "release:b", "release:a"]
    if kind == "deny":
        assert result.error is not None
        assert result.error.response_headers()["retry-after"] == "30"


async def test_settle_happens_exactly_once() -> None:
    LOG.clear()
    runner = await started(runner_for(("a", "hold")))
    result = await runner.authenticate(request(headers={"x-key": "good"}))
    await runner.settle(result, completed=True)
    await runner.settle(result, completed=True)
    await runner.settle(result, completed=False)
    assert LOG == ["reserve:a", "commit:a:None"]


async def test_failing_commit_is_logged_and_other_holds_still_commit(caplog: pytest.LogCaptureFixture) -> None:
    LOG.clear()
    runner = await started(runner_for(("a", "bad_commit"), ("b", "hold")))
    result = await runner.authenticate(request(headers={"x-key": "good"}))
    with caplog.at_level(logging.WARNING, logger="authcore"):
        await runner.settle(result, completed=True)
    assert LOG[-2:] == ["commit:a:None", "commit:b:None"]
    assert any("'a' failed to commit" in record.getMessage() for record in caplog.records)
    assert ("settle", "a", "error", "commit_failed") in [
        (s.stage, s.plugin, s.outcome, s.reason_id) for s in result.trace.steps
    ]


# -- settlement through the middleware ------------------------------------------------------------------


async def used(request: Request) -> JSONResponse:
    request.scope["authcore"].usage = authcore.Usage("gpt-4o", prompt_tokens=7, completion_tokens=5)
    return JSONResponse({"ok": True})


async def failed(request: Request) -> Response:
    request.scope["authcore"].usage = authcore.Usage("gpt-4o", prompt_tokens=7)
    return JSONResponse({"error": "upstream"}, status_code=502)


async def raises(request: Request) -> Response:
    raise RuntimeError("app bug")


def app(runner: Runner) -> Starlette:
    routes = [Route("/used", used), Route("/failed", failed), Route("/raises", raises)]
    return Starlette(routes=routes, middleware=[Middleware(AuthcoreMiddleware, runner=runner)])


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/used", "commit:a:12"), ("/failed", "release:a"), ("/raises", "release:a")],
)
def test_middleware_settles_by_outcome(path: str, expected: str) -> None:
    LOG.clear()
    runner = runner_for(("a", "hold"))
    with TestClient(app(runner), raise_server_exceptions=False) as client:
        client.portal.call(runner.startup)  # type: ignore[union-attr]
        response = client.get(path, headers={"x-key": "good"})
    assert response.status_code == {"/used": 200, "/failed": 502, "/raises": 500}[path]
    assert ["reserve:a", expected] == LOG


def test_reservation_headers_are_added_to_the_allowed_response() -> None:
    LOG.clear()
    runner = runner_for(("a", "hold"), ("b", "hold"))
    with TestClient(app(runner)) as client:
        client.portal.call(runner.startup)  # type: ignore[union-attr]
        response = client.get("/used", headers={"x-key": "good"})
    assert response.status_code == 200
    assert response.headers.get_list("x-ratelimit-remaining-requests") == ["9-a", "9-b"]
    assert response.headers["content-type"] == "application/json"


def test_denied_reserve_gives_429_and_app_never_runs() -> None:
    LOG.clear()
    runner = runner_for(("a", "hold"), ("b", "deny"))
    with TestClient(app(runner)) as client:
        client.portal.call(runner.startup)  # type: ignore[union-attr]
        response = client.get("/used", headers={"x-key": "good"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert response.json()["error"]["code"] == "budget_exceeded"
    assert LOG == ["reserve:a", "reserve:b", "release:a"]


# Hand-driven ASGI: the client goes away in the middle of a stream.


async def chunks() -> AsyncIterator[bytes]:
    for index in range(5):
        yield f"chunk{index}\n".encode()
        await asyncio.sleep(0.01)


async def streamed(scope: Scope, receive: Receive, send: Send) -> None:
    scope["authcore"].usage = authcore.Usage(prompt_tokens=1)
    await StreamingResponse(chunks())(scope, receive, send)


def scope_for(spec_version: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "POST",
        "path": "/stream",
        "raw_path": b"/stream",
        "query_string": b"",
        "headers": [(b"x-key", b"good")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def test_send_failing_mid_stream_releases() -> None:
    LOG.clear()
    runner = await started(runner_for(("a", "hold")))
    bodies = 0

    async def receive() -> Message:
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal bodies
        if message["type"] == "http.response.body":
            bodies += 1
            if bodies == 2:
                raise OSError("connection reset")

    with pytest.raises(Exception):  # noqa: B017,PT011 - Starlette turns the OSError into ClientDisconnect
        await AuthcoreMiddleware(streamed, runner)(scope_for("2.4"), receive, send)
    assert LOG == ["reserve:a", "release:a"]


async def test_http_disconnect_mid_stream_releases() -> None:
    LOG.clear()
    runner = await started(runner_for(("a", "hold")))
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.sleep(0.015)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await AuthcoreMiddleware(streamed, runner)(scope_for("2.3"), receive, send)
    assert not any(m["type"] == "http.response.body" and not m.get("more_body") for m in sent)
    assert LOG == ["reserve:a", "release:a"]


async def test_cancelled_request_task_still_releases() -> None:
    LOG.clear()
    runner = await started(runner_for(("a", "hold")))
    first_chunk = asyncio.Event()

    async def receive() -> Message:
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            first_chunk.set()

    task = asyncio.create_task(AuthcoreMiddleware(streamed, runner)(scope_for("2.4"), receive, send))
    await asyncio.wait_for(first_chunk.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.01)  # the shielded settlement finishes
    assert LOG == ["reserve:a", "release:a"]


async def test_request_cancelled_while_settling_still_settles() -> None:
    # The settlement suspends (a store round trip) and the request task is cancelled meanwhile:
    # the rest of the settlement must still run.
    global SETTLING
    LOG.clear()
    SETTLING = asyncio.Event()
    runner = await started(runner_for(("a", "slow")))

    task = asyncio.create_task(AuthcoreMiddleware(streamed, runner)(scope_for("2.4"), idle_client, discard))
    await asyncio.wait_for(SETTLING.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert LOG == ["reserve:a"]
    await asyncio.sleep(0.1)
    assert LOG == ["reserve:a", "commit:a:1"]


@pytest.mark.parametrize("cancel_safe", [False, True])
async def test_only_holds_not_cancel_safe_settle_in_a_task_of_their_own(cancel_safe: bool) -> None:
    global SETTLING
    LOG.clear()
    SETTLING = asyncio.Event()
    runner = await started(runner_for(("a", "slow")))
    tasks_while_settling: list[int] = []

    async def watch() -> None:
        await SETTLING.wait()
        tasks_while_settling.append(len(asyncio.all_tasks()))

    original = runner.authenticate

    async def authenticate(request: authcore.RequestContext) -> Any:
        result = await original(request)
        for held in result.reservations:
            held.cancel_safe = cancel_safe  # type: ignore[misc]
        return result

    runner.authenticate = authenticate  # type: ignore[method-assign]
    watcher = asyncio.create_task(watch())
    await AuthcoreMiddleware(streamed, runner)(scope_for("2.4"), idle_client, discard)
    await watcher
    assert LOG == ["reserve:a", "commit:a:1"]
    # This test's task and the watcher, plus the shield's task when the hold is not cancel-safe.
    assert tasks_while_settling == [2 if cancel_safe else 3]


async def test_completed_stream_commits_usage() -> None:
    LOG.clear()
    runner = await started(runner_for(("a", "hold")))

    await AuthcoreMiddleware(streamed, runner)(scope_for("2.4"), idle_client, discard)
    assert LOG == ["reserve:a", "commit:a:1"]


async def test_frozen_dataclass_reservation_is_accepted_and_attributed() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class FrozenHold(authcore.Reservation):
        owner: str

        async def commit(self, usage: authcore.Usage | None) -> None:
            LOG.append(f"commit:{self.owner}")

        async def release(self) -> None:
            LOG.append(f"release:{self.owner}")

    class FrozenReserve(authcore.Plugin[authcore.EmptyConfig]):
        @authcore.hookimpl
        async def reserve_budget(self) -> authcore.Reservation:
            return FrozenHold(self.name)

    LOG.clear()
    runner = await started(
        build_runner(
            {**TYPES, "frozen": FrozenReserve},
            {"k": "key", "t": "table", "a": "hold", "f": "frozen", "d": "deny"},
            {"extract_credentials": ["k"], "reserve_budget": ["a", "f", "d"]},
        )
    )
    result = await runner.authenticate(request(headers={"x-key": "good"}))
    assert result.status_code == 429
    assert LOG == ["reserve:a", "reserve:d", "release:f", "release:a"]
