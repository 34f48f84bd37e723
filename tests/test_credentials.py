"""The built-in `headers` extractor: sources, precedence, strict parsing, and secrecy of what it reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from authcore.credentials import BEARERS_REMEMBERED, HeaderCredentials, HeaderCredentialsConfig
from authcore.errors import MalformedCredentials
from authcore.loader import entry_point_resolver
from authcore.models import Credentials
from authcore.request import RequestContext
from authcore.testing.conformance import PluginConformance

SECRET = "sk-CANARY0123456789abcdef"
OTHER = "sk-OTHER9876543210fedcba"
CHAT = "/v1/chat/completions"
GEMINI = "/v1beta/models/gemini-1.5-pro:generateContent"
GEMINI_STREAM = "/v1beta/models/gemini-1.5-pro:streamGenerateContent"

Header = tuple[str | bytes, str | bytes]


def _bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("latin-1")


def request(
    headers: Sequence[Header] = (),
    *,
    path: str = CHAT,
    query: bytes = b"",
    websocket: bool = False,
) -> RequestContext:
    scope: dict[str, Any] = {
        "type": "websocket" if websocket else "http",
        "method": "GET" if websocket else "POST",
        "path": path,
        "headers": [(_bytes(name), _bytes(value)) for name, value in headers],
        "query_string": query,
    }
    return RequestContext(scope)


def extractor(**settings: Any) -> HeaderCredentials:
    return HeaderCredentials("headers", HeaderCredentialsConfig(**settings))


def extract(
    headers: Sequence[Header] = (), *, settings: dict[str, Any] | None = None, **where: Any
) -> Credentials | None:
    return extractor(**(settings or {})).extract_credentials(request(headers, **where))


def rejected(
    headers: Sequence[Header] = (), *, settings: dict[str, Any] | None = None, **where: Any
) -> MalformedCredentials:
    with pytest.raises(MalformedCredentials) as caught:
        extract(headers, settings=settings, **where)
    return caught.value


def found(credentials: Credentials | None) -> tuple[str, str, str]:
    assert credentials is not None
    return credentials.kind, credentials.reveal(), credentials.source


# -- each source on its own ---------------------------------------------------

SOURCES = [
    pytest.param([("authorization", f"Bearer {SECRET}")], {}, ("api_key", SECRET, "authorization"), id="bearer"),
    pytest.param([("authorization", f"bearer {SECRET}")], {}, ("api_key", SECRET, "authorization"), id="bearer-lower"),
    pytest.param([("Authorization", f"BEARER {SECRET}")], {}, ("api_key", SECRET, "authorization"), id="bearer-upper"),
    pytest.param([("x-litellm-api-key", SECRET)], {}, ("api_key", SECRET, "x-litellm-api-key"), id="override-raw"),
    pytest.param(
        [("x-litellm-api-key", f"Bearer {SECRET}")], {}, ("api_key", SECRET, "x-litellm-api-key"), id="override-bearer"
    ),
    pytest.param([("api-key", SECRET)], {}, ("api_key", SECRET, "api-key"), id="azure-api-key"),
    pytest.param([("x-api-key", SECRET)], {}, ("api_key", SECRET, "x-api-key"), id="anthropic-x-api-key"),
    pytest.param([("x-goog-api-key", SECRET)], {}, ("api_key", SECRET, "x-goog-api-key"), id="google-x-goog-api-key"),
    pytest.param(
        [("Ocp-Apim-Subscription-Key", SECRET)],
        {},
        ("api_key", SECRET, "ocp-apim-subscription-key"),
        id="azure-apim-mixed-case-name",
    ),
    pytest.param(
        [("authorization", "Basic dXNlcjpzZWNyZXQ=")],
        {"path": "/langfuse/api/public/ingestion"},
        ("basic", "dXNlcjpzZWNyZXQ=", "authorization"),
        id="basic-on-basic-route-not-decoded",
    ),
    pytest.param(
        [], {"path": GEMINI, "query": f"key={SECRET}".encode()}, ("api_key", SECRET, "query:key"), id="gemini"
    ),
    pytest.param(
        [],
        {"path": GEMINI_STREAM, "query": f"alt=sse&key={SECRET}".encode()},
        ("api_key", SECRET, "query:key"),
        id="gemini-stream",
    ),
    pytest.param(
        [],
        {"path": "/custom/search", "query": f"key={SECRET}".encode()},
        ("api_key", SECRET, "query:key"),
        id="configured-query-route",
    ),
    pytest.param(
        [("sec-websocket-protocol", f"realtime, openai-insecure-api-key.{SECRET}, openai-beta.realtime-v1")],
        {"websocket": True, "path": "/v1/realtime"},
        ("api_key", SECRET, "sec-websocket-protocol"),
        id="websocket-subprotocol",
    ),
    pytest.param(
        [("authorization", f"Bearer {SECRET}")],
        {"websocket": True, "path": "/v1/realtime"},
        ("api_key", SECRET, "authorization"),
        id="websocket-authorization",
    ),
    pytest.param(
        [("api-key", SECRET)],
        {"websocket": True, "path": "/v1/realtime"},
        ("api_key", SECRET, "api-key"),
        id="websocket-azure-api-key",
    ),
]


@pytest.mark.parametrize(("headers", "where", "expected"), SOURCES)
def test_each_source_alone_gives_its_credential(
    headers: list[Header], where: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    settings = {"basic_routes": ["/langfuse/*"], "query_key_routes": ["/custom/search"]}
    assert found(extract(headers, settings=settings, **where)) == expected


def test_custom_override_header_name_is_matched_case_insensitively() -> None:
    settings = {"override_header": "X-Proxy-Key"}
    assert extractor(**settings).config.override_header == "x-proxy-key"
    assert found(extract([("X-PROXY-KEY", SECRET)], settings=settings)) == ("api_key", SECRET, "x-proxy-key")


def test_disabled_override_header_is_not_a_source() -> None:
    assert extract([("x-litellm-api-key", SECRET)], settings={"override_header": None}) is None


def test_longest_allowed_credential_is_accepted() -> None:
    token = "a" * 4096
    assert found(extract([("authorization", f"Bearer {token}")]))[1] == token


def test_padding_is_part_of_the_token() -> None:
    assert found(extract([("x-api-key", "abc+/==")]))[1] == "abc+/=="


def test_harmless_query_string_does_not_disturb_extraction() -> None:
    creds = extract([("authorization", f"Bearer {SECRET}")], query=b"limit=10&keyword=x&order=desc")
    assert found(creds) == ("api_key", SECRET, "authorization")


# -- abstaining -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "where"),
    [
        pytest.param([], {}, id="no-headers"),
        pytest.param([("accept", "application/json"), ("user-agent", "sdk/1.0")], {}, id="unrelated-headers"),
        pytest.param([("cookie", f"session={SECRET}")], {}, id="cookie-is-not-a-source"),
        pytest.param([], {"query": b"limit=10"}, id="unrelated-query"),
        pytest.param(
            [("sec-websocket-protocol", "realtime, openai-beta.realtime-v1")],
            {"websocket": True},
            id="websocket-without-key-protocol",
        ),
        pytest.param(
            [("sec-websocket-protocol", f"openai-insecure-api-key.{SECRET}")], {}, id="subprotocol-ignored-on-http"
        ),
        pytest.param([("authorization", "Basic dXNlcjpzZWNyZXQ=")], {}, id="basic-off-basic-routes-is-not-ours"),
    ],
)
def test_no_credential_abstains(headers: list[Header], where: dict[str, Any]) -> None:
    assert extract(headers, **where) is None


# -- precedence and ambiguity ---------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "where", "source"),
    [
        pytest.param(
            [("x-api-key", SECRET), ("authorization", f"Bearer {SECRET}")],
            {},
            "authorization",
            id="authorization-first",
        ),
        pytest.param([("x-goog-api-key", SECRET), ("api-key", SECRET)], {}, "api-key", id="azure-before-google"),
        pytest.param(
            [("ocp-apim-subscription-key", SECRET), ("x-api-key", SECRET)], {}, "x-api-key", id="anthropic-before-apim"
        ),
        pytest.param(
            [("x-goog-api-key", SECRET)],
            {"path": GEMINI, "query": f"key={SECRET}".encode()},
            "x-goog-api-key",
            id="header-before-query",
        ),
        pytest.param(
            [("sec-websocket-protocol", f"openai-insecure-api-key.{SECRET}"), ("authorization", f"Bearer {SECRET}")],
            {"websocket": True},
            "authorization",
            id="header-before-subprotocol",
        ),
    ],
)
def test_same_value_in_several_sources_is_one_credential_from_the_first(
    headers: list[Header], where: dict[str, Any], source: str
) -> None:
    assert found(extract(headers, **where)) == ("api_key", SECRET, source)


@pytest.mark.parametrize(
    ("headers", "where"),
    [
        pytest.param([("authorization", f"Bearer {SECRET}"), ("x-api-key", OTHER)], {}, id="H2-bearer-and-x-api-key"),
        pytest.param([("api-key", SECRET), ("x-api-key", OTHER)], {}, id="azure-and-anthropic"),
        pytest.param([("x-goog-api-key", SECRET), ("ocp-apim-subscription-key", OTHER)], {}, id="google-and-apim"),
        pytest.param(
            [("x-goog-api-key", SECRET)], {"path": GEMINI, "query": f"key={OTHER}".encode()}, id="header-and-query"
        ),
        pytest.param(
            [("authorization", f"Bearer {SECRET}"), ("sec-websocket-protocol", f"openai-insecure-api-key.{OTHER}")],
            {"websocket": True},
            id="header-and-subprotocol",
        ),
        pytest.param(
            [("authorization", "Basic dXNlcjpzZWNyZXQ="), ("x-api-key", SECRET)], {}, id="foreign-basic-plus-key"
        ),
        pytest.param(
            [("authorization", f"Basic {SECRET}"), ("x-api-key", SECRET)],
            {"path": "/langfuse/x"},
            id="basic-and-api-key-same-text-are-different-kinds",
        ),
    ],
)
def test_different_credentials_in_two_sources_are_ambiguous(headers: list[Header], where: dict[str, Any]) -> None:
    error = rejected(headers, settings={"basic_routes": ["/langfuse/*"]}, **where)
    assert error.status_code == 400
    assert error.reason_id == "ambiguous_credentials"


def test_override_header_wins_and_other_headers_may_carry_provider_credentials() -> None:
    headers: list[Header] = [
        ("authorization", "Bearer provider-key-1"),
        ("x-api-key", "provider-key-2"),
        ("x-litellm-api-key", SECRET),
    ]
    assert found(extract(headers)) == ("api_key", SECRET, "x-litellm-api-key")


def test_override_header_ignores_malformed_or_repeated_provider_headers() -> None:
    headers: list[Header] = [
        ("authorization", "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/bedrock/aws4_request, Signature=abc"),
        ("x-api-key", "a"),
        ("x-api-key", "b"),
        ("x-litellm-api-key", SECRET),
    ]
    assert found(extract(headers)) == ("api_key", SECRET, "x-litellm-api-key")


def test_override_header_does_not_allow_keys_in_urls() -> None:
    error = rejected([("x-litellm-api-key", SECRET)], query=f"api_key={OTHER}".encode())
    assert error.reason_id == "query_credentials_not_allowed"


def test_override_header_on_gemini_route_leaves_query_key_to_the_upstream() -> None:
    creds = extract([("x-litellm-api-key", SECRET)], path=GEMINI, query=f"key={OTHER}".encode())
    assert found(creds) == ("api_key", SECRET, "x-litellm-api-key")


def test_query_data_routes_leave_the_key_parameter_to_the_endpoint() -> None:
    data_route = {"query_data_routes": ("/key/info",)}
    # LiteLLM's `GET /key/info?key=<key>`: the caller authenticates by header; the query names the key asked about.
    creds = extract(
        [("authorization", f"Bearer {SECRET}")], path="/key/info", query=f"key={OTHER}".encode(), settings=data_route
    )
    assert found(creds) == ("api_key", SECRET, "authorization")
    assert extract([], path="/key/info", query=f"key={OTHER}".encode(), settings=data_route) is None
    # Only on the listed routes: elsewhere the same query is still refused.
    error = rejected(
        [("authorization", f"Bearer {SECRET}")], path="/key/list", query=f"key={OTHER}".encode(), settings=data_route
    )
    assert error.reason_id == "query_credentials_not_allowed"


def test_override_header_itself_is_parsed_strictly() -> None:
    assert rejected([("x-litellm-api-key", f"{SECRET} x")]).reason_id == "malformed_token"
    assert rejected([("x-litellm-api-key", "Bearer ")]).reason_id == "missing_token"


# -- malformed: every case is a 400 that never echoes the secret ------------------------

MALFORMED = [
    pytest.param([("authorization", f"Bearer {SECRET}")] * 2, {}, "duplicate_header", id="H1-authorization-twice-same"),
    pytest.param(
        [("authorization", f"Bearer {SECRET}"), ("authorization", f"Bearer {OTHER}")],
        {},
        "duplicate_header",
        id="H1-authorization-twice-different",
    ),
    pytest.param(
        [("Authorization", f"Bearer {SECRET}"), ("authorization", f"Bearer {SECRET}")],
        {},
        "duplicate_header",
        id="H1-authorization-twice-mixed-case-names",
    ),
    pytest.param([("x-api-key", SECRET), ("X-Api-Key", SECRET)], {}, "duplicate_header", id="x-api-key-twice"),
    pytest.param([("x-litellm-api-key", SECRET)] * 2, {}, "duplicate_header", id="override-twice"),
    pytest.param(
        [("authorization", f"Bearer {SECRET}, Bearer {OTHER}")], {}, "multiple_credentials", id="comma-joined-bearers"
    ),
    pytest.param([("authorization", f"{SECRET}, Bearer {OTHER}")], {}, "multiple_credentials", id="comma-joined-list"),
    pytest.param([("x-api-key", f"{SECRET},{OTHER}")], {}, "multiple_credentials", id="comma-in-x-api-key"),
    pytest.param([("authorization", "Bearer")], {}, "missing_token", id="bearer-without-token"),
    pytest.param([("authorization", "Bearer ")], {}, "missing_token", id="bearer-space-without-token"),
    pytest.param([("authorization", "")], {}, "missing_token", id="empty-authorization"),
    pytest.param([("x-api-key", "")], {}, "missing_token", id="empty-x-api-key"),
    pytest.param([("authorization", f"Bearer\t{SECRET}")], {}, "malformed_authorization", id="H4-tab"),
    pytest.param([("authorization", f"Bearer{SECRET}")], {}, "malformed_authorization", id="H4-no-space"),
    pytest.param(
        [("authorization", b"Bearer\xa0" + SECRET.encode())], {}, "malformed_authorization", id="H4-nbsp-latin1-byte"
    ),
    pytest.param(
        [("authorization", "Bearer\u00a0".encode() + SECRET.encode())],
        {},
        "malformed_authorization",
        id="H4-nbsp-utf8",
    ),
    pytest.param([("authorization", f"Bearer  {SECRET}")], {}, "malformed_token", id="two-spaces"),
    pytest.param([("authorization", f"Bearer {SECRET} ")], {}, "malformed_token", id="trailing-space"),
    pytest.param(
        [("authorization", f"Bearer {SECRET[:8]}\u200b{SECRET[8:]}".encode())],
        {},
        "non_ascii_token",
        id="H5-zero-width-space",
    ),
    pytest.param([("authorization", f"Bearer {SECRET}ÄÖÜ".encode())], {}, "non_ascii_token", id="H11-non-ascii-utf8"),
    pytest.param([("x-api-key", f"{SECRET}é".encode("latin-1"))], {}, "non_ascii_token", id="non-ascii-latin1-byte"),
    pytest.param([("authorization", f"Bearer {SECRET}\x01")], {}, "malformed_token", id="control-character"),
    pytest.param([("x-api-key", f"{SECRET}\x7f")], {}, "malformed_token", id="delete-character"),
    pytest.param([("authorization", f'Bearer "{SECRET}"')], {}, "malformed_token", id="double-quotes"),
    pytest.param([("x-api-key", f"'{SECRET}'")], {}, "malformed_token", id="single-quotes"),
    pytest.param([("x-api-key", f"{SECRET[:6]}={SECRET[6:]}")], {}, "malformed_token", id="padding-in-the-middle"),
    pytest.param([("authorization", f"Token {SECRET}")], {}, "unsupported_scheme", id="unknown-scheme-token"),
    pytest.param([("authorization", f"Digest {SECRET}")], {}, "unsupported_scheme", id="unknown-scheme-digest"),
    pytest.param([("authorization", SECRET)], {}, "missing_scheme", id="bare-key-without-scheme"),
    pytest.param([("authorization", "Bearer " + "a" * 4097)], {}, "credential_too_long", id="over-max-length"),
    pytest.param([("x-api-key", "a" * 4097)], {}, "credential_too_long", id="over-max-length-x-api-key"),
    pytest.param(
        [("authorization", "Bearer " + SECRET + "a" * 65536)], {}, "credential_too_long", id="H7-64kib-authorization"
    ),
    pytest.param([], {"query": f"api_key={SECRET}".encode()}, "query_credentials_not_allowed", id="H6-api_key-query"),
    pytest.param(
        [], {"query": f"access_token={SECRET}".encode()}, "query_credentials_not_allowed", id="access_token-query"
    ),
    pytest.param([], {"query": f"key={SECRET}".encode()}, "query_credentials_not_allowed", id="key-query-off-gemini"),
    pytest.param(
        [], {"query": f"%6Bey={SECRET}".encode()}, "query_credentials_not_allowed", id="percent-encoded-query-name"
    ),
    pytest.param([], {"query": f"KEY={SECRET}".encode()}, "query_credentials_not_allowed", id="upper-case-query-name"),
    pytest.param(
        [("authorization", f"Bearer {SECRET}")],
        {"query": f"api_key={SECRET}".encode()},
        "query_credentials_not_allowed",
        id="query-key-next-to-a-valid-header",
    ),
    pytest.param(
        [],
        {"path": GEMINI, "query": f"api_key={SECRET}".encode()},
        "query_credentials_not_allowed",
        id="api_key-query-on-gemini",
    ),
    pytest.param(
        [],
        {"path": GEMINI, "query": f"key={SECRET}&key={OTHER}".encode()},
        "duplicate_query_key",
        id="query-key-twice",
    ),
    pytest.param(
        [], {"path": GEMINI, "query": f"key={SECRET}%C3%A4".encode()}, "malformed_token", id="query-key-non-ascii"
    ),
    pytest.param([], {"path": GEMINI, "query": f"key={SECRET}+x".encode()}, "malformed_token", id="query-key-space"),
    pytest.param([], {"path": GEMINI, "query": b"key="}, "missing_token", id="query-key-empty"),
    pytest.param(
        [
            ("sec-websocket-protocol", f"openai-insecure-api-key.{SECRET}"),
            ("sec-websocket-protocol", f"openai-insecure-api-key.{OTHER}"),
        ],
        {"websocket": True},
        "multiple_credentials",
        id="two-subprotocol-keys",
    ),
    pytest.param(
        [("sec-websocket-protocol", "realtime, openai-insecure-api-key.")],
        {"websocket": True},
        "missing_token",
        id="empty-subprotocol-key",
    ),
]


@pytest.mark.parametrize(("headers", "where", "reason_id"), MALFORMED)
def test_malformed_credential_is_a_400_without_the_secret(
    headers: list[Header], where: dict[str, Any], reason_id: str
) -> None:
    error = rejected(headers, **where)
    assert (error.status_code, error.reason_id, error.code) == (400, reason_id, "invalid_request")
    shown = " ".join([str(error), repr(error), error.message, error.reason_id, str(error.body()), str(error.args)])
    for secret in (SECRET, OTHER, SECRET[3:15], OTHER[3:15]):
        assert secret not in shown


def test_query_key_on_gemini_routes_can_be_switched_off() -> None:
    error = rejected(path=GEMINI, query=f"key={SECRET}".encode(), settings={"query_key_for_gemini_routes": False})
    assert error.reason_id == "query_credentials_not_allowed"


def test_max_length_is_configurable() -> None:
    settings = {"max_length": 16}
    assert found(extract([("x-api-key", "a" * 16)], settings=settings))[1] == "a" * 16
    assert rejected([("x-api-key", "a" * 17)], settings=settings).reason_id == "credential_too_long"
    assert rejected([("authorization", "Bearer " + "a" * 17)], settings=settings).reason_id == "credential_too_long"


def test_secrets_are_not_folded_or_normalised() -> None:
    upper = found(extract([("x-api-key", "SK-ABC")]))[1]
    assert upper == "SK-ABC"
    # A full-width letter would normalise (NFKC) to ASCII "a"; it must be refused instead.
    assert rejected([("x-api-key", "sk-\uff41".encode())]).reason_id == "non_ascii_token"


def test_credentials_repr_and_str_hide_the_secret() -> None:
    creds = extract([("authorization", f"Bearer {SECRET}")])
    assert creds is not None
    assert SECRET not in repr(creds)
    assert SECRET not in str(creds)
    assert SECRET not in repr(request([("authorization", f"Bearer {SECRET}")]))


# -- configuration --------------------------------------------------------------------


def test_config_defaults() -> None:
    config = HeaderCredentialsConfig()
    assert config.override_header == "x-litellm-api-key"
    assert (config.basic_routes, config.query_key_routes) == ((), ())
    assert (config.query_key_for_gemini_routes, config.max_length) == (True, 4096)
    assert all(field.description for field in HeaderCredentialsConfig.model_fields.values())


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"override_header": "x bad"}, id="override-not-a-header-name"),
        pytest.param({"override_header": "Authorization"}, id="override-is-a-builtin-source"),
        pytest.param({"override_header": "x-api-key"}, id="override-is-x-api-key"),
        pytest.param({"basic_routes": ["langfuse/*"]}, id="route-without-slash"),
        pytest.param({"query_key_routes": ["/a*"]}, id="star-not-after-slash"),
        pytest.param({"max_length": 0}, id="zero-length"),
        pytest.param({"header": "x-key"}, id="unknown-setting"),
    ],
)
def test_bad_config_is_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HeaderCredentialsConfig(**settings)


def test_config_is_frozen() -> None:
    config = HeaderCredentialsConfig()
    with pytest.raises(ValidationError):
        config.max_length = 1  # type: ignore[misc]


def test_entry_point_names_this_class() -> None:
    assert entry_point_resolver()("headers") is HeaderCredentials


class TestHeaderCredentialsConformance(PluginConformance):
    """The checks every plugin passes: strict config, abstains without credentials, survives garbage."""

    plugin_class = HeaderCredentials
    config: ClassVar[Mapping[str, Any]] = {
        "basic_routes": ["/langfuse/*"],
        "query_key_routes": ["/custom/search"],
        "max_length": 2048,
    }


# -- a remembered Authorization value -------------------------------------------------------------


def _outcome(plugin: HeaderCredentials, headers: Sequence[Header], **where: Any) -> object:
    try:
        found = plugin.extract_credentials(request(headers, **where))
    except MalformedCredentials as error:
        return ("400", error.reason_id)
    return None if found is None else (found.kind, found.reveal(), found.source)


@pytest.mark.parametrize(
    ("headers", "where"),
    [
        ([("authorization", f"Bearer {SECRET}")], {}),
        ([("authorization", f"Bearer {SECRET}"), ("x-api-key", OTHER)], {}),
        ([("authorization", f"Bearer {SECRET}"), ("x-api-key", SECRET)], {}),
        ([("authorization", f"Bearer {SECRET}"), ("authorization", f"Bearer {SECRET}")], {}),
        ([("authorization", f"Bearer {SECRET}"), ("x-litellm-api-key", OTHER)], {}),
        ([("authorization", f"Bearer {SECRET}")], {"query": f"key={OTHER}".encode()}),
        ([("authorization", f"Bearer {SECRET}")], {"query": f"key={OTHER}".encode(), "path": GEMINI}),
        ([("authorization", f"Bearer {SECRET}")], {"query": b"stream=true"}),
    ],
    ids=["alone", "ambiguous", "agreeing", "repeated", "override", "key_in_url", "gemini_query", "other_query"],
)
def test_a_remembered_bearer_changes_no_decision(headers: Sequence[Header], where: dict[str, Any]) -> None:
    fresh = _outcome(extractor(), headers, **where)
    plugin = extractor()
    # First the value alone, so that it is remembered; then the shape under test, twice.
    assert _outcome(plugin, [("authorization", f"Bearer {SECRET}")]) == ("api_key", SECRET, "authorization")

    assert _outcome(plugin, headers, **where) == fresh
    assert _outcome(plugin, headers, **where) == fresh


def test_remembered_bearers_are_bounded_and_only_well_formed() -> None:
    plugin = extractor()
    for index in range(BEARERS_REMEMBERED + 10):
        plugin.extract_credentials(request([("authorization", f"Bearer sk-{index:06d}")]))
    with pytest.raises(MalformedCredentials):
        plugin.extract_credentials(request([("authorization", "Bearer sk-bad\u00a0key")]))

    assert len(plugin._bearers) == BEARERS_REMEMBERED
    assert b"Bearer sk-000000" not in plugin._bearers  # the oldest went first
    assert all(b"\xa0" not in value for value in plugin._bearers)
