"""`AuthcoreMiddleware`: the whole pipeline as pure ASGI middleware."""

from __future__ import annotations

import asyncio
import logging

from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authcore.deadline import finish
from authcore.errors import AuthcoreError, DependencyFailure
from authcore.principal import StarletteViews
from authcore.request import RequestContext
from authcore.responses import send_error
from authcore.result import AuthResult
from authcore.runner import Runner

logger = logging.getLogger("authcore")

WEBSOCKET_POLICY_VIOLATION = 1008
STATE_KEY = "authcore_runner"
"""Attribute of `app.state` where `authcore_lifespan` puts the started runner."""


class AuthcoreMiddleware:
    """Authenticate every HTTP and websocket request before the app sees it.

    On success the scope carries `scope["authcore"]` (an `AuthResult`),
    `scope["user"]` and `scope["auth"]`, so `request.user`, `request.auth` and
    Starlette's `requires()` work. Denied HTTP requests get the error response;
    denied websockets are closed with 1008. Reservations are committed with
    `scope["authcore"].usage` when the response has been fully sent with a
    status below 400, and released otherwise (errors, disconnects, cancelled
    streams).

    Pass a started `runner`, or leave it out to use the one `authcore_lifespan`
    stored on `app.state`.
    """

    def __init__(self, app: ASGIApp, runner: Runner | None = None) -> None:
        self.app = app
        self.runner = runner
        self._found: Runner | None = None
        self._views = StarletteViews()

    def _runner(self, scope: Scope) -> Runner | None:
        """The runner given, else the one on `app.state`, remembered in `_found` while it runs.

        `app.state` lookups cost more than the rest of the middleware; a new
        lifespan stops the old runner, which sends us back to look again.
        """
        if self.runner is not None:
            self._found = self.runner
            return self.runner
        app = scope.get("app")
        found = getattr(app.state, STATE_KEY, None) if app is not None else None
        self._found = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        runner = self._found
        if runner is None or not runner.started:
            runner = self._runner(scope)
        if runner is None or not runner.started:
            await self._deny(scope, receive, send, DependencyFailure(reason_id="runner_not_started"), None)
            return
        request = RequestContext(scope, receive, max_body_bytes=runner.config.max_body_bytes)
        result = await runner.authenticate(request)
        scope["authcore"] = result
        if result.error is not None:
            await self._deny(scope, receive, send, result.error, result)
            return
        identity = result.identity
        if identity is None:
            scope["user"] = UnauthenticatedUser()
            scope["auth"] = AuthCredentials()
        else:
            _, scope["user"], scope["auth"] = self._views.of(identity)
        app_receive = request.replay_receive()
        if not result.reservations:
            await self.app(scope, app_receive, send)
            return
        await self._run_and_settle(runner, result, scope, app_receive, send)

    async def _run_and_settle(
        self, runner: Runner, result: AuthResult, scope: Scope, receive: Receive, send: Send
    ) -> None:
        status = 0
        finished = False

        extra = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for held in result.reservations
            for name, value in held.headers.items()
        ]

        async def watch(message: Message) -> None:
            nonlocal status, finished
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                if extra:
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)
            if (kind == "http.response.body" and not message.get("more_body", False)) or kind == "websocket.close":
                finished = True

        app_returned = False
        try:
            await self.app(scope, receive, watch)
            app_returned = True
        finally:
            completed = app_returned if scope["type"] == "websocket" else finished and 0 < status < 400
            settling = runner.settle(result, completed=completed)
            try:
                # An in-process store settles without suspending: nothing to shield, and no Task
                # (asyncio.shield's Task and futures cost an in-process budgets gateway a third of its req/s).
                first = settling.send(None)
            except StopIteration:
                pass
            else:
                if runner.settles_cancel_safe(result):
                    # Its holds finish their work even if this task is cancelled: no Task needed.
                    await finish(settling, first)
                else:
                    # Shielded: a cancelled request must still settle what it reserved.
                    await asyncio.shield(finish(settling, first))

    async def _deny(
        self, scope: Scope, receive: Receive, send: Send, error: AuthcoreError, result: AuthResult | None
    ) -> None:
        request_id = result.trace.request_id if result is not None else None
        if scope["type"] == "websocket":
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": WEBSOCKET_POLICY_VIOLATION, "reason": error.code})
            return
        await send_error(send, error, request_id)
