"""Temporary budget increases on keys: stored, validated, shown, and handed to the budgets plugin in `limits`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from .conftest import INSTANCE, Gateway


def in_days(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


async def limits(gw: Gateway, token: str) -> dict[str, Any]:
    """`Identity.limits` as other plugins receive it for this key."""
    snapshot = await gw.plugin.store.lookup(token)
    assert snapshot is not None
    return dict(snapshot.identity(INSTANCE).limits)


async def test_generate_stores_and_returns_the_increase(gw: Gateway) -> None:
    expiry = in_days(7).replace(microsecond=0)
    created = await gw.generate(max_budget=10, temp_budget_increase=5, temp_budget_expiry=expiry.isoformat())
    assert created["temp_budget_increase"] == 5
    assert datetime.fromisoformat(created["temp_budget_expiry"]) == expiry
    info = (await gw.admin("/key/info", {"token": created["token"]}, method="GET")).json()["info"]
    assert info["temp_budget_increase"] == 5
    assert datetime.fromisoformat(info["temp_budget_expiry"]) == expiry
    # The key still works: the increase is for the budgets plugin, nothing here enforces it.
    assert (await gw.chat(created["key"])).status_code == 200


async def test_limits_carry_the_increase_and_its_expiry_as_an_iso_string(gw: Gateway) -> None:
    expiry = in_days(1).replace(microsecond=0)
    created = await gw.generate(max_budget=10, temp_budget_increase=2.5, temp_budget_expiry=expiry.isoformat())
    found = await limits(gw, created["token"])
    assert found["max_budget"] == 10
    assert found["temp_budget_increase"] == 2.5
    assert isinstance(found["temp_budget_expiry"], str)
    assert datetime.fromisoformat(found["temp_budget_expiry"]) == expiry
    assert "temp_budget_increase" not in await limits(gw, (await gw.generate())["token"])


@pytest.mark.parametrize(
    "text",
    [
        "{when}Z",
        "{when}+00:00",
        "{when}",  # no offset: UTC
    ],
)
async def test_iso_8601_forms_are_accepted_and_normalised_to_utc(gw: Gateway, text: str) -> None:
    when = in_days(3).replace(microsecond=0, tzinfo=None)
    created = await gw.generate(temp_budget_increase=1, temp_budget_expiry=text.format(when=when.isoformat()))
    assert datetime.fromisoformat(created["temp_budget_expiry"]) == when.replace(tzinfo=UTC)


async def test_an_offset_is_converted_to_utc(gw: Gateway) -> None:
    shifted = in_days(2).replace(microsecond=0).astimezone(timezone(timedelta(hours=5, minutes=30)))
    created = await gw.generate(temp_budget_increase=1, temp_budget_expiry=shifted.isoformat())
    stored = datetime.fromisoformat(created["temp_budget_expiry"])
    assert stored == shifted
    assert stored.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temp_budget_increase": -1, "temp_budget_expiry": "{future}"}, "temp_budget_increase"),
        ({"temp_budget_increase": 5}, "body"),
        ({"temp_budget_expiry": "{future}"}, "body"),
        ({"temp_budget_increase": 5, "temp_budget_expiry": None}, "body"),
        ({"temp_budget_increase": 5, "temp_budget_expiry": "{past}"}, "temp_budget_expiry"),
        ({"temp_budget_increase": 5, "temp_budget_expiry": "next tuesday"}, "temp_budget_expiry"),
        ({"temp_budget_increase": "lots", "temp_budget_expiry": "{future}"}, "temp_budget_increase"),
    ],
)
async def test_bad_increases_are_refused_and_create_nothing(gw: Gateway, fields: dict[str, Any], param: str) -> None:
    values = {
        name: value.format(future=in_days(1).isoformat(), past=in_days(-1).isoformat())
        if isinstance(value, str)
        else value
        for name, value in fields.items()
    }
    refused = await gw.admin("/key/generate", {"key_alias": "refused", **values})
    assert refused.status_code == 422, refused.text
    assert param in refused.json()["error"]["message"]
    listed = await gw.admin("/key/list", {"key_alias": "refused"}, method="GET")
    assert listed.json()["total_count"] == 0


async def test_update_sets_changes_and_clears_the_increase(gw: Gateway) -> None:
    created = await gw.generate(max_budget=10)
    token = created["token"]
    expiry = in_days(5).replace(microsecond=0)
    updated = await gw.admin(
        "/key/update", {"key": token, "temp_budget_increase": 20, "temp_budget_expiry": expiry.isoformat()}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["temp_budget_increase"] == 20
    assert (await limits(gw, token))["temp_budget_increase"] == 20
    # The cached snapshot is dropped on update, so a request sees the new limits at once.
    assert (await gw.chat(created["key"])).status_code == 200

    cleared = await gw.admin("/key/update", {"key": token, "temp_budget_increase": None, "temp_budget_expiry": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["temp_budget_increase"] is None
    assert cleared.json()["temp_budget_expiry"] is None
    assert "temp_budget_expiry" not in await limits(gw, token)


async def test_a_refused_update_changes_nothing(gw: Gateway) -> None:
    expiry = in_days(5).replace(microsecond=0)
    created = await gw.generate(temp_budget_increase=3, temp_budget_expiry=expiry.isoformat())
    for body in (
        {"temp_budget_increase": 50},
        {"temp_budget_expiry": in_days(9).isoformat()},
        {"temp_budget_increase": None},
        {"temp_budget_increase": 50, "temp_budget_expiry": in_days(-1).isoformat()},
    ):
        refused = await gw.admin("/key/update", {"key": created["token"], "max_budget": 99, **body})
        assert refused.status_code == 422, body
    info = (await gw.admin("/key/info", {"token": created["token"]}, method="GET")).json()["info"]
    assert info["temp_budget_increase"] == 3
    assert datetime.fromisoformat(info["temp_budget_expiry"]) == expiry
    assert info["max_budget"] is None


async def test_regenerate_keeps_the_increase(gw: Gateway) -> None:
    expiry = in_days(5).replace(microsecond=0)
    created = await gw.generate(temp_budget_increase=4, temp_budget_expiry=expiry.isoformat())
    moved = await gw.admin("/key/regenerate", {"key": created["token"]})
    assert moved.status_code == 200, moved.text
    assert moved.json()["temp_budget_increase"] == 4
    assert (await limits(gw, moved.json()["token"]))["temp_budget_increase"] == 4
