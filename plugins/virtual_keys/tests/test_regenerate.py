"""POST /key/regenerate: a new key with the same settings; the old one ends now or after its grace period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from authcore_virtual_keys.tables import grace_keys
from sqlalchemy import update

from .conftest import Gateway


async def expire_grace(gw: Gateway) -> None:
    """Move every grace period into the past, as if its time had come."""
    async with gw.resources.engine().begin() as connection:
        await connection.execute(update(grace_keys).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    gw.plugin.cache.clear()


async def test_regenerate_returns_a_new_key_with_the_same_settings(gw: Gateway) -> None:
    await gw.team("t1", models=["gpt-4o", "gpt-4o-mini"])
    old = await gw.generate(team_id="t1", models=["gpt-4o"], key_alias="ci", max_budget=5, metadata={"a": 1})

    response = await gw.admin("/key/regenerate", {"key": old["key"]})

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    new = response.json()
    assert new["key"].startswith("sk-")
    assert new["key"] != old["key"]
    assert new["token"] != old["token"]
    assert new["key_id"] == old["key_id"]
    assert new["key_name"] == f"sk-...{new['key'][-4:]}"
    for field in ("team_id", "models", "key_alias", "max_budget", "metadata", "created_at"):
        assert new[field] == old[field], field
    assert (await gw.chat(new["key"])).status_code == 200
    assert (await gw.chat(new["key"], model="gpt-4o-mini")).status_code == 403


async def test_without_grace_the_old_key_stops_at_once(gw: Gateway) -> None:
    old = await gw.generate()
    assert (await gw.chat(old["key"])).status_code == 200  # now cached

    response = await gw.admin("/key/regenerate", {"key": old["token"]})

    assert response.status_code == 200
    assert (await gw.chat(old["key"])).status_code == 401
    assert (await gw.chat(response.json()["key"])).status_code == 200


async def test_with_grace_both_keys_resolve_to_the_same_identity_until_it_ends(gw: Gateway) -> None:
    old = await gw.generate(user_id="u1")
    new = (await gw.admin("/key/regenerate", {"key": old["key"], "grace_period": "24h"})).json()

    via_old = await gw.chat(old["key"])
    via_new = await gw.chat(new["key"])

    assert via_old.status_code == 200
    assert via_new.status_code == 200
    assert via_old.json()["identity"] == via_new.json()["identity"]
    # The key id is the key's, not its current value's: what budgets counted stays counted.
    assert via_old.json()["identity"]["key_id"] == old["key_id"] == new["key_id"] == old["token"][:12]

    await expire_grace(gw)

    assert (await gw.chat(old["key"])).status_code == 401
    assert (await gw.chat(new["key"])).status_code == 200


async def test_blocking_the_new_key_blocks_the_old_one_in_its_grace_period(gw: Gateway) -> None:
    old = await gw.generate()
    new = (await gw.admin("/key/regenerate", {"key": old["key"], "grace_period": "1h"})).json()
    assert (await gw.chat(old["key"])).status_code == 200  # cached under the old hash

    assert (await gw.admin("/key/block", {"key": new["token"]})).status_code == 200

    assert (await gw.chat(old["key"])).status_code == 403
    assert (await gw.chat(new["key"])).status_code == 403


async def test_deleting_the_key_ends_its_grace_period_too(gw: Gateway) -> None:
    old = await gw.generate()
    new = (await gw.admin("/key/regenerate", {"key": old["key"], "grace_period": "1h"})).json()
    assert (await gw.chat(old["key"])).status_code == 200

    assert (await gw.admin("/key/delete", {"keys": [new["token"]]})).status_code == 200

    assert (await gw.chat(old["key"])).status_code == 401


async def test_regenerating_twice_keeps_the_first_grace_period_pointing_at_the_newest_key(gw: Gateway) -> None:
    first = await gw.generate()
    second = (await gw.admin("/key/regenerate", {"key": first["key"], "grace_period": "1h"})).json()
    third = (await gw.admin("/key/regenerate", {"key": second["key"], "grace_period": "1h"})).json()

    for key in (first["key"], second["key"], third["key"]):
        response = await gw.chat(key)
        assert response.status_code == 200
        assert response.json()["identity"]["key_id"] == first["key_id"] == third["key_id"]

    # Both earlier values follow the newest one: it gone, they are gone.
    assert (await gw.admin("/key/delete", {"keys": [third["token"]]})).status_code == 200
    for key in (first["key"], second["key"], third["key"]):
        assert (await gw.chat(key)).status_code == 401


async def test_the_old_key_cannot_be_used_to_manage_the_new_one(gw: Gateway) -> None:
    old = await gw.generate()
    await gw.admin("/key/regenerate", {"key": old["key"], "grace_period": "1h"})

    # Admin references name current keys only; a predecessor is not one.
    assert (await gw.admin("/key/info", {"key": old["key"]})).status_code == 404
    assert (await gw.admin("/key/regenerate", {"key": old["key"]})).status_code == 404


async def test_caller_chosen_new_key(gw: Gateway) -> None:
    old = await gw.generate()
    chosen = "sk-rotated-0123456789abcdefXYZ"
    assert (await gw.chat(chosen)).status_code == 401  # remembered as unknown

    response = await gw.admin("/key/regenerate", {"key": old["key"], "new_key": chosen})

    assert response.status_code == 200
    assert response.json()["key"] == chosen
    assert (await gw.chat(chosen)).status_code == 200


async def test_bad_regenerate_input_changes_nothing(gw: Gateway) -> None:
    old = await gw.generate()
    other = await gw.generate()
    bad: list[tuple[dict[str, object], int]] = [
        ({"key": old["key"], "grace_period": "a day"}, 422),
        ({"key": old["key"], "grace_period": "0h"}, 422),
        ({"key": old["key"], "new_key": "not-a-key-0123456789abcdef"}, 422),
        ({"key": old["key"], "new_key": other["key"]}, 400),
        ({"key": old["key"], "new_key": old["key"]}, 400),
        ({"key": "sk-unknown-0123456789abcdefXYZ"}, 404),
        ({"key": "neither"}, 400),
        ({"key": old["key"], "unknown": 1}, 422),
    ]

    for body, status in bad:
        response = await gw.admin("/key/regenerate", body)
        assert response.status_code == status, body
        assert old["key"] not in response.text

    assert (await gw.chat(old["key"])).status_code == 200
    assert (await gw.chat(other["key"])).status_code == 200
    info = await gw.admin("/key/info", {"token": old["token"]}, method="GET")
    assert info.json()["info"]["key_name"] == old["key_name"]


async def test_regenerate_needs_the_admin_role(gw: Gateway) -> None:
    old = await gw.generate()

    response = await gw.admin("/key/regenerate", {"key": old["key"]}, key=old["key"])

    assert response.status_code == 403
    assert (await gw.chat(old["key"])).status_code == 200


async def test_a_cached_predecessor_expires_with_its_grace_period(gw: Gateway) -> None:
    # Cached snapshots of the old hash carry the grace end as their expiry, which is checked on every request.
    old = await gw.generate(duration="30d")
    await gw.admin("/key/regenerate", {"key": old["key"], "grace_period": "1h"})

    snapshot = await gw.plugin.store.lookup(gw.plugin.hasher.token(old["key"]))

    assert snapshot is not None
    assert snapshot.expires_at is not None
    assert timedelta(minutes=59) < snapshot.expires_at - datetime.now(UTC) <= timedelta(hours=1)
