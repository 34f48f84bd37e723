"""Requests and identities for tests, without a server."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from starlette.types import Message, Receive, Scope

from authcore.models import Identity
from authcore.request import RequestContext

HeaderValue = str | bytes
Headers = Mapping[str, HeaderValue] | Iterable[tuple[HeaderValue, HeaderValue]]
"""A mapping, or a list of pairs when a header must appear more than once."""


def _encode(value: HeaderValue) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        # Servers pass non-latin-1 bytes through as they arrived: UTF-8 from most clients.
        return value.encode("utf-8", "surrogatepass")


def _header_list(headers: Headers | None) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(_encode(name).lower(), _encode(value)) for name, value in pairs]


def _body_receive(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _websocket_receive() -> Receive:
    connected = False

    async def receive() -> Message:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        return {"type": "websocket.disconnect", "code": 1000}

    return receive


def make_request(
    method: str = "GET",
    path: str = "/",
    *,
    headers: Headers | None = None,
    query: Mapping[str, str] | Sequence[tuple[str, str]] | str | None = None,
    json: Any = None,
    body: bytes | None = None,
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    websocket: bool = False,
    subprotocols: Sequence[str] | None = None,
) -> RequestContext:
    """A `RequestContext` over a real ASGI scope whose `receive` yields `body` (or `json`) once.

    A query string in `path` is split off unless `query` is given. `content-type`,
    `content-length` and `host` are added when the body or the caller does not set them.
    """
    if json is not None and body is not None:
        raise ValueError("pass json or body, not both")
    path, _, inline_query = path.partition("?")
    if query is None:
        query_string = inline_query
    elif isinstance(query, str):
        query_string = query
    else:
        query_string = urlencode(query)
    header_list = _header_list(headers)
    names = {name for name, _ in header_list}
    payload = body if body is not None else b""
    if json is not None:
        payload = jsonlib.dumps(json).encode()
        if b"content-type" not in names:
            header_list.append((b"content-type", b"application/json"))
    if payload and b"content-length" not in names:
        header_list.append((b"content-length", str(len(payload)).encode()))
    if b"host" not in names:
        header_list.insert(0, (b"host", b"testserver"))
    if subprotocols and b"sec-websocket-protocol" not in names:
        header_list.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
    scope: Scope = {
        "type": "websocket" if websocket else "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "ws" if websocket else "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query_string.encode("latin-1", "replace"),
        "headers": header_list,
        "client": client,
        "server": ("testserver", 80),
        "state": {},
    }
    if websocket:
        scope["subprotocols"] = list(subprotocols or ())
        return RequestContext(scope, _websocket_receive())
    scope["method"] = method.upper()
    return RequestContext(scope, _body_receive(payload))


def make_identity(**fields: Any) -> Identity:
    """An `Identity` with test defaults; any field can be overridden. Lists become tuples."""
    values: dict[str, Any] = {"auth_method": "api_key", "plugin": "test", "user_id": "test-user", "key_id": "0000test"}
    values.update(fields)
    for name in ("models", "allowed_routes", "scopes"):
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    return Identity(**values)
