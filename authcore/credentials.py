"""`headers`: the built-in credential extractor, reading the places LiteLLM clients put a key.

Sources, in precedence order:

1. the override header (`override_header`, default `x-litellm-api-key`); a
   leading `Bearer ` is stripped. When it is present every other source is
   ignored, unparsed: those headers may then carry provider credentials that
   are meant for the upstream, which is the point of the override header.
   (A credential in the URL of a route that does not accept one is still a 400.)
2. `Authorization: Bearer <token>` (scheme case-insensitive). `Basic <token>`
   only on `basic_routes`; the base64 text is passed on as it is, as kind
   `"basic"`, and is NOT decoded (LiteLLM uses it as a raw key carrier).
   Basic elsewhere is not ours: alone it abstains (left to `custom_auth`,
   else 401 with a Bearer challenge); next to another source it is a 400.
3. `api-key` (Azure OpenAI).
4. `x-api-key` (Anthropic).
5. `x-goog-api-key` (Google AI Studio).
6. `Ocp-Apim-Subscription-Key` (Azure API Management).
7. the `?key=` query parameter, only on Gemini routes (the path contains
   `:generateContent` or `:streamGenerateContent`) and on `query_key_routes`.
   Anywhere else a `key`, `api_key` or `access_token` query parameter is a
   400, so keys never sit unnoticed in URLs and access logs.
8. on websockets, the `Sec-WebSocket-Protocol` entry `openai-insecure-api-key.<key>`
   (the header sources above work on websockets too).

Without an override header, every source present is parsed strictly and
they must all carry the same value: the first one wins, and two different
values are a 400 (`ambiguous_credentials`). A token is RFC 6750 `b64token`
(`[A-Za-z0-9-._~+/]+=*`), at most `max_length` characters, compared as bytes:
no Unicode normalisation, no case folding. Anything else present (a repeated
header, a comma-joined list, tabs, NBSP, zero-width or non-ASCII characters,
quotes, an unknown scheme) is a 400. No source at all abstains (`None`).
Messages name the source, never the value.
"""

from __future__ import annotations

import re
from typing import ClassVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, field_validator

from authcore.bounded import put_newest
from authcore.errors import MalformedCredentials
from authcore.models import Credentials
from authcore.plugin import Plugin, hookimpl
from authcore.request import RequestContext
from authcore.route_policy import RoutePatterns, check_patterns

# RFC 6750 b64token. On bytes, so non-ASCII, control characters, spaces, tabs,
# quotes and commas all fail without a decode step.
_TOKEN = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")
# RFC 9110 field-name characters, for the configured override header.
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")

AUTHORIZATION = b"authorization"
WEBSOCKET_PROTOCOL = b"sec-websocket-protocol"
KEY_HEADERS: tuple[bytes, ...] = (b"api-key", b"x-api-key", b"x-goog-api-key", b"ocp-apim-subscription-key")
"""Headers carrying a bare key, in precedence order after `Authorization`."""
WEBSOCKET_KEY_PREFIX = "openai-insecure-api-key."
BEARERS_REMEMBERED = 1024
"""Distinct well-formed `Authorization: Bearer` values whose parse `HeaderCredentials` keeps."""
QUERY_KEY = "key"
QUERY_CREDENTIAL_NAMES = frozenset({"key", "api_key", "access_token"})
GEMINI_METHODS = (":generateContent", ":streamGenerateContent")

_RESERVED_HEADERS = frozenset(name.decode() for name in (AUTHORIZATION, WEBSOCKET_PROTOCOL, *KEY_HEADERS))


