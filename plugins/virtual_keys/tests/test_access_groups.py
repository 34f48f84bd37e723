"""Model access groups: a group name in a key's, team's, organization's or project's list stands for its models."""

from __future__ import annotations

from typing import Any

import pytest
from authcore_virtual_keys.access import expand
from authcore_virtual_keys.config import VirtualKeysConfig
from pydantic import ValidationError

from .conftest import HASH_SECRET, MASTER_KEY, GatewayFactory

GROUPS = {"beta-group": ["gpt-4o-mini", "openai/*"], "prod-group": ["gpt-4o"]}


def config(groups: Any) -> VirtualKeysConfig:
    return VirtualKeysConfig.model_validate(
        {"master_key": MASTER_KEY, "hash_secret": HASH_SECRET, "model_access_groups": groups}
    )


def test_expand_replaces_group_names_and_keeps_other_names() -> None:
    groups = config(GROUPS).access_groups()
    assert expand(("beta-group", "o1"), groups) == ("gpt-4o-mini", "openai/*", "o1")
    assert expand(("beta-group", "gpt-4o-mini"), groups) == ("gpt-4o-mini", "openai/*")
    assert expand(("o1",), groups) == ("o1",)
    assert expand((), groups) == ()


@pytest.mark.parametrize(
    ("groups", "problem"),
    [
        ({"g1": ["a"], "g2": ["g1"]}, "also listed as a model"),
        ({"g1": ["g1"]}, "also listed as a model"),
        ({"openai/beta": ["x"], "g": ["openai/*"]}, "also listed as a model"),
        ({"g": []}, "at least 1 item"),
        ({"g": ["*"]}, "lists '\\*'"),
        ({"g": ["all-team-models"]}, "lists 'all-team-models'"),
        ({"all-proxy-models": ["a"]}, "reserved"),
        ({"team/*": ["a"]}, "reserved or a pattern"),
        ({"g": [""]}, "at least 1 character"),
    ],
)
def test_bad_groups_are_refused_at_start_up(groups: Any, problem: str) -> None:
    # An empty or nested group could turn a restricted list into an unrestricted one.
    with pytest.raises(ValidationError, match=problem):
        config(groups)


async def test_a_key_restricted_to_a_group_may_call_its_members_only(make_gateway: GatewayFactory) -> None:
    async with make_gateway(model_access_groups=GROUPS) as gw:
        key = (await gw.generate(models=["beta-group"]))["key"]
        assert (await gw.chat(key, "gpt-4o-mini")).status_code == 200
        assert (await gw.chat(key, "openai/gpt-4.1")).status_code == 200
        denied = await gw.chat(key, "gpt-4o")
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "model_not_allowed"
        # The group name is not itself a model the key may call.
        assert (await gw.chat(key, "beta-group")).status_code == 403


async def test_the_key_stores_the_group_name_not_its_members(make_gateway: GatewayFactory) -> None:
    async with make_gateway(model_access_groups=GROUPS) as gw:
        created = await gw.generate(models=["beta-group"])
        assert created["models"] == ["beta-group"]
        info = await gw.admin("/key/info", {"token": created["token"]}, method="GET")
        assert info.json()["info"]["models"] == ["beta-group"]


async def test_fallbacks_are_checked_against_the_group(make_gateway: GatewayFactory) -> None:
    async with make_gateway(model_access_groups=GROUPS) as gw:
        key = (await gw.generate(models=["beta-group"]))["key"]
        assert (await gw.chat(key, "gpt-4o-mini", fallbacks=["openai/o1"])).status_code == 200
        assert (await gw.chat(key, "gpt-4o-mini", fallbacks=["gpt-4o"])).status_code == 403
        override = {"fallbacks": [{"gpt-4o-mini": ["gpt-4o"]}]}
        assert (await gw.chat(key, "gpt-4o-mini", router_settings_override=override)).status_code == 403


async def test_a_team_restricted_to_a_group_narrows_its_keys(make_gateway: GatewayFactory) -> None:
    async with make_gateway(model_access_groups=GROUPS) as gw:
        await gw.team("t1", models=["beta-group"])
        unrestricted = (await gw.generate(team_id="t1"))["key"]
        assert (await gw.chat(unrestricted, "gpt-4o-mini")).status_code == 200
        assert (await gw.chat(unrestricted, "gpt-4o")).status_code == 403
        team_models = (await gw.generate(team_id="t1", models=["all-team-models"]))["key"]
        assert (await gw.chat(team_models, "openai/gpt-4o")).status_code == 200
        assert (await gw.chat(team_models, "o1")).status_code == 403
        # A key narrower than the team: key ∩ team.
        narrower = (await gw.generate(team_id="t1", models=["gpt-4o-mini"]))["key"]
        assert (await gw.chat(narrower, "gpt-4o-mini")).status_code == 200
        assert (await gw.chat(narrower, "openai/gpt-4o")).status_code == 403


