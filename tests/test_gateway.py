"""The demo gateway: health probes, auth in front of the mock upstream, usage and settlement."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

import authcore
from authcore.config import AuthcoreConfig, parse_config
from authcore.gateway.app import create_app, create_app_from_env
from authcore.gateway.settings import CONFIG_ENV, DEFAULT_SOURCE, config_from_env
from authcore.loader import mapping_resolver
from authcore.middleware import STATE_KEY
from authcore.request import RequestContext

CANARY = "sk-canary-8f3b2d1e"


class Bearer(authcore.Plugin[authcore.EmptyConfig]):
    """`Authorization: Bearer good` is alice (all models); `limited` may use gpt-4o and openai/*."""

    @authcore.hookimpl
    async def extract_credentials(self, request: RequestContext) -> authcore.Credentials | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None
        return authcore.Credentials.of("api_key", header[len("Bearer ") :], "authorization")

    @authcore.hookimpl
    async def resolve_identity(self, credentials: authcore.Credentials) -> authcore.Identity | None:
        key = credentials.reveal()
        if key == "good":
            return authcore.Identity("api_key", user_id="alice", key_id="k-good")
        if key == "limited":
            return authcore.Identity("api_key", user_id="bob", key_id="k-limited", models=("gpt-4o", "openai/*"))
        raise authcore.InvalidCredentials(reason_id="unknown_key")


class Held(authcore.Reservation):
    def __init__(self, log: list[tuple[str, authcore.Usage | None]]) -> None:
        self.log = log

    async def commit(self, usage: authcore.Usage | None) -> None:
        self.log.append(("commit", usage))

    async def release(self) -> None:
        self.log.append(("release", None))


class Holds(authcore.Plugin[authcore.EmptyConfig]):
    """Reserves for every request and records how each reservation was settled."""

    def __init__(self, name: str, config: authcore.EmptyConfig) -> None:
        super().__init__(name, config)
        self.log: list[tuple[str, authcore.Usage | None]] = []

    @authcore.hookimpl
    async def reserve_budget(self) -> authcore.Reservation:
        return Held(self.log)


class FailsToStart(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def startup(self) -> None:
        raise RuntimeError("cannot reach the key store")


TYPES: dict[str, Any] = {
    "bearer": Bearer,
    "holds": Holds,
    "fails_to_start": FailsToStart,
}
MODELS = ["gpt-4o-mini", "gpt-4o", "openai/gpt-x", "other/gpt-x"]


def make_config(tmp_path: Path, **extra: Any) -> AuthcoreConfig:
    data: dict[str, Any] = {
        "plugins": {"bearer": {"use": "bearer"}, "holds": {"use": "holds"}},
        "pipeline": {"extract_credentials": ["bearer"]},
        "storage": {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"},
        "gateway": {"mock_models": MODELS},
    }
    data.update(extra)
    return parse_config(data, "test.yaml")


def make_app(tmp_path: Path, **extra: Any) -> Starlette:
    return create_app(make_config(tmp_path, **extra), resolve=mapping_resolver(TYPES))


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def holds_log(app: Starlette) -> list[tuple[str, authcore.Usage | None]]:
    runner = getattr(app.state, STATE_KEY)
    plugin = next(instance for instance in runner.instances if isinstance(instance, Holds))
    return plugin.log


GOOD = {"authorization": "Bearer good"}


def chat(model: str = "gpt-4o-mini", text: str = "Hello there, how are you today?", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def sse_events(body: str) -> list[str]:
    assert body.endswith("\n\n")
    events = [event for event in body.split("\n\n") if event]
    assert all(event.startswith("data: ") for event in events)
    return [event[len("data: ") :] for event in events]


# -- health ---------------------------------------------------------------


async def test_liveliness_and_readiness_answer_without_credentials(tmp_path: Path) -> None:
    async with serving(make_app(tmp_path)) as client:
        alive = await client.get("/health/liveliness")
        ready = await client.get("/health/readiness")
    assert alive.status_code == 200
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "stores": {"database": "ok"}}


async def test_health_probes_stay_public_when_routes_public_leaves_them_out(tmp_path: Path) -> None:
    app = make_app(tmp_path, routes={"public": []})
    async with serving(app) as client:
        assert (await client.get("/health/liveliness")).status_code == 200
        assert (await client.get("/health/readiness")).status_code == 200
        # Only the exact probe paths bypass authentication.
        assert (await client.get("/health/liveliness/extra")).status_code == 401
        assert (await client.get("/v1/models")).status_code == 401


async def test_readiness_is_503_naming_the_store_when_the_database_is_unreachable(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://authcore:db-password-canary@127.0.0.1:1/authcore"
    async with serving(make_app(tmp_path, storage={"database_url": url})) as client:
        ready = await client.get("/health/readiness")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert ready.json()["stores"]["database"].startswith("error")
    assert "db-password-canary" not in ready.text


# -- authentication in front of the endpoints --------------------------------


@pytest.mark.parametrize("path", ["/v1/models", "/models", "/v1/chat/completions", "/chat/completions"])
async def test_endpoints_are_401_without_credentials(tmp_path: Path, path: str) -> None:
    async with serving(make_app(tmp_path)) as client:
        response = await client.request("GET" if "models" in path else "POST", path, json=chat())
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


async def test_unknown_key_is_401_and_no_reservation_is_made(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with serving(app) as client:
        response = await client.post("/v1/chat/completions", json=chat(), headers={"authorization": "Bearer nope"})
        assert response.status_code == 401
        assert holds_log(app) == []


# -- models ------------------------------------------------------------------


async def test_models_lists_the_mock_models_in_openai_format(tmp_path: Path) -> None:
    async with serving(make_app(tmp_path)) as client:
        for path in ("/v1/models", "/models"):
            response = await client.get(path, headers=GOOD)
            assert response.status_code == 200
            body = response.json()
            assert body["object"] == "list"
            assert [item["id"] for item in body["data"]] == MODELS
            assert all(item["object"] == "model" for item in body["data"])


async def test_models_are_filtered_by_the_identity_allow_list(tmp_path: Path) -> None:
    async with serving(make_app(tmp_path)) as client:
        response = await client.get("/v1/models", headers={"authorization": "Bearer limited"})
    assert [item["id"] for item in response.json()["data"]] == ["gpt-4o", "openai/gpt-x"]


async def test_chat_with_a_model_outside_the_allow_list_is_403(tmp_path: Path) -> None:
    async with serving(make_app(tmp_path)) as client:
        denied = await client.post(
            "/v1/chat/completions", json=chat("gpt-4o-mini"), headers={"authorization": "Bearer limited"}
        )
        allowed = await client.post(
            "/v1/chat/completions", json=chat("openai/gpt-x"), headers={"authorization": "Bearer limited"}
        )
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "model_not_allowed"
    assert allowed.status_code == 200


# -- chat completions (mock upstream) -----------------------------------------


async def test_chat_completion_answers_with_usage(tmp_path: Path) -> None:
    text = "Summarise the plot of Hamlet in one line please"
    async with serving(make_app(tmp_path)) as client:
        for path in ("/v1/chat/completions", "/chat/completions"):
            response = await client.post(path, json=chat(text=text), headers=GOOD)
            assert response.status_code == 200
            body = response.json()
            assert body["object"] == "chat.completion"
            assert body["model"] == "gpt-4o-mini"
            reply = body["choices"][0]["message"]
            assert reply["role"] == "assistant"
            assert "Summarise the plot of Hamlet" in reply["content"]
            usage = body["usage"]
            assert usage["prompt_tokens"] == math.ceil(len(text) / 4)
            assert usage["completion_tokens"] == math.ceil(len(reply["content"]) / 4)
            assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_chat_completion_honours_max_tokens(tmp_path: Path) -> None:
    async with serving(make_app(tmp_path)) as client:
        response = await client.post("/v1/chat/completions", json=chat(max_tokens=3), headers=GOOD)
    body = response.json()
    assert body["usage"]["completion_tokens"] == 3
    assert body["choices"][0]["finish_reason"] == "length"


async def test_mock_reply_never_contains_a_header_value(tmp_path: Path) -> None:
    headers = {**GOOD, "x-api-key": CANARY, "x-extra": CANARY}
    async with serving(make_app(tmp_path)) as client:
        plain = await client.post("/v1/chat/completions", json=chat(), headers=headers)
        streamed = await client.post("/v1/chat/completions", json=chat(stream=True), headers=headers)
    assert plain.status_code == 200
    assert streamed.status_code == 200
    assert CANARY not in plain.text
    assert CANARY not in streamed.text
    assert "good" not in plain.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[]", None),
        (json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(), "model"),
        (json.dumps({"model": "gpt-4o-mini"}).encode(), "messages"),
        (json.dumps({"model": "gpt-4o-mini", "messages": []}).encode(), "messages"),
    ],
)
async def test_bad_chat_requests_are_400_in_openai_shape(tmp_path: Path, body: bytes, param: str | None) -> None:
    async with serving(make_app(tmp_path)) as client:
        response = await client.post("/v1/chat/completions", content=body, headers=GOOD)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert set(error) == {"message", "type", "param", "code"}


async def test_body_larger_than_max_body_bytes_is_413_and_releases_the_hold(tmp_path: Path) -> None:
    app = make_app(tmp_path, max_body_bytes=200)
    async with serving(app) as client:
        response = await client.post("/v1/chat/completions", json=chat(text="x" * 300), headers=GOOD)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert holds_log(app) == [("release", None)]


async def test_unknown_model_is_404_model_not_found(tmp_path: Path) -> None:
    async with serving(make_app(tmp_path)) as client:
        response = await client.post("/v1/chat/completions", json=chat("gpt-9"), headers=GOOD)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


async def test_streaming_sends_sse_chunks_with_usage_in_the_last_data_chunk(tmp_path: Path) -> None:
    async with serving(make_app(tmp_path)) as client:
        plain = await client.post("/v1/chat/completions", json=chat(), headers=GOOD)
        response = await client.post("/v1/chat/completions", json=chat(stream=True), headers=GOOD)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks[:-1])
    assert chunks[-1]["usage"] == plain.json()["usage"]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == plain.json()["choices"][0]["message"]["content"]


# -- settlement of reservations ---------------------------------------------------


async def test_reservation_is_committed_with_the_mock_usage(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with serving(app) as client:
        response = await client.post("/v1/chat/completions", json=chat(), headers=GOOD)
        usage = response.json()["usage"]
        assert holds_log(app) == [
            ("commit", authcore.Usage("gpt-4o-mini", usage["prompt_tokens"], usage["completion_tokens"]))
        ]


async def test_reservation_is_committed_with_the_usage_of_a_stream(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with serving(app) as client:
        response = await client.post("/v1/chat/completions", json=chat(stream=True), headers=GOOD)
        usage = json.loads(sse_events(response.text)[-2])["usage"]
        assert holds_log(app) == [
            ("commit", authcore.Usage("gpt-4o-mini", usage["prompt_tokens"], usage["completion_tokens"]))
        ]


@pytest.mark.parametrize("body", [b"{broken", json.dumps(chat("gpt-9")).encode()])
async def test_reservation_is_released_when_the_endpoint_answers_4xx(tmp_path: Path, body: bytes) -> None:
    app = make_app(tmp_path)
    async with serving(app) as client:
        response = await client.post("/v1/chat/completions", content=body, headers=GOOD)
        assert response.status_code in (400, 404)
        assert holds_log(app) == [("release", None)]


# -- start-up ------------------------------------------------------------------------


async def test_unknown_plugin_type_stops_start_up(tmp_path: Path) -> None:
    app = make_app(tmp_path, plugins={"bearer": {"use": "bearer"}, "ghost": {"use": "not_a_type"}})
    with pytest.raises(authcore.ConfigurationError, match="not_a_type"):
        async with app.router.lifespan_context(app):
            pytest.fail("the app started")


async def test_plugin_failing_to_start_stops_start_up(tmp_path: Path) -> None:
    app = make_app(tmp_path, plugins={"bearer": {"use": "bearer"}, "broken": {"use": "fails_to_start"}})
    with pytest.raises(authcore.ConfigurationError, match="broken"):
        async with app.router.lifespan_context(app):
            pytest.fail("the app started")


async def test_missing_plugin_in_the_default_config_says_to_install_it_or_pass_config() -> None:
    config = parse_config({"plugins": {"keys": {"use": "authcore_missing_type"}}}, DEFAULT_SOURCE)
    app = create_app(config)
    with pytest.raises(authcore.ConfigurationError) as raised:
        async with app.router.lifespan_context(app):
            pytest.fail("the app started")
    message = str(raised.value)
    assert "authcore_missing_type" in message
    assert "install" in message
    assert "--config" in message


def test_the_embedded_default_config_is_used_when_authcore_config_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    config = config_from_env()
    assert config.source == DEFAULT_SOURCE
    assert {name: spec.use for name, spec in config.plugins.items()} == {
        "headers": "headers",
        "keys": "virtual_keys",
        "budget": "budgets",
    }
    assert config.storage.database_url.get_secret_value() == "sqlite+aiosqlite:///authcore.db"
    assert config.storage.redis_url is None
    assert "/key/*" in config.routes.admin


async def test_app_factory_reads_the_config_named_by_authcore_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "authcore.yaml"
    path.write_text(
        "storage:\n"
        f"  database_url: sqlite+aiosqlite:///{tmp_path / 'env.db'}\n"
        "routes:\n"
        "  public: ['/health/*', '/v1/models']\n"
        "gateway:\n"
        "  mock_models: [only-this-model]\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(CONFIG_ENV, str(path))
    async with serving(create_app_from_env()) as client:
        response = await client.get("/v1/models")
        chat_response = await client.post("/v1/chat/completions", json=chat(), headers=GOOD)
    assert [item["id"] for item in response.json()["data"]] == ["only-this-model"]
    # Only the built-in `headers` extractor is configured: nothing resolves an identity.
    assert chat_response.status_code == 401
