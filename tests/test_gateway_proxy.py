"""Proxy mode: the gateway forwards to an OpenAI-compatible upstream without the client's credentials."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import authcore
from authcore.gateway.app import create_app
from authcore.gateway.upstream_proxy import forwardable_request_headers
from authcore.loader import mapping_resolver
from tests.test_gateway import GOOD, TYPES, chat, holds_log, make_config, serving, sse_events

UPSTREAM_KEY = "sk-upstream-secret-0042"
CLIENT_SECRET = "client-secret-canary-77"
CREDENTIAL_HEADERS = {
    "x-api-key": CLIENT_SECRET,
    "api-key": CLIENT_SECRET,
    "x-goog-api-key": CLIENT_SECRET,
    "ocp-apim-subscription-key": CLIENT_SECRET,
    "x-litellm-api-key": CLIENT_SECRET,
    "cookie": f"session={CLIENT_SECRET}",
    "x-custom-auth-token": CLIENT_SECRET,
}


class Upstream:
    """An OpenAI-compatible upstream that records what it receives."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], Any]] = []
        self.content_types: list[list[str]] = []
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    async def models(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), None))
        ids = ["gpt-4o", "openai/a", "other/b"]
        return JSONResponse({"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        self.content_types.append(request.headers.getlist("content-type"))
        if body["model"] == "upstream-busy":
            error = {"error": {"message": "busy", "type": "rate_limit_error", "param": None, "code": "busy"}}
            return JSONResponse(error, status_code=429)
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "upstream says hi"}
            return JSONResponse(
                {
                    "id": "u1",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [{"message": message}],
                    "usage": usage,
                }
            )

        async def events() -> AsyncIterator[bytes]:
            for word in ("upstream ", "says ", "hi"):
                chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": word}}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            if body.get("stream_options", {}).get("include_usage"):
                yield f"data: {json.dumps({'choices': [], 'model': body['model'], 'usage': usage})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


def proxy_app(tmp_path: Path, upstream: Upstream | None, url: str = "http://upstream.test/v1") -> Starlette:
    config = make_config(tmp_path, gateway={"upstream_url": url, "upstream_api_key": UPSTREAM_KEY})
    transport = httpx.ASGITransport(app=upstream.app) if upstream is not None else None
    return create_app(config, resolve=mapping_resolver(TYPES), upstream_transport=transport)


@contextlib.asynccontextmanager
async def proxying(tmp_path: Path) -> AsyncIterator[tuple[Starlette, Upstream, httpx.AsyncClient]]:
    upstream = Upstream()
    app = proxy_app(tmp_path, upstream)
    async with serving(app) as client:
        yield app, upstream, client


async def test_upstream_never_receives_the_client_credentials(tmp_path: Path) -> None:
    async with proxying(tmp_path) as (_, upstream, client):
        response = await client.post(
            "/v1/chat/completions", json=chat("gpt-4o"), headers={**GOOD, **CREDENTIAL_HEADERS, "x-trace": "t1"}
        )
    assert response.status_code == 200
    headers, _ = upstream.requests[0]
    assert headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert CLIENT_SECRET not in json.dumps(headers)
    assert "Bearer good" not in json.dumps(headers)
    assert not set(CREDENTIAL_HEADERS) & set(headers)
    assert headers["x-trace"] == "t1"
    assert upstream.content_types == [["application/json"]]


async def test_no_authorization_is_sent_upstream_without_an_upstream_key(tmp_path: Path) -> None:
    upstream = Upstream()
    config = make_config(tmp_path, gateway={"upstream_url": "http://upstream.test/v1"})
    app = create_app(config, resolve=mapping_resolver(TYPES), upstream_transport=httpx.ASGITransport(app=upstream.app))
    async with serving(app) as client:
        response = await client.post("/v1/chat/completions", json=chat("gpt-4o"), headers=GOOD)
    assert response.status_code == 200
    assert "authorization" not in upstream.requests[0][0]


def test_credential_like_header_names_are_dropped() -> None:
    raw = [
        (name.encode(), b"v") for name in ("Authorization", "Proxy-Authorization", "X-My-Session", "X-Authcore-User")
    ]
    assert forwardable_request_headers([*raw, (b"accept", b"application/json")]) == [("accept", "application/json")]


async def test_proxied_completion_passes_the_body_through_and_commits_its_usage(tmp_path: Path) -> None:
    async with proxying(tmp_path) as (app, upstream, client):
        response = await client.post("/v1/chat/completions", json=chat("gpt-4o"), headers=GOOD)
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "upstream says hi"
        assert upstream.requests[0][1] == chat("gpt-4o")
        assert holds_log(app) == [("commit", authcore.Usage("gpt-4o", 11, 7))]


async def test_proxied_stream_is_relayed_and_commits_the_usage_of_the_final_chunk(tmp_path: Path) -> None:
    async with proxying(tmp_path) as (app, upstream, client):
        response = await client.post("/v1/chat/completions", json=chat("gpt-4o", stream=True), headers=GOOD)
        assert response.status_code == 200
        events = sse_events(response.text)
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["usage"]["prompt_tokens"] == 11
        # Asked for, so that the stream reports what it consumed.
        assert upstream.requests[0][1]["stream_options"] == {"include_usage": True}
        assert holds_log(app) == [("commit", authcore.Usage("gpt-4o", 11, 7))]


async def test_upstream_errors_are_passed_through_and_release_the_reservation(tmp_path: Path) -> None:
    async with proxying(tmp_path) as (app, _, client):
        response = await client.post("/v1/chat/completions", json=chat("upstream-busy"), headers=GOOD)
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "busy"
        assert holds_log(app) == [("release", None)]


async def test_proxied_models_are_filtered_by_the_identity_allow_list(tmp_path: Path) -> None:
    async with proxying(tmp_path) as (_, upstream, client):
        everything = await client.get("/v1/models", headers=GOOD)
        limited = await client.get("/v1/models", headers={"authorization": "Bearer limited"})
    assert [m["id"] for m in everything.json()["data"]] == ["gpt-4o", "openai/a", "other/b"]
    assert [m["id"] for m in limited.json()["data"]] == ["gpt-4o", "openai/a"]
    assert all(headers["authorization"] == f"Bearer {UPSTREAM_KEY}" for headers, _ in upstream.requests)


async def test_bad_requests_are_rejected_before_reaching_the_upstream(tmp_path: Path) -> None:
    async with proxying(tmp_path) as (_, upstream, client):
        response = await client.post("/v1/chat/completions", content=b"{nope", headers=GOOD)
    assert response.status_code == 400
    assert upstream.requests == []


@pytest.mark.parametrize("stream", [False, True])
async def test_unreachable_upstream_is_502_in_openai_shape(tmp_path: Path, stream: bool) -> None:
    app = proxy_app(tmp_path, None, url="http://127.0.0.1:1/v1")
    async with serving(app) as client:
        response = await client.post("/v1/chat/completions", json=chat("gpt-4o", stream=stream), headers=GOOD)
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_unavailable"
        assert holds_log(app) == [("release", None)]
