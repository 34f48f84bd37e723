"""Deny responses: status, headers and an OpenAI-compatible JSON body."""

from __future__ import annotations

import json

from starlette.responses import Response
from starlette.types import Send

from authcore.errors import AuthcoreError

REQUEST_ID_HEADER = "x-authcore-request-id"


def error_payload(error: AuthcoreError) -> bytes:
    return json.dumps(error.body(), separators=(",", ":")).encode()


def error_response(error: AuthcoreError, request_id: str | None = None) -> Response:
    """A Starlette response for a deny."""
    headers = error.response_headers()
    if request_id:
        headers = {**headers, REQUEST_ID_HEADER: request_id}
    return Response(error_payload(error), status_code=error.status_code, headers=headers, media_type="application/json")


async def send_error(send: Send, error: AuthcoreError, request_id: str | None = None) -> None:
    """Send a deny straight over ASGI."""
    body = error_payload(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    extra = error.response_headers().items()
    headers.extend((name.encode("latin-1"), value.encode("latin-1")) for name, value in extra)
    if request_id:
        headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
