"""authcore plugin: LiteLLM-style virtual API keys.

Keys are `sk-` + 256 random bits, stored only as HMAC-SHA-256 hashes, cached
in process for a bounded time, and managed through `/key/*`, `/team/*` and
`/user/*` admin routes. See `VirtualKeysPlugin` and `VirtualKeysConfig`.
"""

from __future__ import annotations

from authcore_virtual_keys.config import VirtualKeysConfig
from authcore_virtual_keys.plugin import VirtualKeysPlugin

__all__ = ["VirtualKeysConfig", "VirtualKeysPlugin"]
