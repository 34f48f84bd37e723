"""Start-up refuses settings that make keys guessable or forgeable."""

from __future__ import annotations

from typing import Any

import pytest
from authcore_virtual_keys import VirtualKeysConfig, VirtualKeysPlugin
from pydantic import ValidationError

from authcore import ConfigurationError
from authcore.config import parse_config
from authcore.credentials import HeaderCredentials
from authcore.loader import build_instances, mapping_resolver

from .conftest import HASH_SECRET, MASTER_KEY

TYPES: dict[str, Any] = {"virtual_keys": VirtualKeysPlugin, "headers": HeaderCredentials}


def make(**settings: Any) -> VirtualKeysPlugin:
    return VirtualKeysPlugin("keys", VirtualKeysConfig.model_validate(settings))


@pytest.mark.parametrize("master", ["", "   ", "sk-1234", "short-key-123"])
def test_weak_master_key_refuses_to_start(master: str) -> None:
    with pytest.raises(ConfigurationError, match="master_key") as raised:
        make(master_key=master, hash_secret=HASH_SECRET)

    if master.strip():
        assert master not in str(raised.value)


def test_hmac_mode_needs_a_hash_secret() -> None:
    with pytest.raises(ConfigurationError, match="hash_secret is required"):
        make(master_key=MASTER_KEY)


def test_short_hash_secret_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="hash_secret is shorter"):
        make(master_key=MASTER_KEY, hash_secret="pepper")


def test_hash_secret_equal_to_master_key_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="differ"):
        make(master_key=MASTER_KEY, hash_secret=MASTER_KEY)


def test_sha256_mode_needs_no_hash_secret() -> None:
    plugin = make(master_key=MASTER_KEY, hash_mode="sha256")

    assert plugin.hasher.mode == "sha256"


def test_sha256_mode_with_a_hash_secret_is_ambiguous() -> None:
    with pytest.raises(ConfigurationError, match="hash_mode: sha256"):
        make(master_key=MASTER_KEY, hash_mode="sha256", hash_secret=HASH_SECRET)


def test_no_master_key_is_allowed() -> None:
    assert make(hash_secret=HASH_SECRET).config.master_key is None


def test_unknown_setting_is_an_error() -> None:
    with pytest.raises(ValidationError):
        VirtualKeysConfig.model_validate({"hash_secret": HASH_SECRET, "master_kye": MASTER_KEY})


def test_secrets_are_masked_in_the_config() -> None:
    config = VirtualKeysConfig.model_validate({"master_key": MASTER_KEY, "hash_secret": HASH_SECRET})

    assert MASTER_KEY not in repr(config)
    assert HASH_SECRET not in repr(config)


def test_loader_names_the_instance_and_hides_the_value() -> None:
    config = parse_config(
        {"plugins": {"vk": {"use": "virtual_keys", "config": {"master_key": "sk-1234", "hash_secret": HASH_SECRET}}}}
    )

    with pytest.raises(ConfigurationError, match=r"plugins\.vk: master_key") as raised:
        build_instances(config, mapping_resolver(TYPES))

    assert "sk-1234" not in str(raised.value)
