"""A generated key and the master key never show up in the database, logs, traces or responses."""

from __future__ import annotations

import logging

import pytest
from authcore_virtual_keys.tables import keys, teams, users
from sqlalchemy import select

from .conftest import HASH_SECRET, MASTER_KEY, Gateway


async def test_secrets_never_leave_the_request(gw: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await gw.team("t1", models=["gpt-4o-mini", "gpt-4o"])
    await gw.user("u1")
    created = await gw.generate(team_id="t1", user_id="u1", models=["gpt-4o-mini"], key_alias="canary")
    canary = created["key"]
    seen: list[str] = []

    async def record(response_text: str, headers: dict[str, str]) -> None:
        seen.append(response_text)
        seen.extend(f"{name}: {value}" for name, value in headers.items())

    responses = [
        await gw.chat(canary, model="gpt-4o-mini"),
        await gw.chat(canary, model="gpt-4o"),
        await gw.chat(canary, model="gpt-4o-mini", fallbacks=["gpt-4o"]),
        await gw.chat(canary, model="gpt-4o-mini", fallbacks=[7]),
        await gw.chat(canary + "x"),
        await gw.chat(canary[:-1]),
        await gw.admin("/key/list", method="GET", key=canary),
        await gw.admin("/key/info", {"key": canary}),
        await gw.admin("/key/update", {"key": canary, "metadata": {"n": 1}}),
        await gw.admin("/key/block", {"key": canary}),
        await gw.chat(canary, model="gpt-4o-mini"),
        await gw.admin("/key/unblock", {"key": canary}),
        await gw.admin("/key/generate", {"key": canary}),
        await gw.chat(MASTER_KEY, model="gpt-4o"),
        await gw.chat(MASTER_KEY + "x"),
        await gw.admin("/key/list", method="GET"),
        await gw.admin("/key/delete", {"keys": [canary, "sk-" + "N" * 43]}),
        await gw.admin("/key/delete", {"keys": [canary]}),
        await gw.chat(canary),
    ]
    for response in responses:
        await record(response.text, dict(response.headers))
    statuses = [response.status_code for response in responses]
    assert statuses == [200, 403, 403, 400, 401, 401, 403, 200, 200, 200, 403, 200, 400, 200, 401, 200, 404, 200, 401]

    async with gw.resources.engine().connect() as connection:
        rows = [
            dict(row) for table in (keys, teams, users) for row in (await connection.execute(select(table))).mappings()
        ]
    stored = repr(rows)
    # Traces of allowed requests reach the app; denied ones are in the decision log.
    traces = [
        response.json()["trace"] for response in responses if response.status_code == 200 and "trace" in response.json()
    ]
    assert traces
    surfaces = {
        "database": stored,
        "logs": caplog.text,
        "responses": "\n".join(seen),
        "traces": repr(traces),
        "reprs": repr(gw.plugin) + repr(gw.plugin.config) + repr(gw.plugin.hasher),
    }
    assert "decision status=401" in caplog.text
    for where, text in surfaces.items():
        for secret in (canary, MASTER_KEY, HASH_SECRET):
            assert secret not in text, f"a secret leaked into the {where}"
    # The last characters are shown as `sk-...wxyz`: nothing longer of the key may appear.
    for where, text in surfaces.items():
        assert canary[3:15] not in text, f"part of the key leaked into the {where}"
