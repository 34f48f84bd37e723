"""Refuse to start: anything that would make auth differ from the configuration is a ConfigurationError."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

import authcore
from authcore.config import parse_config
from authcore.errors import ConfigurationError
from authcore.loader import entry_point_resolver, mapping_resolver
from authcore.runner import Runner
from tests._runner_helpers import KeyHeader, KeyTable, build_runner, started


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int
    label: str = "x"


class Configured(authcore.Plugin[Settings]):
    Config = Settings

    @authcore.hookimpl
    async def post_checks(self) -> None:
        return None


class LooseConfig(BaseModel):
    limit: int = 1


class Loose(authcore.Plugin[LooseConfig]):
    Config = LooseConfig


class NotAPlugin:
    pass


class FutureApi(authcore.Plugin[authcore.EmptyConfig]):
    api_version = 2


class Wrapper(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl(wrapper=True)
    def resolve_identity(self) -> Generator[None, Any, Any]:
        result = yield
        return result


class OldWrapper(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl(hookwrapper=True)
    def post_checks(self) -> Generator[None, Any, None]:
        yield


class Typo(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def resolve_identiy(self) -> None:
        return None


TYPES: dict[str, Any] = {
    "key": KeyHeader,
    "table": KeyTable,
    "configured": Configured,
    "loose": Loose,
    "not_a_plugin": NotAPlugin,
    "future": FutureApi,
    "wrapper": Wrapper,
    "old_wrapper": OldWrapper,
    "typo": Typo,
}


def build(plugins: dict[str, Any], pipeline: dict[str, Any] | None = None) -> Runner:
    config = parse_config({"plugins": plugins, "pipeline": {"extract_credentials": [], **(pipeline or {})}}, "gw.yaml")
    return Runner.from_config(config, mapping_resolver(TYPES))


@pytest.mark.parametrize(
    ("plugins", "pipeline", "culprit"),
    [
        ({"x": {"use": "missing_type"}}, None, "'missing_type'"),
        ({"x": {"use": "not_a_plugin"}}, None, "subclass of authcore.Plugin"),
        ({"x": {"use": "future"}}, None, "hook API 2"),
        ({"x": {"use": "loose"}}, None, "extra='forbid'"),
        ({"wrap": {"use": "wrapper"}}, None, "'wrap'"),
        ({"wrap": {"use": "old_wrapper"}}, None, "'wrap'"),
        ({"t": {"use": "typo"}}, None, "resolve_identiy"),
        ({"c": {"use": "configured", "config": {"limit": 1}}}, {"post_checks": ["ghost"]}, "'ghost'"),
        ({"c": {"use": "configured", "config": {"limit": 1}}}, {"resolve_identity": ["c"]}, "does not implement"),
        ({"c": {"use": "configured", "config": {"limit": 1}}}, {"post_checks": ["c", "c"]}, "listed twice"),
    ],
    ids=[
        "type-missing",
        "not-a-plugin",
        "api-version",
        "config-not-forbid",
        "wrapper",
        "hookwrapper",
        "typo-hook",
        "pipeline-undefined",
        "pipeline-stage-not-implemented",
        "pipeline-listed-twice",
    ],
)
def test_refuses_to_start(plugins: dict[str, Any], pipeline: dict[str, Any] | None, culprit: str) -> None:
    with pytest.raises(ConfigurationError, match=None) as caught:
        build(plugins, pipeline)
    assert culprit in str(caught.value)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "plugins.c.config.limit"),
        ({"limit": "many"}, "plugins.c.config.limit"),
        ({"limit": 1, "lable": "typo"}, "plugins.c.config.lable"),
    ],
)
def test_invalid_plugin_config_names_file_and_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build({"c": {"use": "configured", "config": config}})
    message = str(caught.value)
    assert message.startswith("gw.yaml: ")
    assert field in message


def test_invalid_plugin_config_does_not_echo_the_value() -> None:
    with pytest.raises(ConfigurationError) as caught:
        build({"c": {"use": "configured", "config": {"limit": "sk-canary-value"}}})
    assert "sk-canary-value" not in str(caught.value)


def test_unused_stage_implementations_are_reported() -> None:
    runner = build({"c": {"use": "configured", "config": {"limit": 1}}}, {"post_checks": []})
    assert runner.unused_implementations() == [("c", "post_checks")]


class Started(authcore.Plugin[authcore.EmptyConfig]):
    log: list[str] = []  # noqa: RUF012

    @authcore.hookimpl
    async def startup(self, context: authcore.PluginContext) -> None:
        type(self).log.append(f"start:{self.name}")

    @authcore.hookimpl
    async def shutdown(self) -> None:
        type(self).log.append(f"stop:{self.name}")


class FailsToStart(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    async def startup(self, context: authcore.PluginContext) -> None:
        raise OSError("database refused the connection")


class StartsWithoutContext(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    def startup(self) -> None:
        Started.log.append(f"start:{self.name}")


class UndeclaredSyncCheck(authcore.Plugin[authcore.EmptyConfig]):
    @authcore.hookimpl
    def post_checks(self) -> None:
        return None


class DeclaredSyncCheck(UndeclaredSyncCheck):
    cpu_only = True


def test_sync_decision_hook_without_declaration_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match=r"'plain'.*post_checks is a plain function"):
        build_runner({"sync": UndeclaredSyncCheck}, {"plain": "sync"})
    assert build_runner({"sync": DeclaredSyncCheck}, {"plain": "sync"}).stages["post_checks"]


async def test_startup_failure_names_instance_and_shuts_down_started_ones() -> None:
    Started.log = []
    runner = build_runner(
        {"ok": Started, "bad": FailsToStart},
        {"one": "ok", "two": "ok", "broken": "bad", "three": "ok"},
    )
    with pytest.raises(ConfigurationError, match="'broken' failed to start: OSError"):
        await started(runner)
    assert Started.log == ["start:one", "start:two", "stop:two", "stop:one"]
    assert not runner.started


async def test_startup_hook_may_omit_its_context_argument() -> None:
    Started.log = []
    runner = await started(build_runner({"ok": StartsWithoutContext}, {"bare": "ok"}))
    assert runner.started
    assert Started.log == ["start:bare"]


async def test_shutdown_runs_in_reverse_order() -> None:
    Started.log = []
    runner = await started(build_runner({"ok": Started}, {"one": "ok", "two": "ok"}))
    await runner.shutdown()
    assert Started.log == ["start:one", "start:two", "stop:two", "stop:one"]


# -- real entry points ------------------------------------------------------------------------------------


def make_distribution(root: Path, dist: str, entry_points: dict[str, str], module: str | None = None) -> None:
    """A minimal installed distribution (a `.dist-info` with `entry_points.txt`) under `root`."""
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[authcore.plugins]\n{lines}\n")
    if module is not None:
        (root / f"{dist.replace('-', '_')}_mod.py").write_text(module)


def test_entry_point_whose_import_fails_refuses_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_distribution(
        tmp_path, "broken-plugin", {"broken_type": "broken_plugin_mod:Thing"}, "raise ImportError('needs libfoo')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    resolve = entry_point_resolver()
    config = parse_config({"plugins": {"b": {"use": "broken_type"}}, "pipeline": {"extract_credentials": []}})
    with pytest.raises(ConfigurationError, match=r"'broken_type' \(broken-plugin\) failed to import: ImportError"):
        Runner.from_config(config, resolve)


def test_entry_point_naming_a_non_plugin_refuses_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_distribution(tmp_path, "odd-plugin", {"odd_type": "odd_plugin_mod:thing"}, "thing = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = parse_config({"plugins": {"o": {"use": "odd_type"}}, "pipeline": {"extract_credentials": []}})
    with pytest.raises(ConfigurationError, match="'odd_type'"):
        Runner.from_config(config, entry_point_resolver())


def test_two_distributions_claiming_one_name_refuse_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_distribution(tmp_path / "a", "claim-one", {"shared_name": "x:A"})
    make_distribution(tmp_path / "b", "claim-two", {"shared_name": "y:B"})
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    with pytest.raises(ConfigurationError) as caught:
        entry_point_resolver()
    message = str(caught.value)
    assert "'shared_name'" in message
    assert "claim-one" in message
    assert "claim-two" in message


def test_broken_installed_type_is_harmless_when_not_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_distribution(
        tmp_path, "broken-plugin", {"broken_type": "broken_plugin_mod:Thing"}, "raise ImportError('needs libfoo')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = parse_config({"plugins": {}, "pipeline": {"extract_credentials": []}})
    runner = Runner.from_config(config, entry_point_resolver())
    assert runner.instances == []
    assert "broken_plugin_mod" not in sys.modules


def test_unlisted_installed_plugin_is_never_imported() -> None:
    script = textwrap.dedent(
        """
        import sys
        from authcore.config import parse_config
        from authcore.loader import entry_point_resolver, installed_plugins
        from authcore.runner import Runner
        assert "sample_static_tokens" in {row.name for row in installed_plugins()}
        config = parse_config({"plugins": {}, "pipeline": {"extract_credentials": []}})
        Runner.from_config(config, entry_point_resolver())
        print("authcore_sample" in sys.modules, "authcore_jwt" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)  # noqa: S603
    assert done.stdout.split() == ["False", "False"]
