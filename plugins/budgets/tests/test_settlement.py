"""Settlement through the real middleware: commit on success, release on error, exception, disconnect."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from authcore_budgets.accounting import BudgetReservation
from authcore_budgets.tables import ledger as ledger_table
from budget_helpers import NICKEL_TOKENS, RunnerFactory, budgets_of
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive

from authcore import Usage
from authcore.lifespan import mount_plugin_routes
from authcore.middleware import AuthcoreMiddleware
from authcore.runner import Runner
from authcore.testing import app_client

ADMIN = {"authorization": "Bearer admin"}
TOKEN = {"authorization": "Bearer tok"}


async def completions(request: Request) -> Response:
    """An upstream stand-in whose behaviour the request body picks."""
    body = await request.json()
    result = request.scope["authcore"]
    mode = body.get("mode", "ok")
    used = Usage("m5c", 10, body.get("used", NICKEL_TOKENS))
    if mode == "ok":
        result.usage = used
        return JSONResponse({"usage": {"completion_tokens": used.completion_tokens}})
    if mode == "error":
        return JSONResponse({"error": "upstream failed"}, status_code=502)
    if mode == "raise":
        raise RuntimeError("the app crashed")

    async def stream() -> AsyncIterator[bytes]:
        yield b'data: {"choices": []}\n\n'
        await asyncio.sleep(0.2)
        result.usage = used
        yield b"data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


def gateway(runner: Runner) -> Starlette:
    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    mount_plugin_routes(app, runner)
    return app


async def key_state(client: httpx.AsyncClient) -> tuple[float, float]:
    info = await client.get("/budget/info", params={"entity": "key", "id": "k1"}, headers=ADMIN)
    budget = info.json()["budgets"][0]
    return budget["spend"], budget["reserved"]


async def post(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    payload = {"model": "m5c", "max_tokens": NICKEL_TOKENS, "messages": [], **body}
    return await client.post("/v1/chat/completions", json=payload, headers=TOKEN)


@pytest.fixture
async def runner(make_runner: RunnerFactory) -> AsyncIterator[Runner]:
    async with make_runner({"tok": {"key_id": "k1"}}) as started:
        async with app_client(started) as client:
            response = await client.post(
                "/budget/set", json={"entity": "key", "id": "k1", "max_budget": 1}, headers=ADMIN
            )
            assert response.status_code == 200
        yield started


async def test_success_commits_the_actual_usage(runner: Runner) -> None:
    async with app_client(runner, app=gateway(runner)) as client:
        assert (await post(client, used=400)).status_code == 200
        assert await key_state(client) == (0.02, 0.0)


async def test_error_status_releases_the_hold(runner: Runner) -> None:
    async with app_client(runner, app=gateway(runner)) as client:
        assert (await post(client, mode="error")).status_code == 502
        assert await key_state(client) == (0.0, 0.0)


async def test_app_exception_releases_the_hold(runner: Runner) -> None:
    async with app_client(runner, app=gateway(runner)) as client:
        with pytest.raises(RuntimeError):
            await post(client, mode="raise")
        assert await key_state(client) == (0.0, 0.0)


async def test_streamed_response_commits_usage_from_the_stream(runner: Runner) -> None:
    async with app_client(runner, app=gateway(runner)) as client:
        response = await post(client, mode="stream", used=200, stream=True)
        assert response.status_code == 200
        assert response.text.endswith("[DONE]\n\n")
        assert await key_state(client) == (0.01, 0.0)


async def test_missing_usage_charges_the_reserved_maximum(runner: Runner) -> None:
    result = await runner.authenticate(_chat())
    await runner.settle(result, completed=True)
    async with app_client(runner) as client:
        assert await key_state(client) == (0.05, 0.0)


async def test_request_cancelled_while_settling_still_settles_and_records_the_charge(runner: Runner) -> None:
    # The request task is cancelled as soon as the response is out: on Redis that lands while the
    # settlement waits for its reply (awaited in the task itself, no shield), in process after it.
    middleware = AuthcoreMiddleware(gateway(runner), runner=runner)
    payload = json.dumps({"model": "m5c", "max_tokens": NICKEL_TOKENS, "used": 400}).encode()
    receive = _body_then_disconnect(payload, asyncio.Event())
    task: asyncio.Task[None] | None = None

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body") and task is not None:
            asyncio.get_running_loop().call_soon(task.cancel)

    task = asyncio.create_task(middleware(_scope(), receive, send))
    with contextlib.suppress(asyncio.CancelledError):
        await task
    async with app_client(runner) as client:
        assert await key_state(client) == (0.02, 0.0)
    ledger = budgets_of(runner).accountant.ledger
    await ledger.flush()
    async with ledger._engine.connect() as connection:
        amounts = (await connection.execute(select(ledger_table.c.amount_micros))).scalars().all()
    assert amounts == [20_000]


async def test_client_disconnect_mid_stream_releases_the_hold(runner: Runner) -> None:
    middleware = AuthcoreMiddleware(gateway(runner), runner=runner)
    payload = json.dumps({"model": "m5c", "max_tokens": NICKEL_TOKENS, "mode": "stream"}).encode()
    first_chunk = asyncio.Event()
    receive = _body_then_disconnect(payload, first_chunk)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            first_chunk.set()

    await middleware(_scope(), receive, send)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 200
    assert not any(m["type"] == "http.response.body" and m.get("body") == b"data: [DONE]\n\n" for m in sent)
    async with app_client(runner) as client:
        assert await key_state(client) == (0.0, 0.0)


async def test_settlement_is_idempotent_by_request_id(runner: Runner) -> None:
    result = await runner.authenticate(_chat())
    (held,) = result.reservations
    assert isinstance(held, BudgetReservation)
    accountant = budgets_of(runner).accountant
    await held.commit(Usage("m5c", 0, 400))
    # A second settlement of the same request (another replica, a retry) changes nothing.
    await accountant.commit(held, Usage("m5c", 0, 1000))
    await accountant.release(held)
    async with app_client(runner) as client:
        assert await key_state(client) == (0.02, 0.0)
    assert await accountant.ledger.total(held.counters[0].ledger) == 20_000


def _body_then_disconnect(payload: bytes, left: asyncio.Event) -> Receive:
    """The request body in one message, then `http.disconnect` once `left` is set."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    return receive


