"""Every place a request body names a model besides `model`, and the shapes that cannot be read."""

from __future__ import annotations

from typing import Any

import pytest

from authcore.body_models import UnreadableModels, body_models


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
