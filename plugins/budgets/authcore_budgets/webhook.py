"""Soft-budget alerts POSTed to an operator's URL, off the request path; failures are logged, never raised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx

logger = logging.getLogger("authcore.budgets")


class AlertWebhook:
    """Sends each alert as one JSON POST in a background task."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self._url = url
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self._pending: set[asyncio.Task[None]] = set()

    def send(self, payload: Mapping[str, Any]) -> None:
        task = asyncio.create_task(self._post(dict(payload)))
        # Held until done: the event loop keeps only weak references to tasks.
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, payload: dict[str, Any]) -> None:
        try:
            response = await self._client.post(self._url, json=payload)
            if response.status_code >= 400:
                logger.warning("budgets: soft-budget webhook answered %s", response.status_code)
        except httpx.HTTPError as error:
            # The URL may carry a token: log the error type only.
            logger.warning("budgets: soft-budget webhook failed (%s)", type(error).__name__)

    async def aclose(self) -> None:
        """Wait briefly for alerts in flight, then close the client."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=2.0)
        for task in self._pending:
            task.cancel()
        await self._client.aclose()
