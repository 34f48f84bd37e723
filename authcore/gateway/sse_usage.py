"""Finding the `usage` block in a server-sent-events stream as it passes through."""

from __future__ import annotations

import json

from authcore.gateway.chat_request import usage_from_payload
from authcore.models import Usage

_MAX_PENDING = 1024 * 1024


class SseUsageScanner:
    """Feed it the raw stream; `usage` is the last `usage` block seen in a `data:` event."""

    __slots__ = ("_model", "_pending", "usage")

    def __init__(self, model: str | None) -> None:
        self._model = model
        self._pending = b""
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> None:
        self._pending += chunk.replace(b"\r\n", b"\n")
        *events, self._pending = self._pending.split(b"\n\n")
        for event in events:
            self._event(event)
        if len(self._pending) > _MAX_PENDING:
            # An event this large carries no usage block worth waiting for.
            self._pending = b""

    def close(self) -> None:
        """Read a final event that was not followed by a blank line."""
        if self._pending:
            self._event(self._pending)
            self._pending = b""

    def _event(self, event: bytes) -> None:
        data = b"\n".join(line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:"))
        if not data or data == b"[DONE]":
            return
        try:
            payload = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return
        found = usage_from_payload(payload, self._model)
        if found is not None:
            self.usage = found
