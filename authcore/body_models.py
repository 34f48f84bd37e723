"""Every model a request body names besides `model`: the fallbacks an app may call when the first fails.

An auth layer that checks or prices only `model` can be walked around with
LiteLLM's client-side fallbacks, so plugins that restrict models (access checks)
or bound costs (budgets) read these too.
"""

from __future__ import annotations

from typing import Any

FALLBACK_FIELDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
"""Body fields that make the app call other models when the first one fails."""
ROUTER_OVERRIDE_FIELD = "router_settings_override"
ROUTER_MODEL_FIELDS = (*FALLBACK_FIELDS, "model_group_alias")
"""Fields of `router_settings_override` that can name models (aliases redirect to them)."""
MAX_DEPTH = 8
_FIELDS = frozenset((*FALLBACK_FIELDS, ROUTER_OVERRIDE_FIELD))


class UnreadableModels(ValueError):
    """The body names models in a shape that cannot be checked."""


def body_models(body: Any) -> list[str]:
    """Models a JSON body names besides `model`: client-side fallbacks, also inside `router_settings_override`.

    Raise `UnreadableModels` when `model` or one of those fields has a shape
    that cannot be checked, so it cannot slip a model past the checks.
    """
    # Parsed JSON: objects are dicts (and `isinstance` against `Mapping` costs more than the rest of this call).
    if not isinstance(body, dict):
        return []
    if "model" in body and body["model"] is not None and not isinstance(body["model"], str):
        raise UnreadableModels("model must be a string")
    if _FIELDS.isdisjoint(body):
        return []  # the usual body: nothing more to read (the request path calls this per request)
    found: list[str] = []
    for field in FALLBACK_FIELDS:
        _collect(body.get(field), found, field, 0)
    override = body.get(ROUTER_OVERRIDE_FIELD)
    if override is not None:
        if not isinstance(override, dict):
            raise UnreadableModels(f"{ROUTER_OVERRIDE_FIELD} must be an object")
        for field in ROUTER_MODEL_FIELDS:
            _collect(override.get(field), found, f"{ROUTER_OVERRIDE_FIELD}.{field}", 0)
    return found


def _collect(value: Any, found: list[str], field: str, depth: int) -> None:
    if value is None:
        return
    if depth > MAX_DEPTH:
        raise UnreadableModels(f"{field} is nested too deeply")
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found, field, depth + 1)
    elif isinstance(value, dict):
        if "model" in value:
            # A fallback given as a full request: only its model is called.
            model = value["model"]
            if not isinstance(model, str):
                raise UnreadableModels(f"{field}: a fallback's model must be a string")
            found.append(model)
            return
        # Router style {"gpt-4o": ["gpt-4o-mini"]} or an alias map: keys and values are models.
        for name, item in value.items():
            found.append(str(name))
            _collect(item, found, field, depth + 1)
    else:
        raise UnreadableModels(f"{field} must name models as strings")
