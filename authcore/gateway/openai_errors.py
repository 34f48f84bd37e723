"""Error responses in the OpenAI shape, for failures the gateway itself reports."""

from __future__ import annotations

from starlette.responses import JSONResponse


def openai_error(status: int, message: str, error_type: str, code: str, param: str | None = None) -> JSONResponse:
    """`{"error": {"message", "type", "param", "code"}}` with the given status."""
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def bad_request(message: str, param: str | None = None, code: str = "invalid_request") -> JSONResponse:
    return openai_error(400, message, "invalid_request_error", code, param)


def payload_too_large() -> JSONResponse:
    return openai_error(413, "The request body is too large.", "invalid_request_error", "payload_too_large")


def model_not_found(model: str) -> JSONResponse:
    return openai_error(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
        "model",
    )


def model_not_allowed(model: str) -> JSONResponse:
    message = f"This credential is not allowed to use the model `{model}`."
    return openai_error(403, message, "permission_error", "model_not_allowed", "model")


def bad_gateway(message: str = "The upstream could not be reached.") -> JSONResponse:
    return openai_error(502, message, "api_error", "upstream_unavailable")


def gateway_timeout() -> JSONResponse:
    return openai_error(504, "The upstream did not answer in time.", "api_error", "upstream_timeout")
