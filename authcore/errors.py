"""Typed auth errors and their HTTP meaning.

Plugins raise these to deny. The runner turns any other exception into a
`PluginFailure` (503). Messages are public: they reach the client, so they must
never contain a credential. `reason_id` is a stable machine id for traces and
metrics; for `InvalidCredentials` it is the only place the real reason appears,
so unknown, revoked and expired credentials get byte-identical responses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from starlette.authentication import AuthenticationError


class AuthcoreError(AuthenticationError):
    """Base of every deny. Subclasses fix the status and the OpenAI error type."""

    status_code: int = 503
    error_type: str = "service_unavailable_error"
    default_code: str = "service_unavailable"
    default_message: str = "Authentication is unavailable."

    def __init__(
        self,
        message: str | None = None,
        *,
        reason_id: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.code = code or self.default_code
        self.reason_id = reason_id or self.code
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status_code}, reason_id={self.reason_id!r})"

    def response_headers(self) -> dict[str, str]:
        """Headers the HTTP response must carry for this error."""
        return self.headers

    def body(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI-compatible error body."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class MalformedCredentials(AuthcoreError):
    """400: a credential is syntactically bad, duplicated or ambiguous."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"
    default_message = "Malformed credentials."


class InvalidRequest(AuthcoreError):
    """400: the request body cannot be checked (a model or user field in a shape no check can read)."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"
    default_message = "Invalid request."


class PayloadTooLarge(AuthcoreError):
    """413: the request body is larger than the configured limit."""

    status_code = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"
    default_message = "Request body too large."


class MissingCredentials(AuthcoreError):
    """401: no credential was presented."""

    status_code = 401
    error_type = "authentication_error"
    default_code = "missing_api_key"
    default_message = "No credentials were provided."

    def response_headers(self) -> dict[str, str]:
        return {"www-authenticate": "Bearer", **self.headers}


class InvalidCredentials(AuthcoreError):
    """401: a credential was presented but is unknown, revoked, expired or forged.

    The public message is fixed whatever the reason; pass the real reason as
    `reason_id`, which only reaches the trace.
    """

    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"
    default_message = "Invalid credentials."

    def __init__(self, message: str | None = None, *, reason_id: str = "invalid_credentials") -> None:
        # The message is dropped on purpose: a reason in the body is an oracle.
        super().__init__(None, reason_id=reason_id)

    def response_headers(self) -> dict[str, str]:
        return {"www-authenticate": 'Bearer error="invalid_token"'}


class Forbidden(AuthcoreError):
    """403: the principal is known but not allowed to do this."""

    status_code = 403
    error_type = "permission_error"
    default_code = "forbidden"
    default_message = "Not allowed."


class TooManyRequests(AuthcoreError):
    """429: a budget or a rate limit is exhausted. Always carries `Retry-After`."""

    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    default_message = "Rate limit exceeded."

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float = 1.0,
        reason_id: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason_id=reason_id, code=code, headers=headers)
        self.retry_after = max(1, math.ceil(retry_after))

    def response_headers(self) -> dict[str, str]:
        return {"retry-after": str(self.retry_after), **self.headers}


class BudgetExceeded(TooManyRequests):
    """429: spending this request would exceed a budget."""

    default_code = "budget_exceeded"
    default_message = "Budget exceeded."


class RateLimited(TooManyRequests):
    """429: a request or token rate limit is exhausted."""


class DependencyFailure(AuthcoreError):
    """503: a database, cache or remote endpoint the decision needs failed."""

    default_code = "dependency_unavailable"

    def response_headers(self) -> dict[str, str]:
        return {"retry-after": "1", **self.headers}


class PluginFailure(DependencyFailure):
    """503: a plugin raised an unexpected error, timed out or broke its contract."""

    default_code = "plugin_failure"


class ConfigurationError(Exception):
    """The configuration or the installed plugins do not allow a safe start."""
