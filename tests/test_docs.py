"""The README documents every hook and the commands CI runs."""

from __future__ import annotations

import inspect
from pathlib import Path

from authcore import hookspecs

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