class HeaderCredentialsConfig(BaseModel):
    """Settings of the `headers` extractor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    override_header: str | None = Field(
        default="x-litellm-api-key",
        description=(
            "Source 1, checked before all others. When present it is the credential (a leading `Bearer ` is "
            "stripped) and the other headers are ignored, so they can carry provider credentials. `null` disables it."
        ),
    )
    basic_routes: tuple[str, ...] = Field(
        default=(),
        description=(
            "Routes (exact path or `/prefix/*`) where `Authorization: Basic <base64>` (source 2) is accepted. "
            "The base64 text is the credential, kind `basic`, not decoded. Elsewhere Basic is left to custom_auth."
        ),
    )
    query_key_routes: tuple[str, ...] = Field(
        default=(),
        description=(
            "Routes (exact path or `/prefix/*`) where the `?key=` query parameter is a credential (source 7). "
            "On other routes a `key`, `api_key` or `access_token` query parameter is rejected with 400."
        ),
    )
    query_data_routes: tuple[str, ...] = Field(
        default=(),
        description=(
            "Routes (exact path or `/prefix/*`) whose `key` query parameter is request data, not the caller's "
            "credential, such as LiteLLM's `GET /key/info?key=`: it is neither extracted nor refused there."
        ),
    )
    query_key_for_gemini_routes: bool = Field(
        default=True,
        description=(
            "Also accept `?key=` (source 7) when the path contains `:generateContent` or `:streamGenerateContent`."
        ),
    )
    max_length: int = Field(
        default=4096, gt=0, le=65536, description="Longest credential accepted, in characters; longer is a 400."
    )

    @field_validator("override_header")
    @classmethod
    def _override_header(cls, name: str | None) -> str | None:
        if name is None:
            return None
        lowered = name.strip().lower()
        if not _FIELD_NAME.fullmatch(lowered):
            raise ValueError("override_header must be an HTTP header name")
        if lowered in _RESERVED_HEADERS:
            raise ValueError(f"override_header cannot be {lowered!r}: that header is already a credential source")
        return lowered

    @field_validator("basic_routes", "query_key_routes", "query_data_routes")
    @classmethod
    def _patterns(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        check_patterns(patterns)
        return patterns


def _malformed(message: str, reason_id: str) -> MalformedCredentials:
    return MalformedCredentials(message, reason_id=reason_id)


class HeaderCredentials(Plugin[HeaderCredentialsConfig]):
    """Extract one API key from the LiteLLM-compatible headers, query parameter or websocket subprotocol."""

    Config = HeaderCredentialsConfig
    cpu_only: ClassVar[bool] = True
    """The sync hook only parses bytes already in memory, so it may run on the event loop."""

    def __init__(self, name: str, config: HeaderCredentialsConfig) -> None:
        super().__init__(name, config)
        self._override = config.override_header.encode() if config.override_header else None
        wanted = [AUTHORIZATION, *KEY_HEADERS, WEBSOCKET_PROTOCOL]
        if self._override is not None:
            wanted.insert(0, self._override)
        self._wanted = frozenset(wanted)
        self._basic = RoutePatterns(config.basic_routes)
        self._query_routes = RoutePatterns(config.query_key_routes)
        self._query_data = RoutePatterns(config.query_data_routes)
        self._gemini = config.query_key_for_gemini_routes
        self._max = config.max_length
        self._bearers: dict[bytes, Credentials] = {}
        """`Authorization` value -> its parsed credentials, the newest `BEARERS_REMEMBERED`: the same few keys
        come back on every request, and `Credentials` are immutable. Process memory only, like the request."""

    # Sync on purpose: it never waits, and the runner calls sync hooks inline,
    # which measured cheaper than stepping a coroutine.
    @hookimpl
    def extract_credentials(self, request: RequestContext) -> Credentials | None:
        """The request's one credential, `None` when there is none; 400 when malformed or ambiguous."""
        scope = request.scope
        wanted = self._wanted
        # The common request carries one `Authorization` and no other source: it is kept aside
        # (`bearer`) and `found`, which every other shape needs, is never built for it.
        bearer: bytes | None = None
        found: dict[bytes, list[bytes]] | None = None
        for name, value in scope["headers"]:
            # Servers send lower-case names, so this skips most headers without
            # allocating; a hand-built scope may not, hence the second look.
            if name not in wanted and (name.islower() or (name := name.lower()) not in wanted):
                continue
            if found is None:
                if name == AUTHORIZATION and bearer is None:
                    bearer = value
                    continue
                found = {AUTHORIZATION: [bearer]} if bearer is not None else {}
            if (seen := found.get(name)) is None:
                found[name] = [value]
            else:
                seen.append(value)
        query: bytes = scope.get("query_string") or b""
        if found is None:
            if bearer is None:
                if not query:
                    return None
                found = {}
            else:
                query_key = self._query_key(query, request.path) if query else None
                if query_key is None:
                    known = self._bearers.get(bearer)
                    if known is not None:
                        return known
                    parsed = self._parse_bearer(bearer)
                    if parsed is not None:
                        return parsed
                return self._compare_sources(request, {AUTHORIZATION: [bearer]}, query_key)

        override = self._override
        if override is not None and override in found:
            if query:
                # Other sources are the upstream's business now, but a key in a
                # URL is still refused where it would not be accepted.
                self._query_key(query, request.path, ours=False)
            value = _single(found, override)
            if value[:7].lower() == b"bearer ":
                value = value[7:]
            return Credentials.of("api_key", self._token(value, override), override.decode())
        query_key = self._query_key(query, request.path) if query else None
        return self._compare_sources(request, found, query_key)

    def _parse_bearer(self, value: bytes) -> Credentials | None:
        """A well-formed `Bearer <token>` value as credentials, remembered; `None` for anything else."""
        if value[:7].lower() != b"bearer " or len(value) > self._max + 7 or _TOKEN.fullmatch(value, 7) is None:
            return None
        credentials = Credentials.of("api_key", value[7:].decode("ascii"), "authorization")
        put_newest(self._bearers, value, credentials, BEARERS_REMEMBERED)
        return credentials

    def _compare_sources(
        self, request: RequestContext, found: dict[bytes, list[bytes]], query_key: str | None
    ) -> Credentials | None:
        """The one credential every present source agrees on; 400 when they differ."""
        candidates: list[tuple[str, str, str]] = []
        foreign_basic = False
        if AUTHORIZATION in found:
            parsed = self._authorization(_single(found, AUTHORIZATION))
            if parsed[0] == "basic" and not self._basic.matches(request.path):
                foreign_basic = True
            else:
                candidates.append((*parsed, "authorization"))
        for header in KEY_HEADERS:
            if header in found:
                candidates.append(("api_key", self._token(_single(found, header), header), header.decode()))
        if query_key is not None:
            candidates.append(("api_key", query_key, "query:key"))
        if WEBSOCKET_PROTOCOL in found and request.is_websocket:
            key = self._subprotocol_key(found[WEBSOCKET_PROTOCOL])
            if key is not None:
                candidates.append(("api_key", key, "sec-websocket-protocol"))

        if not candidates:
            return None
        if foreign_basic:
            raise _malformed(
                "Send one credential per request: Basic credentials are not accepted on this route.",
                "ambiguous_credentials",
            )
        kind, secret, source = candidates[0]
        for other_kind, other, _ in candidates[1:]:
            if other != secret or other_kind != kind:
                raise _malformed(
                    "More than one credential was provided with different values; send exactly one.",
                    "ambiguous_credentials",
                )
        return Credentials.of(kind, secret, source)

    # -- parsing ------------------------------------------------------------

    def _token(self, value: bytes, source: bytes | str) -> str:
        """The value as a checked token, or a 400 naming the source."""
        if len(value) > self._max:
            raise _malformed(f"The credential in {_label(source)} is too long.", "credential_too_long")
        if _TOKEN.fullmatch(value) is None:
            raise _invalid_token(value, source)
        return value.decode("ascii")

    def _authorization(self, value: bytes) -> tuple[str, str]:
        """(`"api_key"` or `"basic"`, token) from an `Authorization` value."""
        scheme, _, token = value.partition(b" ")
        lowered = scheme.lower()
        if lowered == b"bearer":
            kind = "api_key"
        elif lowered == b"basic":
            kind = "basic"
        else:
            raise _bad_authorization(value)
        if not token:
            raise _malformed("The Authorization header has a scheme but no credential.", "missing_token")
        return kind, self._token(token, AUTHORIZATION)

    def _query_key(self, query: bytes, path: str, *, ours: bool = True) -> str | None:
        """The `?key=` credential on routes that allow it; 400 for credentials in other URLs.

        With `ours=False` (the override header decided) only the refusal applies.
        """
        lowered = query.lower()
        if b"key" not in lowered and b"token" not in lowered and b"%" not in lowered:
            return None
        if self._query_data and self._query_data.matches(path):
            return None
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        hits = [(name, value) for name, value in pairs if name.lower() in QUERY_CREDENTIAL_NAMES]
        if not hits:
            return None
        allowed = (self._gemini and any(method in path for method in GEMINI_METHODS)) or self._query_routes.matches(
            path
        )
        if not allowed or any(name != QUERY_KEY for name, _ in hits):
            raise _malformed(
                "Credentials are not accepted in the URL on this route; send them in the Authorization header.",
                "query_credentials_not_allowed",
            )
        if not ours:
            return None
        if len(hits) > 1:
            raise _malformed("The key query parameter was sent more than once; send it once.", "duplicate_query_key")
        value = hits[0][1]
        # parse_qsl decoded percent-escapes as UTF-8; anything non-ASCII fails the grammar below.
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raise _malformed("The credential in the key query parameter is malformed.", "malformed_token") from None
        return self._token(raw, "query:key")

    def _subprotocol_key(self, lines: list[bytes]) -> str | None:
        """The key of an `openai-insecure-api-key.<key>` subprotocol (a list field: lines may repeat)."""
        prefix = WEBSOCKET_KEY_PREFIX.encode()
        keys = [
            entry[len(prefix) :]
            for line in lines
            for raw in line.split(b",")
            if (entry := raw.strip(b" \t")).startswith(prefix)
        ]
        if not keys:
            return None
        if len(keys) > 1:
            raise _malformed(
                "More than one openai-insecure-api-key subprotocol was offered; offer one.", "multiple_credentials"
            )
        return self._token(keys[0], WEBSOCKET_PROTOCOL)