def _scope() -> dict[str, Any]:
    """`POST /v1/chat/completions` with the test key, as a server would pass it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", b"Bearer tok"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }


def _chat() -> Any:
    from budget_helpers import chat

    return chat("tok")


async def test_a_ledger_failure_still_charges_the_counters_and_the_charge_is_written_later(
    make_runner: RunnerFactory,
) -> None:
    async with make_runner({"tok": {"key_id": "k1", "limits": {"max_budget": 0.10}}}) as runner:
        ledger = budgets_of(runner).accountant.ledger
        first = await runner.authenticate(_chat())  # loads the counter from the ledger
        await runner.settle(first, completed=True)
        await ledger.flush()
        async with ledger._engine.begin() as connection:
            await connection.execute(text("DROP TABLE budget_ledger"))
        result = await runner.authenticate(_chat())
        result.usage = Usage("m5c", 0, 1000)
        await runner.settle(result, completed=True)
        # The charge reached the counters even though the durable record could not be written...
        assert (await runner.authenticate(_chat())).status_code == 429
        with pytest.raises(SQLAlchemyError):
            await ledger.flush()
        assert ledger.backlog == 1
        # ...and it stays queued until the database takes it: nothing is lost. (The table comes back as the
        # operator would restore it; migrations, already at head, rightly leave a damaged schema alone.)
        async with ledger._engine.begin() as connection:
            await connection.run_sync(ledger_table.create)
        (held,) = result.reservations
        assert isinstance(held, BudgetReservation)
        assert await ledger.total(held.counters[0].ledger) == 50_000
        assert ledger.backlog == 0


async def test_settlement_does_not_wait_for_the_ledger_and_a_sum_sees_queued_charges(runner: Runner) -> None:
    ledger = budgets_of(runner).accountant.ledger
    result = await runner.authenticate(_chat())
    result.usage = Usage("m5c", 0, 400)
    await runner.settle(result, completed=True)
    assert ledger.backlog == 1  # written in the background, in a batch
    (held,) = result.reservations
    assert isinstance(held, BudgetReservation)
    assert await ledger.total(held.counters[0].ledger) == 20_000
    assert ledger.backlog == 0
