"""Model lists: exact names, `prefix/*`, team narrowing."""

from __future__ import annotations

import pytest
from authcore_virtual_keys.access import key_allows


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
