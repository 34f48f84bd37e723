"""Events sent to observer plugins (audit, metrics, alerts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from authcore.trace import Trace


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """Something that happened, described without secrets.

    `kind` is `"decision"` after every authenticated request, `"settlement"`
    after reservations are settled, or a plugin's own dotted kind such as
    `"budgets.soft_limit"`.
    """

    kind: str
    plugin: str | None = None
    status: int | None = None
    reason_id: str | None = None
    identity: Mapping[str, str | None] | None = None
    trace: Trace | None = None
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
