"""Model lists: exact names, `prefix/*`, team narrowing, and every place a body names a model."""

from __future__ import annotations

from typing import Any

import pytest
from authcore_virtual_keys.access import UnreadableModels, body_models, key_allows


@pytest.mark.parametrize(
    ("key_models", "team_models", "model", "allowed"),
    [
        ((), None, "gpt-4o", True),
        (("gpt-4o",), None, "gpt-4o", True),
        (("gpt-4o",), None, "GPT-4o", False),
        (("gpt-4o",), None, "gpt-4o-mini", False),
        (("openai/*",), None, "openai/gpt-4o", True),
        (("openai/*",), None, "openai/", False),
        (("openai/*",), None, "azure/openai/gpt-4o", False),
        (("*",), None, "anything", True),
        (("all-proxy-models",), None, "anything", True),
        (("all-team-models",), None, "gpt-4o", False),
        (("all-team-models",), ("gpt-4o",), "gpt-4o", True),
        (("all-team-models",), ("gpt-4o",), "o1", False),
        (("gpt-4o", "o1"), ("gpt-4o",), "o1", False),
        (("*",), ("gpt-4o",), "o1", False),
        ((), ("gpt-4o",), "gpt-4o", True),
        ((), ("gpt-4o",), "o1", False),
        (("o1",), (), "o1", True),
    ],
)
def test_key_allows(
    key_models: tuple[str, ...], team_models: tuple[str, ...] | None, model: str, allowed: bool
) -> None:
    assert key_allows(key_models, team_models, model) is allowed


@pytest.mark.parametrize(
    ("body", "models"),
    [
        ({"model": "a"}, []),
        ({"model": "a", "fallbacks": ["b", "c"]}, ["b", "c"]),
        ({"fallbacks": [{"model": "b", "messages": []}]}, ["b"]),
        ({"fallbacks": [{"a": ["b", "c"]}]}, ["a", "b", "c"]),
        ({"context_window_fallbacks": [{"a": "b"}]}, ["a", "b"]),
        ({"content_policy_fallbacks": ["b"]}, ["b"]),
        ({"router_settings_override": {"fallbacks": [{"a": ["b"]}]}}, ["a", "b"]),
        ({"router_settings_override": {"model_group_alias": {"a": "b"}}}, ["a", "b"]),
        ({"router_settings_override": {"num_retries": 3}}, []),
        ("not a dict", []),
        (None, []),
    ],
)
def test_body_models(body: Any, models: list[str]) -> None:
    assert body_models(body) == models


@pytest.mark.parametrize(
    "body",
    [
        {"model": ["a"]},
        {"model": 3},
        {"fallbacks": [1]},
        {"fallbacks": [{"model": None}]},
        {"router_settings_override": "fallbacks"},
        {"fallbacks": [[[[[[[[[[["deep"]]]]]]]]]]]},
    ],
)
def test_unreadable_bodies_are_refused(body: Any) -> None:
    with pytest.raises(UnreadableModels):
        body_models(body)
