"""An `AuthenticationBackend` for apps already built on Starlette's `AuthenticationMiddleware`."""

from __future__ import annotations

from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, BaseUser
from starlette.requests import HTTPConnection
from starlette.responses import Response

from authcore.errors import AuthcoreError, DependencyFailure, InvalidCredentials
from authcore.middleware import STATE_KEY
from authcore.principal import StarletteViews
from authcore.request import RequestContext
from authcore.responses import error_response
from authcore.runner import Runner


class AuthcoreBackend(AuthenticationBackend):
    """Runs extraction, identity and checks; `reserve_budget` is skipped.

    The backend cannot see the response, so it cannot settle reservations, and
    it cannot replay the body to the app, so plugins see an empty body. Use
    `AuthcoreMiddleware` when budgets or body-based checks are configured.
    Pass `on_error=on_auth_error` to `AuthenticationMiddleware`: its default
    answers every failure with a plain-text 400.
    """

    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner
        self._views = StarletteViews()

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        runner = self.runner or getattr(conn.app.state, STATE_KEY, None)
        if runner is None or not runner.started:
            raise DependencyFailure(reason_id="runner_not_started")
        result = await runner.authenticate(RequestContext(conn.scope), reserve=False)
        conn.scope["authcore"] = result
        if result.error is not None:
            raise result.error
        if result.identity is None:
            return None
        _, user, credentials = self._views.of(result.identity)
        return credentials, user


def on_auth_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """JSON error with the right status and headers (401/403/429/503), never Starlette's 400."""
    error = exc if isinstance(exc, AuthcoreError) else InvalidCredentials(reason_id="authentication_error")
    return error_response(error)
