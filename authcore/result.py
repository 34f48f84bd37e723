"""The outcome of running the pipeline for one request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from authcore.errors import AuthcoreError
from authcore.models import Identity, Reservation, Usage
from authcore.trace import Trace


@dataclass(slots=True)
class AuthResult:
    """Allowed (with an identity, or anonymously on a public route) or denied (with `error`).

    Stored on the ASGI scope as `scope["authcore"]`. The app reports what the
    upstream consumed by setting `usage`; the middleware settles the
    reservations with it when the response ends.
    """

    identity: Identity | None
    trace: Trace
    error: AuthcoreError | None = None
    reservations: Sequence[Reservation] = ()
    usage: Usage | None = None
    settled: bool = field(default=False)

    @property
    def allowed(self) -> bool:
        return self.error is None

    @property
    def status_code(self) -> int:
        return 200 if self.error is None else self.error.status_code
