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
    ],
)
async def test_json_matches_what_the_app_parses(raw: bytes) -> None:
    app_view = await Request(scope(), receiver(raw)).json()
    plugin_view = await RequestContext(scope(), receiver(raw)).json()
    assert plugin_view == app_view
    assert await RequestContext(scope(), receiver(raw)).requested_models() == ("forbidden-model",)
