"""Forwarding to an OpenAI-compatible upstream, without the client's credentials.

Only the gateway's own upstream key leaves this process. Request headers that
could carry a client credential are dropped by name, and anything that looks
like one (a name containing `auth`, `key`, `token`, `secret` or `cookie`) too,
so a new header convention cannot leak a key upstream.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from authcore.config import Gateway
from authcore.gateway.chat_request import (
    ChatRequest,
    allowed_models,
    model_allowed,
    read_chat_request,
    record_usage,
    usage_from_payload,
)
from authcore.gateway.openai_errors import bad_gateway, gateway_timeout
from authcore.gateway.sse_usage import SseUsageScanner

logger = logging.getLogger("authcore.gateway")

CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "ocp-apim-subscription-key",
        "x-litellm-api-key",
        "cookie",
    }
)
_CREDENTIAL_HINTS = ("auth", "key", "token", "secret", "cookie", "session")
# Hop-by-hop and framing headers: httpx and the server set their own.
_HOP_BY_HOP = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "accept-encoding",
    }
)

# The body is re-serialised as JSON, so the gateway sets its own content type.
_REPLACED = frozenset({"content-type"})


def forwardable_request_headers(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The client's headers minus credentials, framing and authcore's own headers."""
    kept: list[tuple[str, str]] = []
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if name in CREDENTIAL_HEADERS or name in _HOP_BY_HOP or name in _REPLACED or name.startswith("x-authcore-"):
            continue
        if any(hint in name for hint in _CREDENTIAL_HINTS):
            continue
        kept.append((name, raw_value.decode("latin-1")))
    return kept


def _response_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower(), value)
        for name, value in response.headers.raw
        if name.decode("latin-1").lower() not in _HOP_BY_HOP and name.lower() != b"set-cookie"
    ]


_STREAM_FAILURE = (
    b'data: {"error": {"message": "The upstream stream failed.", "type": "api_error", "code": "upstream_error"}}\n\n'
)


class UpstreamProxy:
    """Sends chat completions and model listings to `gateway.upstream_url` with one shared client."""

    def __init__(
        self, settings: Gateway, max_body_bytes: int, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        if settings.upstream_url is None:
            raise ValueError("UpstreamProxy needs gateway.upstream_url")
        self._max_body_bytes = max_body_bytes
        self._api_key = settings.upstream_api_key
        self.client = httpx.AsyncClient(
            base_url=settings.upstream_url,
            timeout=httpx.Timeout(settings.upstream_timeout_s),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def _headers(self, request: Request) -> list[tuple[str, str]]:
        headers = forwardable_request_headers(request.scope["headers"])
        headers.append(("accept-encoding", "identity"))
        if self._api_key is not None:
            headers.append(("authorization", f"Bearer {self._api_key.get_secret_value()}"))
        return headers

    async def models(self, request: Request) -> Response:
        """The upstream's model list, filtered by the caller's allow-list."""
        try:
            response = await self.client.get("models", headers=self._headers(request))
        except httpx.TimeoutException:
            return gateway_timeout()
        except httpx.HTTPError as error:
            logger.warning("upstream model listing failed: %s", type(error).__name__)
            return bad_gateway()
        try:
            payload = response.json()
        except ValueError:
            return bad_gateway("The upstream returned an invalid model list.")
        patterns = allowed_models(request)
        if response.status_code == 200 and isinstance(payload, dict) and isinstance(payload.get("data"), list):
            payload["data"] = [
                item
                for item in payload["data"]
                if isinstance(item, dict) and isinstance(item.get("id"), str) and model_allowed(item["id"], patterns)
            ]
        return JSONResponse(payload, status_code=response.status_code)

    async def chat_completions(self, request: Request) -> Response:
        chat = await read_chat_request(request, self._max_body_bytes)
        if not isinstance(chat, ChatRequest):
            return chat
        body: dict[str, Any] = dict(chat.body)
        if chat.stream:
            # Without this, OpenAI-compatible upstreams omit usage from streams and budgets cannot settle.
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        outgoing = self.client.build_request(
            "POST",
            "chat/completions",
            content=json.dumps(body).encode(),
            headers=[*self._headers(request), ("content-type", "application/json")],
        )
        try:
            response = await self.client.send(outgoing, stream=True)
        except httpx.TimeoutException:
            return gateway_timeout()
        except httpx.HTTPError as error:
            logger.warning("upstream chat completion failed: %s", type(error).__name__)
            return bad_gateway()
        return _Relay(response, chat.model)


class _Relay(Response):
    """Streams the upstream response to the client and records its usage before the last body message."""

    def __init__(self, response: httpx.Response, model: str) -> None:
        super().__init__(status_code=response.status_code)
        self.response = response
        self.model = model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.response
        try:
            if "text/event-stream" in response.headers.get("content-type", ""):
                await self._stream(scope, send)
            else:
                await self._whole(scope, send)
        finally:
            await response.aclose()

    async def _whole(self, scope: Scope, send: Send) -> None:
        try:
            body = await self.response.aread()
        except httpx.HTTPError as error:
            logger.warning("upstream response failed: %s", type(error).__name__)
            await bad_gateway()(scope, _no_receive, send)
            return
        if self.response.status_code < 400:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                record_usage(scope, usage_from_payload(json.loads(body), self.model))
        headers = [*_response_headers(self.response), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": self.response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _stream(self, scope: Scope, send: Send) -> None:
        scanner = SseUsageScanner(self.model)
        headers = _response_headers(self.response)
        await send({"type": "http.response.start", "status": self.response.status_code, "headers": headers})
        try:
            async for chunk in self.response.aiter_bytes():
                scanner.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as error:
            # The status is already sent: tell the client in-band and end the stream.
            logger.warning("upstream stream broke: %s", type(error).__name__)
            await send({"type": "http.response.body", "body": _STREAM_FAILURE, "more_body": True})
        scanner.close()
        if self.response.status_code < 400:
            record_usage(scope, scanner.usage)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}
