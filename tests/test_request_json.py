"""Plugins must see the body the app will see: `RequestContext.json` parses exactly like Starlette."""

from __future__ import annotations

import json

import pytest
from starlette.requests import Request

from authcore.request import RequestContext

BODY = {"model": "forbidden-model", "messages": []}


def scope() -> dict[str, object]:
    return {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [], "query_string": b""}


def receiver(raw: bytes):  # type: ignore[no-untyped-def]
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": raw, "more_body": False}

    return receive


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(json.dumps(BODY).encode("utf-8"), id="utf-8"),
        pytest.param(b"\xef\xbb\xbf" + json.dumps(BODY).encode("utf-8"), id="utf-8-bom"),
        pytest.param(json.dumps(BODY).encode("utf-16"), id="utf-16"),
        pytest.param(json.dumps(BODY).encode("utf-32-le"), id="utf-32-le"),
        pytest.param(b" \r\n\t" + json.dumps(BODY).encode() + b"\n ", id="surrounding-whitespace"),
        pytest.param(b'{"model": "forbidden-model", "model": "forbidden-model", "n": 1e400}', id="duplicate-key-huge"),
        pytest.param(
            b'{"model": "forbidden-model", "x": NaN, "y": -Infinity, "z": "\\ud800"}', id="nan-and-lone-surrogate"
        ),
    ],
)
async def test_json_matches_what_the_app_parses(raw: bytes) -> None:
    app_view = await Request(scope(), receiver(raw)).json()
    plugin_view = await RequestContext(scope(), receiver(raw)).json()
    assert plugin_view == app_view
    assert await RequestContext(scope(), receiver(raw)).requested_models() == ("forbidden-model",)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"model": "forbidden-model"} {"model": "allowed"}', id="extra-data"),
        pytest.param(b'{"model": "forbidden-model"', id="truncated"),
        pytest.param(b"\x0b" + json.dumps(BODY).encode(), id="not-json-whitespace"),
        pytest.param(b'{"model": "forbidden-model"}\x00', id="trailing-nul"),
        pytest.param(b"\xff\xfe{", id="bad-utf-16"),
        pytest.param(b"{\xff}", id="bad-utf-8"),
        pytest.param(b"{", id="one-brace"),
    ],
)
async def test_what_json_loads_refuses_is_no_json(raw: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - UnicodeDecodeError is one too
        json.loads(raw)
    assert await RequestContext(scope(), receiver(raw)).json() is None
    assert await RequestContext(scope(), receiver(raw)).requested_models() == ()


def request_for(method: str, path: str, raw: bytes) -> RequestContext:
    return RequestContext({**scope(), "method": method, "path": path}, receiver(raw))


@pytest.mark.parametrize(
    ("method", "path", "raw", "models"),
    [
        ("POST", "/v1/chat/completions", b'{"model": "m1"}', ("m1",)),
        ("POST", "/openai/deployments/m2/chat/completions", b'{"model": "m1"}', ("m1", "m2")),
        ("POST", "/openai/deployments/m1/chat/completions", b'{"model": "m1"}', ("m1",)),
        ("POST", "/v1beta/models/m2:generateContent", b"", ("m2",)),
        ("POST", "/v1/chat/completions", b'{"model": ""}', ()),
        ("POST", "/v1/chat/completions", b'{"model": ["m1"]}', ()),
        ("PATCH", "/v1/chat/completions", b'["m1"]', ()),
        # A GET's body is not read for models: only the path names one.
        ("GET", "/v1/models/m3", b'{"model": "m1"}', ("m3",)),
        ("GET", "/v1/models", b'{"model": "m1"}', ()),
    ],
)
async def test_read_models_is_what_requested_models_returns(
    method: str, path: str, raw: bytes, models: tuple[str, ...]
) -> None:
    assert await request_for(method, path, raw).requested_models() == models
    request = request_for(method, path, raw)
    await request.body()
    assert request.read_models() == models
    if method == "GET":
        # Nothing to wait for: no body is needed.
        assert request_for(method, path, raw).read_models() == models


async def test_what_is_read_is_at_hand_only_after_it_is_read() -> None:
    request = request_for("POST", "/v1/chat/completions", b'{"model": "m1"}')
    assert request.read_body is None
    with pytest.raises(RuntimeError):
        request.read_json()
    with pytest.raises(RuntimeError):
        request.read_models()
    assert await request.body() == b'{"model": "m1"}'
    assert request.read_body == b'{"model": "m1"}'
    assert request.read_json() == {"model": "m1"}
    assert request.read_json() is await request.json()
    not_json = request_for("POST", "/v1/chat/completions", b"{")
    await not_json.body()
    assert not_json.read_json() is None
