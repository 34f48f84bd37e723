"""`authcore plugins doctor` warnings and redaction, with plugin types given to it directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

import authcore
from authcore.cli import main
from authcore.config import AuthcoreConfig
from authcore.loader import InstalledPlugin, TypeResolver, installed_plugins, mapping_resolver

PLAIN_CANARY = "plain-field-canary-4471"
SECRET_CANARY = "secret-field-canary-8812"


class Tokens(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def resolve_identity(self) -> authcore.Identity | None:
        return None


class Escape(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def custom_auth(self) -> authcore.Identity | None:
        return None


class Checker(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def post_checks(self) -> None:
        return None


class RemoteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    api_key: str
    """A secret declared as a plain `str`: the doctor must still mask it."""
    password: SecretStr


class Remote(authcore.Plugin[RemoteConfig]):
    Config = RemoteConfig

    @authcore.hookimpl
    async def resolve_identity(self) -> authcore.Identity | None:
        return None


class GuardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_open: bool = False


class Guard(authcore.Plugin[GuardConfig]):
    Config = GuardConfig

    @authcore.hookimpl
    async def post_checks(self) -> None:
        return None


TYPES: dict[str, Any] = {"tokens": Tokens, "escape": Escape, "checker": Checker, "remote": Remote, "guard": Guard}


@pytest.fixture(autouse=True)
def _types(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolver(config: AuthcoreConfig) -> TypeResolver:
        return mapping_resolver({"headers": _headers_type(), **TYPES})

    monkeypatch.setattr("authcore.cli.doctor.gateway_resolver", resolver)


def _headers_type() -> Any:
    from authcore.credentials import HeaderCredentials

    return HeaderCredentials


def doctor(tmp_path: Path, capsys: pytest.CaptureFixture[str], yaml_text: str) -> tuple[int, str]:
    path = tmp_path / "authcore.yaml"
    path.write_text(
        yaml_text + f"storage:\n  database_url: sqlite+aiosqlite:///{tmp_path / 'd.db'}\n", encoding="utf-8"
    )
    code = main(["plugins", "doctor", "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_secrets_are_masked_whether_declared_secret_or_plain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_KEY", PLAIN_CANARY)
    monkeypatch.setenv("REMOTE_PASSWORD", SECRET_CANARY)
    code, out = doctor(
        tmp_path,
        capsys,
        "plugins:\n"
        "  remote:\n"
        "    use: remote\n"
        "    config:\n"
        "      url: https://idp.example\n"
        "      api_key: os.environ/REMOTE_KEY\n"
        "      password: os.environ/REMOTE_PASSWORD\n",
    )
    assert code == 0, out
    assert '"api_key": "**********"' in out
    assert '"password": "**********"' in out
    assert '"url": "https://idp.example"' in out
    assert PLAIN_CANARY not in out
    assert SECRET_CANARY not in out


def test_warns_about_several_custom_auth_instances_and_unused_hooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = doctor(
        tmp_path,
        capsys,
        "plugins:\n"
        "  tokens: {use: tokens}\n"
        "  first: {use: escape}\n"
        "  second: {use: escape}\n"
        "  checks: {use: checker}\n"
        "pipeline:\n"
        "  post_checks: []\n",
    )
    assert code == 0, out
    assert "[warn]  custom_auth: 2 instances; the first to decide wins" in out
    assert "[warn]  plugins.checks: implements post_checks but pipeline.post_checks leaves it out" in out
    assert "[warn]  post_checks: no plugin" in out
    assert "[warn]  reserve_budget: no plugin" in out


def test_only_custom_auth_can_authenticate_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = doctor(tmp_path, capsys, "plugins:\n  first: {use: escape}\n")
    assert code == 0, out
    assert "[warn]  resolve_identity: no plugin; only custom_auth can authenticate" in out


def test_pipeline_naming_an_undefined_instance_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = doctor(tmp_path, capsys, "plugins:\n  tokens: {use: tokens}\npipeline:\n  resolve_identity: [ghost]\n")
    assert code == 1
    assert "[error] pipeline:" in out
    assert "'ghost' is not defined under plugins" in out


def test_a_type_name_claimed_by_two_distributions_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clash = InstalledPlugin("headers", "other_dist.credentials:Headers", "other-dist", "1.0")
    monkeypatch.setattr("authcore.cli.doctor.installed_plugins", lambda: [*installed_plugins(), clash])
    code, out = doctor(tmp_path, capsys, "plugins:\n  tokens: {use: tokens}\n")
    assert code == 1
    assert "[error] plugin type 'headers' is registered by more than one distribution: authcore, other-dist" in out


def test_fail_open_instances_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = doctor(
        tmp_path,
        capsys,
        "plugins:\n"
        "  tokens: {use: tokens}\n"
        "  lenient: {use: guard, config: {fail_open: true}}\n"
        "  strict: {use: guard}\n",
    )
    assert code == 0, out
    assert "[warn]  plugins.lenient: fail_open is true" in out
    assert "plugins.strict: fail_open" not in out
