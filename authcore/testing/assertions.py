"""Assertions on `AuthResult` whose failures show the decision trace."""

from __future__ import annotations

from authcore.errors import AuthcoreError
from authcore.models import Identity
from authcore.result import AuthResult


def _describe(result: AuthResult) -> str:
    error = result.error
    outcome = "allowed" if error is None else f"denied {error.status_code} reason_id={error.reason_id!r}"
    return f"{outcome}\n{result.trace.format()}"


def assert_allowed(result: AuthResult) -> Identity | None:
    """Fail unless the request was allowed; return its identity (`None` on a public route)."""
    if result.error is not None:
        raise AssertionError(f"expected the request to be allowed, but it was {_describe(result)}")
    return result.identity


def assert_denied(result: AuthResult, status: int, reason_id: str | None = None) -> AuthcoreError:
    """Fail unless the request was denied with `status` (and `reason_id`, when given); return the error."""
    error = result.error
    if error is None:
        raise AssertionError(f"expected a {status} deny, but the request was {_describe(result)}")
    if error.status_code != status or (reason_id is not None and error.reason_id != reason_id):
        wanted = f"{status}" + (f" reason_id={reason_id!r}" if reason_id is not None else "")
        raise AssertionError(f"expected a deny with {wanted}, but the request was {_describe(result)}")
    return error
