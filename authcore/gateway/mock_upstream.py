"""The built-in upstream used when no `gateway.upstream_url` is set: deterministic, offline answers.

Token counts are a rough, stable approximation (four characters per token), so
budget tests can predict them. The reply is built from the request body only,
never from a header, so a credential can never be echoed back.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from authcore.gateway.chat_request import ChatRequest, read_chat_request, record_usage
from authcore.gateway.openai_errors import model_not_found
from authcore.models import Usage

CHARS_PER_TOKEN = 4
CREATED = 1_700_000_000
OWNER = "authcore-mock"


def count_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def message_text(content: Any) -> str:
    """The text of a message `content`: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return " ".join(text for text in texts if isinstance(text, str))
    return ""


def prompt_tokens(messages: Sequence[Any]) -> int:
    text = "".join(message_text(m.get("content")) for m in messages if isinstance(m, dict))
    return max(1, count_tokens(text))


def reply_text(messages: Sequence[Any], max_tokens: int | None) -> tuple[str, str]:
    """The reply and its finish reason (`length` when `max_tokens` cut it)."""
    last = next(
        (message_text(m.get("content")) for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"),
        "",
    )
    words = last.split()
    head = " ".join(words[:8])
    summary = head[:60] + ("..." if len(words) > 8 or len(head) > 60 else "")
    text = f"This is a mock reply to: {summary}" if summary else "This is a mock reply."
    if max_tokens is not None and count_tokens(text) > max_tokens:
        return text[: max_tokens * CHARS_PER_TOKEN], "length"
    return text, "stop"


def list_models(models: Sequence[str]) -> dict[str, Any]:
    """The OpenAI `GET /v1/models` body."""
    return {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": CREATED, "owned_by": OWNER} for model in models],
    }


async def chat_completions(request: Request, models: Sequence[str], max_body_bytes: int) -> Response:
    """Answer a chat completion as an OpenAI-compatible upstream would, with `usage`."""
    chat = await read_chat_request(request, max_body_bytes)
    if not isinstance(chat, ChatRequest):
        return chat
    if chat.model not in models:
        return model_not_found(chat.model)
    text, finish = reply_text(chat.messages, chat.max_tokens)
    usage = Usage(model=chat.model, prompt_tokens=prompt_tokens(chat.messages), completion_tokens=count_tokens(text))
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if chat.stream:
        return StreamingResponse(
            _stream(request, completion_id, created, text, finish, usage), media_type="text/event-stream"
        )
    record_usage(request.scope, usage)
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": chat.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": _usage_block(usage),
        }
    )


def _usage_block(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


async def _stream(
    request: Request, completion_id: str, created: int, text: str, finish: str, usage: Usage
) -> AsyncIterator[bytes]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": usage.model,
            "choices": choices,
            **extra,
        }
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

    yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for index in range(0, len(text), 16):
        yield chunk([{"index": 0, "delta": {"content": text[index : index + 16]}, "finish_reason": None}])
    yield chunk([{"index": 0, "delta": {}, "finish_reason": finish}])
    # Recorded before the last chunk: the middleware settles right after the final body message.
    record_usage(request.scope, usage)
    yield chunk([], usage=_usage_block(usage))
    yield b"data: [DONE]\n\n"
