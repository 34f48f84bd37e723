"""What the virtual-keys benchmarks share: the config (headers + virtual_keys), and creating a key.

Keys are created through the plugin's own admin route (`POST /key/generate`,
called in process with the master key), so hashing and storage are exactly
what a deployment does.
"""

from __future__ import annotations

from typing import Any

import httpx
from authcore_virtual_keys import VirtualKeysPlugin
from starlette.types import ASGIApp

from authcore.config import AuthcoreConfig, parse_config
from authcore.credentials import HeaderCredentials
from authcore.loader import TypeResolver, mapping_resolver

MASTER_KEY = "sk-bench-master-7Qm2xV9pL4rT8wZc"
HASH_SECRET = "bench-pepper-3e9a1c7f5b2d8e40"
KEY_MODELS = ["gpt-4o", "gpt-4o-mini"]
"""The bench key is restricted to these models, so the model check reads the request body."""
INSTANCE = "keys"


def vk_config(database_url: str, **plugin_settings: Any) -> AuthcoreConfig:
    """`headers` + one `virtual_keys` instance on `database_url`, as the embedded default config sets them up."""
    return parse_config(
        {
            "plugins": {
                "headers": {"use": "headers"},
                INSTANCE: {
                    "use": "virtual_keys",
                    "config": {"master_key": MASTER_KEY, "hash_secret": HASH_SECRET, **plugin_settings},
                },
            },
            "storage": {"database_url": database_url},
        },
        "<bench virtual_keys config>",
    )


def vk_resolver() -> TypeResolver:
    return mapping_resolver({"headers": HeaderCredentials, "virtual_keys": VirtualKeysPlugin})


async def create_key(app: ASGIApp, key: str | None = None) -> tuple[str, str]:
    """(raw key, token) of a new key limited to `KEY_MODELS`; `key` chooses its value. `app` must be started."""
    body: dict[str, Any] = {"models": KEY_MODELS}
    if key is not None:
        body["key"] = key
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        response = await client.post("/key/generate", json=body, headers={"authorization": f"Bearer {MASTER_KEY}"})
    if response.status_code != 200:
        raise RuntimeError(f"/key/generate answered {response.status_code}: {response.text[:200]}")
    data = response.json()
    return data["key"], data["token"]
