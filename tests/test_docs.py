"""The README documents every hook and the commands CI runs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml

from authcore import hookspecs
from authcore.config import parse_config
from authcore.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _hook_names() -> list[str]:
    return [
        name for name, value in vars(hookspecs).items() if inspect.isfunction(value) and hasattr(value, "authcore_spec")
    ]


def test_every_hook_has_a_docstring_stating_how_it_is_called() -> None:
    names = _hook_names()
    assert set(hookspecs.DECISION_HOOKS) <= set(names)
    for name in names:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc, f"{name}: the docstring must say how the runner calls it"


def test_every_hook_is_named_in_the_readme() -> None:
    for name in _hook_names():
        assert f"`{name}(" in README, f"README does not document hook {name}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_line = next(line for line in README.splitlines() if "pytest" in line and line.startswith("python3"))
    assert test_line in ci
    assert "AUTHCORE_REQUIRE_SERVICES=1" in ci


def test_readme_configuration_example_builds_a_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHCORE_MASTER_KEY", "sk-readme-master-0123456789")
    monkeypatch.setenv("AUTHCORE_HASH_SECRET", "readme-pepper-0123456789")
    example = re.search(r"```yaml\n(plugins:.*?)```", README, re.S)
    assert example is not None
    runner = Runner.from_config(parse_config(yaml.safe_load(example.group(1)), "README.md"))
    assert [call.name for call in runner.stages["resolve_identity"]] == ["keys"]
    assert [call.name for call in runner.stages["reserve_budget"]] == ["budget"]
