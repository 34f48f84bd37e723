"""The read-only request view every hook receives."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers, QueryParams
from starlette.types import Message, Receive, Scope

from authcore.errors import MalformedCredentials, PayloadTooLarge

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose body can name models (`requested_models` reads it only for these)."""

# Models named in the path by Azure- and Gemini-style routes.
_PATH_MODEL = re.compile(r"/(?:deployments|models)/([^/:]+)(?::|/|$)")


@functools.lru_cache(maxsize=1024)
def _path_model(path: str) -> str | None:
    """The model a path names, if any. Memoised: a gateway sees the same few paths on every request."""
    match = _PATH_MODEL.search(path)
    return match.group(1) if match else None


_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_JSON_SPACE = " \t\n\r"


def _parse_json(raw: bytes) -> Any:
    """`json.loads(raw)`, as Starlette's `Request.json()` parses the body, at a third of the cost.

    The same text reaches the same C scanner (BOM and UTF-16/32 detection included), so
    checks see the body the app will see; `json.loads` spends the rest in two regex
    matches and Python wrappers around it. Raises `ValueError` where it does.
    """
    # '{' then a non-NUL byte is UTF-8 to `json.detect_encoding`: skip asking it.
    encoding = "utf-8" if raw[0] == 0x7B and len(raw) > 1 and raw[1] else json.detect_encoding(raw)
    text = raw.decode(encoding, "surrogatepass").strip(_JSON_SPACE)
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return value


def _content_length(raw: list[tuple[bytes, bytes]]) -> bytes | None:
    """The first Content-Length value, read off the raw list (a `Headers` costs more than the scan)."""
    for name, value in raw:
        # Servers lower-case header names (ASGI spec); the length check skips most names unlowered.
        if len(name) == 14 and name.lower() == b"content-length":
            return value
    return None


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class RequestContext:
    """A lazy, read-only view of one ASGI request (HTTP or websocket).

    Everything is computed on first use, so a hook that only looks at one
    header costs one header lookup. `state` is a per-request dict plugins may
    use to pass values to later stages; it never reaches the client.
    """

    __slots__ = ("_body", "_headers", "_json", "_max_body", "_query", "_receive", "method", "path", "scope", "state")

    def __init__(
        self,
        scope: Scope,
        receive: Receive | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.scope = scope
        # Plain attributes, read by several hooks per request: a property would be a call each time.
        self.method: str = scope.get("method", "GET")
        """The HTTP method (`GET` for a websocket)."""
        self.path: str = scope["path"]
        """The route path from the ASGI scope (no host, no query string)."""
        self.state: dict[str, Any] = {}
        self._receive = receive or _no_body
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._body: bytes | None = None
        self._json: Any = _UNSET
        self._max_body = max_body_bytes

    @property
    def is_websocket(self) -> bool:
        return bool(self.scope["type"] == "websocket")

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(scope=self.scope)
        return self._headers

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The header list exactly as the server parsed it, duplicates included."""
        return self.scope["headers"]  # type: ignore[no-any-return]

    @property
    def query(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.scope.get("query_string", b""))
        return self._query

    @property
    def client_host(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None

    async def body(self) -> bytes:
        """The whole request body, read once and kept for the app (empty for websockets)."""
        if self._body is None:
            if self.is_websocket:
                self._body = b""
                return self._body
            declared = _content_length(self.scope["headers"])
            if declared is not None and declared.isdigit() and int(declared) > self._max_body:
                raise PayloadTooLarge()
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await self._receive()
                if message["type"] != "http.request":
                    # The client left before sending the body; nothing to authorise.
                    raise MalformedCredentials("Request body was not received.", reason_id="body_incomplete")
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > self._max_body:
                    raise PayloadTooLarge()
                more = message.get("more_body", False)
                if not more and not chunks:
                    # The whole body in one message, as servers send small ones: no copy.
                    self._body = chunk
                    return chunk
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        """The body parsed as JSON, or `None` when it is empty or not JSON."""
        if self._json is _UNSET:
            if self._body is None:
                await self.body()
            return self.read_json()
        return self._json

    @property
    def read_body(self) -> bytes | None:
        """The body if a hook has already read it, else `None` (then await `body()`).

        With it, a hook can decide at once when the body is at hand and wait only when it is not.
        """
        return self._body

    def read_json(self) -> Any:
        """What `json()` returns, for a body already read (`read_body` is not `None`)."""
        if self._json is _UNSET:
            raw = self._body
            if raw is None:
                raise RuntimeError("read_json() before the body was read: await json() instead")
            try:
                self._json = _parse_json(raw) if raw else None
            except (ValueError, UnicodeDecodeError):
                self._json = None
        return self._json

    @property
    def path_model(self) -> str | None:
        """The model the path names (Azure `/deployments/<m>/...`, Gemini `/models/<m>:...`), if any."""
        return _path_model(self.path)

    async def requested_models(self) -> tuple[str, ...]:
        """Models the request asks for: the body's `model` and a model named in the path."""
        if self._body is None and self.method in BODY_METHODS:
            await self.body()
        return self.read_models()

    def read_models(self) -> tuple[str, ...]:
        """What `requested_models()` returns, for a body already read or a method without one (`GET`...)."""
        model = None
        if self.method in BODY_METHODS:
            data = self.read_json()
            if isinstance(data, dict):
                model = data.get("model")
        named = _path_model(self.path)
        if isinstance(model, str) and model:
            return (model,) if named is None or named == model else (model, named)
        return () if named is None else (named,)

    def replay_receive(self) -> Receive:
        """A `receive` for the app: the body already read, then the live channel."""
        if self._body is None or self.is_websocket:
            # A websocket has no body to replay; its first message must stay `websocket.connect`.
            return self._receive
        pending: list[Message] = [{"type": "http.request", "body": self._body, "more_body": False}]
        receive = self._receive

        async def replay() -> Message:
            if pending:
                return pending.pop()
            return await receive()

        return replay

    def __repr__(self) -> str:
        # Headers and query strings can carry secrets: never include them.
        return f"RequestContext({self.method} {self.path})"


class _Unset:
    __slots__ = ()


_UNSET: Any = _Unset()