async def test_a_key_cannot_be_given_models_outside_its_teams_group(make_gateway: GatewayFactory) -> None:
    async with make_gateway(model_access_groups=GROUPS) as gw:
        await gw.team("t1", models=["beta-group"])
        assert (await gw.admin("/key/generate", {"team_id": "t1", "models": ["beta-group"]})).status_code == 200
        assert (await gw.admin("/key/generate", {"team_id": "t1", "models": ["openai/o1"]})).status_code == 200
        # prod-group stands for gpt-4o, which the team's group does not include.
        for models in (["prod-group"], ["gpt-4o"]):
            refused = await gw.admin("/key/generate", {"team_id": "t1", "models": models})
            assert refused.status_code == 400, models
        key = await gw.generate(team_id="t1", models=["gpt-4o-mini"])
        update = await gw.admin("/key/update", {"key": key["token"], "models": ["prod-group"]})
        assert update.status_code == 400
        update = await gw.admin("/key/update", {"key": key["token"], "models": ["beta-group"]})
        assert update.status_code == 200
        assert update.json()["models"] == ["beta-group"]


async def test_a_group_in_the_key_is_narrowed_by_a_plain_team_list(make_gateway: GatewayFactory) -> None:
    async with make_gateway(model_access_groups=GROUPS) as gw:
        # A team created before the key may list members directly; the key's group may not exceed them.
        await gw.team("t2", models=["gpt-4o-mini", "openai/*"])
        key = (await gw.generate(team_id="t2", models=["beta-group"]))["key"]
        assert (await gw.chat(key, "gpt-4o-mini")).status_code == 200
        # The team shrinks afterwards: the request-time check applies key ∩ team.
        assert (await gw.admin("/team/update", {"team_id": "t2", "models": ["gpt-4o-mini"]})).status_code == 200
        assert (await gw.chat(key, "gpt-4o-mini")).status_code == 200
        assert (await gw.chat(key, "openai/gpt-4o")).status_code == 403


async def test_organization_and_project_groups_bound_keys(make_gateway: GatewayFactory) -> None:
    async with make_gateway(model_access_groups=GROUPS) as gw:
        org = await gw.admin("/organization/new", {"organization_id": "o1", "models": ["prod-group"]})
        assert org.status_code == 200, org.text
        assert (await gw.admin("/key/generate", {"organization_id": "o1", "models": ["beta-group"]})).status_code == 400
        key = (await gw.generate(organization_id="o1"))["key"]
        assert (await gw.chat(key, "gpt-4o")).status_code == 200
        assert (await gw.chat(key, "gpt-4o-mini")).status_code == 403
        project = await gw.admin("/project/new", {"project_id": "p1", "models": ["beta-group"]})
        assert project.status_code == 200, project.text
        in_project = (await gw.generate(project_id="p1"))["key"]
        assert (await gw.chat(in_project, "openai/o3")).status_code == 200
        assert (await gw.chat(in_project, "gpt-4o")).status_code == 403


async def test_an_unknown_group_name_is_a_plain_model_name(make_gateway: GatewayFactory) -> None:
    async with make_gateway(model_access_groups=GROUPS) as gw:
        created = await gw.generate(models=["gamma-group"])
        assert created["models"] == ["gamma-group"]
        assert (await gw.chat(created["key"], "gamma-group")).status_code == 200
        assert (await gw.chat(created["key"], "gpt-4o-mini")).status_code == 403


async def test_without_groups_configured_a_group_name_grants_nothing_more(make_gateway: GatewayFactory) -> None:
    async with make_gateway() as gw:
        key = (await gw.generate(models=["beta-group"]))["key"]
        assert (await gw.chat(key, "gpt-4o-mini")).status_code == 403


async def test_identity_models_name_the_groups_members(make_gateway: GatewayFactory) -> None:
    # Other plugins and the gateway's /v1/models filter read Identity.models: a group name there would match nothing.
    async with make_gateway(model_access_groups=GROUPS) as gw:
        key = (await gw.generate(models=["beta-group"]))["key"]
        answered = await gw.chat(key, "gpt-4o-mini")
        assert answered.json()["models"] == ["gpt-4o-mini", "openai/*"]
        await gw.team("t3", models=["prod-group"])
        team_key = (await gw.generate(team_id="t3"))["key"]
        assert (await gw.chat(team_key, "gpt-4o")).json()["models"] == ["gpt-4o"]
