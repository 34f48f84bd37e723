"""What plugin commands share: picking an instance and calling its admin API in process.

Commands go through the plugin's own admin routes on an in-process gateway, so
validation, hashing, migrations and cross-replica invalidation are exactly the
admin API's.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel

from authcore.cli.common import CliError
from authcore.config import AuthcoreConfig
from authcore.gateway.app import create_app
from authcore.gateway.settings import gateway_resolver
from authcore.runner import Runner

API_ERROR = 1
"""Exit code when the admin API refused the call."""


def select_instance(config: AuthcoreConfig, plugin_type: str, wanted: str | None = None) -> str:
    """The instance of `plugin_type` named `wanted`, or the only one; `CliError` otherwise."""
    names = [name for name, spec in config.plugins.items() if spec.use == plugin_type]
    listed = ", ".join(names) or "none"
    if wanted is not None:
        if wanted not in names:
            raise CliError(f"{config.source}: no {plugin_type} instance named {wanted!r} (found: {listed})")
        return wanted
    if len(names) != 1:
        raise CliError(f"{config.source}: {len(names)} {plugin_type} instances ({listed}); pick one with --instance")
    return names[0]


def instance_config(config: AuthcoreConfig, instance: str) -> BaseModel:
    """The instance's validated settings (references resolved), without touching any store."""
    runner = Runner.from_config(config, gateway_resolver(config))
    plugin = next(candidate for candidate in runner.instances if candidate.name == instance)
    return plugin.config


async def call_admin_api(
    config: AuthcoreConfig, bearer: str, method: str, path: str, payload: Any = None
) -> httpx.Response:
    """One admin call on a gateway started in this process for the call."""
    app = create_app(config)
    headers = {"authorization": f"Bearer {bearer}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://authcore-cli") as client:
            if method == "GET":
                return await client.get(path, params=payload, headers=headers)
            return await client.request(method, path, json=payload, headers=headers)


def response_json(response: httpx.Response, path: str) -> Any:
    """The JSON body; `CliError` with the API's message (never a credential) on a 4xx/5xx."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        raise CliError(f"{path} answered {response.status_code}: {message or 'no error message'}", API_ERROR)
    return body