def _single(found: dict[bytes, list[bytes]], header: bytes) -> bytes:
    values = found[header]
    if len(values) > 1:
        raise _malformed(f"The {header.decode()} header was sent more than once; send it once.", "duplicate_header")
    return values[0]


def _label(source: bytes | str) -> str:
    name = source.decode() if isinstance(source, bytes) else source
    return "the key query parameter" if name == "query:key" else f"the {name} header"


def _bad_authorization(value: bytes) -> MalformedCredentials:
    """Say why an `Authorization` value has no usable scheme, without echoing it."""
    if not value:
        return _malformed("The Authorization header is empty.", "missing_token")
    if b"," in value:
        return _malformed(
            "The Authorization header holds more than one credential; send exactly one.", "multiple_credentials"
        )
    if value.lower().startswith((b"bearer", b"basic")):
        return _malformed(
            "The Authorization header must be the scheme, one space, then the credential.", "malformed_authorization"
        )
    if _TOKEN.fullmatch(value) is not None:
        return _malformed(
            "The Authorization header has no scheme; send 'Authorization: Bearer <key>'.", "missing_scheme"
        )
    return _malformed(
        "The Authorization scheme is not supported; send 'Authorization: Bearer <key>'.", "unsupported_scheme"
    )


def _invalid_token(value: bytes, source: bytes | str) -> MalformedCredentials:
    """Say what is wrong with a token, without echoing it."""
    where = _label(source)
    if not value:
        return _malformed(f"The credential in {where} is empty.", "missing_token")
    if b"," in value:
        return _malformed(
            f"{where.capitalize()} holds more than one credential; send exactly one.", "multiple_credentials"
        )
    if any(byte > 0x7F for byte in value):
        return _malformed(f"The credential in {where} contains non-ASCII characters.", "non_ascii_token")
    if any(byte < 0x21 or byte == 0x7F for byte in value):
        return _malformed(f"The credential in {where} contains whitespace or control characters.", "malformed_token")
    return _malformed(f"The credential in {where} contains characters a token cannot have.", "malformed_token")
