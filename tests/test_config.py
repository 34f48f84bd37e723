"""authcore.yaml: secret references, precise error locations, strict keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

import authcore
from authcore.config import load_config, parse_config
from authcore.errors import ConfigurationError
from authcore.loader import mapping_resolver
from authcore.runner import Runner


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "authcore.yaml"
    path.write_text(text)
    return path


class ListConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: SecretStr
    urls: list[str] = []
    nested: dict[str, list[str]] = {}


class ListPlugin(authcore.Plugin[ListConfig]):
    Config = ListConfig


def test_env_references_resolve_in_top_level_and_plugin_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AC_DB", "sqlite+aiosqlite:///x.db")
    monkeypatch.setenv("AC_TOKEN", "tok-123")
    monkeypatch.setenv("AC_HOST", "idp.internal")
    path = write(
        tmp_path,
        """
plugins:
  p:
    use: lister
    config:
      token: os.environ/AC_TOKEN
      urls: ["https://${AC_HOST}/a", "os.environ/AC_HOST"]
      nested: {hosts: ["${AC_HOST}:443", plain]}
pipeline: {extract_credentials: []}
storage:
  database_url: os.environ/AC_DB
routes:
  public: ["/health/*"]
""",
    )
    config = load_config(path)
    assert config.storage.database_url.get_secret_value() == "sqlite+aiosqlite:///x.db"
    [instance] = Runner.from_config(config, mapping_resolver({"lister": ListPlugin})).instances
    settings = instance.config
    assert isinstance(settings, ListConfig)
    assert settings.token.get_secret_value() == "tok-123"
    assert settings.urls == ["https://idp.internal/a", "idp.internal"]
    assert settings.nested == {"hosts": ["idp.internal:443", "plain"]}


def test_missing_env_var_names_file_and_key_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AC_NOT_SET", raising=False)
    path = write(tmp_path, "storage:\n  redis_url: os.environ/AC_NOT_SET\n")
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: storage.redis_url: environment variable AC_NOT_SET is not set"


def test_missing_env_var_in_plugin_list_names_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AC_NOT_SET", raising=False)
    path = write(
        tmp_path,
        "plugins:\n  p:\n    use: lister\n    config:\n      token: x\n      urls: [ok, '${AC_NOT_SET}']\n"
        "pipeline: {extract_credentials: []}\n",
    )
    config = load_config(path)  # plugin blocks resolve only when the plugin is built
    with pytest.raises(ConfigurationError) as caught:
        Runner.from_config(config, mapping_resolver({"lister": ListPlugin}))
    assert str(caught.value) == f"{path}: plugins.p.config.urls.1: environment variable AC_NOT_SET is not set"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "plugins:\n  a:\n    use: x\n  b: [unclosed\n")
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: line ")
    assert "invalid YAML" in str(caught.value)


def test_yaml_error_reports_the_right_line(tmp_path: Path) -> None:
    path = write(tmp_path, "max_body_bytes: 10\nlog_decisions: true\nroutes: {public: [\n")
    with pytest.raises(ConfigurationError, match=r": line [34], column"):
        load_config(path)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"plugin": {}}, "<config>: plugin: "),
        ({"routes": {"public": ["health"]}}, "<config>: routes.public: "),
        ({"routes": {"admin": ["/a*b"]}}, "<config>: routes.admin: "),
        ({"routes": {"admin": ["/a*"]}}, "<config>: routes.admin: "),
        ({"plugins": {"1bad": {"use": "x"}}}, "<config>: plugins: "),
        ({"plugins": {"a": {"use": "x", "timeout_s": 0}}}, "<config>: plugins.a.timeout_s: "),
        ({"plugins": {"a": {"use": "x", "timeot_s": 1}}}, "<config>: plugins.a.timeot_s: "),
        ({"pipeline": {"resolve": ["a"]}}, "<config>: pipeline.resolve: "),
        ({"max_body_bytes": 0}, "<config>: max_body_bytes: "),
        (["not", "a", "mapping"], "<config>: <root>: "),
    ],
)
def test_invalid_configs_name_the_key(data: object, where: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_config(data)
    assert str(caught.value).startswith(where)


def test_unreadable_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_empty_file_is_the_default_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.routes.public == ["/health/*"]
    assert "headers" in config.plugins  # the built-in extractor is added when the stage is left out


def test_builtin_extractor_is_not_added_when_pipeline_leaves_it_out() -> None:
    config = parse_config({"pipeline": {"extract_credentials": []}})
    assert config.plugins == {}
