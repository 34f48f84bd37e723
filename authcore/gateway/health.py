"""Liveness and readiness probes, public whatever `routes.public` says."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authcore.middleware import STATE_KEY
from authcore.runner import Runner

LIVENESS_PATH = "/health/liveliness"
READINESS_PATH = "/health/readiness"


async def liveliness(request: Request) -> Response:
    return JSONResponse({"status": "alive"})


async def readiness(request: Request) -> Response:
    """200 when the runner is started and every store answers; 503 with each store's status otherwise."""
    runner: Runner | None = getattr(request.app.state, STATE_KEY, None)
    if runner is None or not runner.started or runner.resources is None:
        return JSONResponse({"status": "not_ready", "stores": {}}, status_code=503)
    stores = await runner.resources.check()
    ready = all(status == "ok" for status in stores.values())
    body = {"status": "ready" if ready else "not_ready", "stores": stores}
    return JSONResponse(body, status_code=200 if ready else 503)


PROBE_PATHS = (LIVENESS_PATH, READINESS_PATH)
"""Always public: the gateway adds them to `routes.public` whatever the configuration says."""


def health_routes() -> list[Route]:
    """The two probes. Readiness carries store status names only, never a URL or a credential."""
    return [
        Route(LIVENESS_PATH, liveliness, methods=["GET", "HEAD"]),
        Route(READINESS_PATH, readiness, methods=["GET", "HEAD"]),
    ]
