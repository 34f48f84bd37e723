"""Reading a chat-completions request: validation, the caller's model allow-list, usage recording."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Scope

from authcore.gateway.openai_errors import bad_request, model_not_allowed, payload_too_large
from authcore.models import Usage
from authcore.result import AuthResult


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat-completions body."""

    body: dict[str, Any]
    model: str
    messages: list[Any]
    stream: bool
    max_tokens: int | None


async def read_body(request: Request, max_bytes: int) -> bytes | None:
    """The whole body, or `None` when it is larger than `max_bytes` (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_chat_request(request: Request, max_bytes: int) -> ChatRequest | JSONResponse:
    """The parsed body, or the 400, 403 or 413 response to send instead."""
    raw = await read_body(request, max_bytes)
    if raw is None:
        return payload_too_large()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return bad_request("The request body is not valid JSON.")
    if not isinstance(body, dict):
        return bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return bad_request("you must provide a model parameter", "model", "missing_required_parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return bad_request("`messages` must be a non-empty array.", "messages", "missing_required_parameter")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        return bad_request("`stream` must be a boolean.", "stream")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        return bad_request("`max_tokens` must be a positive integer.", "max_tokens")
    if not model_allowed(model, allowed_models(request)):
        return model_not_allowed(model)
    return ChatRequest(body, model, messages, stream, max_tokens)


def allowed_models(request: Request) -> Sequence[str] | None:
    """The caller's model allow-list; `None` when unrestricted or unauthenticated (public route)."""
    result = request.scope.get("authcore")
    if isinstance(result, AuthResult) and result.identity is not None:
        return result.identity.models
    return None


def model_allowed(model: str, patterns: Sequence[str] | None) -> bool:
    """Exact names and `prefix/*` patterns; `None` allows every model, `()` none."""
    if patterns is None:
        return True
    return any(pattern == model or (pattern.endswith("/*") and model.startswith(pattern[:-1])) for pattern in patterns)


def record_usage(scope: Scope, usage: Usage | None) -> None:
    """Tell `AuthcoreMiddleware` what the call consumed, so reservations settle with it."""
    result = scope.get("authcore")
    if isinstance(result, AuthResult) and usage is not None:
        result.usage = usage


def usage_from_payload(payload: object, model: str | None) -> Usage | None:
    """A `Usage` from an OpenAI `usage` block inside `payload`, or `None` when there is none."""
    if not isinstance(payload, dict):
        return None
    block = payload.get("usage")
    if not isinstance(block, dict):
        return None
    prompt = block.get("prompt_tokens")
    completion = block.get("completion_tokens")
    reported = payload.get("model")
    return Usage(
        model=reported if isinstance(reported, str) and reported else model,
        prompt_tokens=prompt if isinstance(prompt, int) and not isinstance(prompt, bool) and prompt >= 0 else 0,
        completion_tokens=(
            completion if isinstance(completion, int) and not isinstance(completion, bool) and completion >= 0 else 0
        ),
    )
