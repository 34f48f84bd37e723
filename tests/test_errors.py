"""The HTTP meaning of each error, and the fixed body of InvalidCredentials."""

from __future__ import annotations

import json

import pytest

import authcore
from authcore.errors import AuthcoreError
from authcore.responses import REQUEST_ID_HEADER, error_payload, error_response

CASES: list[tuple[AuthcoreError, int, str, dict[str, str]]] = [
    (authcore.MalformedCredentials(), 400, "invalid_request_error", {}),
    (authcore.MissingCredentials(), 401, "authentication_error", {"www-authenticate": "Bearer"}),
    (authcore.InvalidCredentials(), 401, "authentication_error", {"www-authenticate": 'Bearer error="invalid_token"'}),
    (authcore.Forbidden(), 403, "permission_error", {}),
    (authcore.PayloadTooLarge(), 413, "invalid_request_error", {}),
    (authcore.RateLimited(retry_after=0.2), 429, "rate_limit_error", {"retry-after": "1"}),
    (authcore.BudgetExceeded(retry_after=61.5), 429, "rate_limit_error", {"retry-after": "62"}),
    (authcore.DependencyFailure(), 503, "service_unavailable_error", {"retry-after": "1"}),
    (authcore.PluginFailure(), 503, "service_unavailable_error", {"retry-after": "1"}),
]


@pytest.mark.parametrize(("error", "status", "error_type", "headers"), CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_status_type_and_headers(error: AuthcoreError, status: int, error_type: str, headers: dict[str, str]) -> None:
    response = error_response(error, "rid")
    assert response.status_code == status
    body = json.loads(bytes(response.body))
    assert body["error"]["type"] == error_type
    assert set(body["error"]) == {"message", "type", "param", "code"}
    for name, value in headers.items():
        assert response.headers[name] == value
    assert response.headers[REQUEST_ID_HEADER] == "rid"


def test_invalid_credentials_message_and_reason_never_reach_the_body() -> None:
    unknown = authcore.InvalidCredentials("key not found in table keys", reason_id="key_unknown")
    revoked = authcore.InvalidCredentials("revoked by admin@corp", reason_id="key_revoked")
    assert error_payload(unknown) == error_payload(revoked)
    assert unknown.response_headers() == revoked.response_headers()
    assert b"revoked" not in error_payload(revoked)
    assert unknown.reason_id == "key_unknown"
    assert revoked.reason_id == "key_revoked"


def test_invalid_credentials_ignores_extra_headers_from_subclass_state() -> None:
    error = authcore.InvalidCredentials(reason_id="x")
    error.headers["x-reason"] = "revoked"
    assert "x-reason" not in error.response_headers()


def test_repr_has_status_and_reason_but_no_message() -> None:
    error = authcore.Forbidden("team sk-canary-7 is blocked", reason_id="team_blocked")
    assert repr(error) == "Forbidden(status=403, reason_id='team_blocked')"


def test_errors_are_starlette_authentication_errors() -> None:
    from starlette.authentication import AuthenticationError

    assert issubclass(AuthcoreError, AuthenticationError)
    assert not issubclass(authcore.ConfigurationError, AuthcoreError)


def test_retry_after_is_always_a_positive_whole_number() -> None:
    assert authcore.RateLimited(retry_after=0).response_headers()["retry-after"] == "1"
    assert authcore.RateLimited(retry_after=-5).response_headers()["retry-after"] == "1"
    assert authcore.RateLimited(retry_after=1.01).response_headers()["retry-after"] == "2"
