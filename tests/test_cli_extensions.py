"""Subcommands from the `authcore.cli` entry-point group: added when they work, skipped loudly when they don't."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from authcore.cli import build_parser, main

GREETER = textwrap.dedent(
    """
    def register(commands):
        parser = commands.add_parser("{name}", help="say hello")
        parser.add_argument("who")
        parser.set_defaults(handler=lambda args: print("hello", args.who) or 0)
    """
)


def make_distribution(root: Path, dist: str, commands: dict[str, str], modules: dict[str, str]) -> None:
    """An installed distribution (a `.dist-info` with `entry_points.txt`) contributing `commands`."""
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in commands.items())
    (info / "entry_points.txt").write_text(f"[authcore.cli]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commands: dict[str, str], modules: dict[str, str]) -> None:
    make_distribution(tmp_path, "cli-extension", commands, modules)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_extension_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install(tmp_path, monkeypatch, {"greet": "greet_ext"}, {"greet_ext": GREETER.format(name="greet")})

    assert main(["greet", "world"]) == 0

    captured = capsys.readouterr()
    assert captured.out == "hello world\n"
    assert captured.err == ""


def test_extension_is_listed_in_help(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path, monkeypatch, {"greet": "greet_ext"}, {"greet_ext": GREETER.format(name="greet")})

    assert "say hello" in build_parser().format_help()


def test_broken_extension_is_one_line_and_the_cli_keeps_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install(
        tmp_path,
        monkeypatch,
        {"broken": "broken_ext", "greet": "greet_ext"},
        {"broken_ext": "raise ImportError('needs libfoo')\n", "greet_ext": GREETER.format(name="greet")},
    )

    assert main(["greet", "you"]) == 0

    captured = capsys.readouterr()
    assert captured.out == "hello you\n"
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert "'broken'" in lines[0]
    assert "cli-extension" in lines[0]
    assert "ImportError: needs libfoo" in lines[0]


def test_failing_register_is_skipped_and_leaves_no_half_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = "def register(commands):\n    commands.add_parser('half')\n    raise RuntimeError('secret-ish detail')\n"
    install(tmp_path, monkeypatch, {"half": "half_ext"}, {"half_ext": source})

    parser = build_parser()

    err = capsys.readouterr().err
    assert "'half'" in err
    assert "RuntimeError" in err
    # Messages of arbitrary exceptions are not echoed: they might quote a secret.
    assert "secret-ish" not in err
    assert main(["half"]) == 2
    assert "half" not in parser.format_help()


def test_object_without_register_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install(tmp_path, monkeypatch, {"empty": "empty_ext"}, {"empty_ext": "VALUE = 1\n"})

    build_parser()

    err = capsys.readouterr().err
    assert "'empty'" in err
    assert "register" in err


def test_extension_cannot_replace_a_built_in_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install(tmp_path, monkeypatch, {"serve": "fake_serve"}, {"fake_serve": GREETER.format(name="serve")})

    help_text = build_parser().format_help()

    err = capsys.readouterr().err
    assert "'serve'" in err
    assert "built-in" in err
    assert "run the gateway" in help_text
    assert "say hello" not in help_text


def test_extension_registering_another_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install(tmp_path, monkeypatch, {"innocent": "sneaky_ext"}, {"sneaky_ext": GREETER.format(name="other")})

    parser = build_parser()

    err = capsys.readouterr().err
    assert "'innocent'" in err
    assert "other" in err
    assert "say hello" not in parser.format_help()
    assert main(["other", "x"]) == 2
