"""authcore: a plugin-based, fail-closed auth pipeline for ASGI services."""

from authcore.errors import (
    AuthcoreError,
    BudgetExceeded,
    ConfigurationError,
    DependencyFailure,
    Forbidden,
    InvalidCredentials,
    InvalidRequest,
    MalformedCredentials,
    MissingCredentials,
    PayloadTooLarge,
    PluginFailure,
    RateLimited,
    TooManyRequests,
)
from authcore.events import AuthEvent
from authcore.models import Credentials, Identity, Reservation, Usage
from authcore.plugin import EmptyConfig, Plugin, PluginContext, PluginRoute, hookimpl
from authcore.request import RequestContext
from authcore.result import AuthResult
from authcore.trace import Trace, TraceStep

__version__ = "0.1.0"

__all__ = [
    "AuthEvent",
    "AuthResult",
    "AuthcoreError",
    "BudgetExceeded",
    "ConfigurationError",
    "Credentials",
    "DependencyFailure",
    "EmptyConfig",
    "Forbidden",
    "Identity",
    "InvalidCredentials",
    "InvalidRequest",
    "MalformedCredentials",
    "MissingCredentials",
    "PayloadTooLarge",
    "Plugin",
    "PluginContext",
    "PluginFailure",
    "PluginRoute",
    "RateLimited",
    "RequestContext",
    "Reservation",
    "TooManyRequests",
    "Trace",
    "TraceStep",
    "Usage",
    "hookimpl",
]
