"""The `authcore` command line, run in-process: plugins list/schema/doctor, explain, serve's checks."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from authcore.cli import main
from authcore.loader import InstalledPlugin, installed_plugins

ALICE_TOKEN = "st-alice-canary-5e1f0c"
UNKNOWN_TOKEN = "st-unknown-canary-9d2a77"


def write_config(tmp_path: Path, body: str = "", *, name: str = "authcore.yaml") -> Path:
    """headers + the sample static-token plugin (alice's token from $ALICE_TOKEN), SQLite in tmp_path."""
    path = tmp_path / name
    path.write_text(
        "plugins:\n"
        "  static:\n"
        "    use: sample_static_tokens\n"
        "    config:\n"
        "      tokens:\n"
        "        alice: os.environ/ALICE_TOKEN\n"
        "storage:\n"
        f"  database_url: sqlite+aiosqlite:///{tmp_path / 'cli.db'}\n" + body,
        encoding="utf-8",
    )
    return path


@pytest.fixture(autouse=True)
def _alice_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALICE_TOKEN", ALICE_TOKEN)
    # Commands without --config use the embedded default, whose SQLite file lands in the cwd.
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str) -> None:
    assert err.startswith("authcore: error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


# -- plugins list ------------------------------------------------------------------


def test_plugins_list_shows_each_installed_type_with_its_hooks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins", "list")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == {row.name for row in installed_plugins()}
    assert "extract_credentials" in lines["headers"]
    assert lines["sample_static_tokens"].split() == [
        "sample_static_tokens",
        "authcore-sample-plugin",
        version("authcore-sample-plugin"),
        "resolve_identity",
        "-",
    ]


def test_plugins_list_json_marks_the_types_a_config_uses(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "plugins", "list", "--json", "--config", str(write_config(tmp_path)))
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["sample_static_tokens"]["used_by"] == ["static"]
    assert rows["sample_static_tokens"]["hooks"] == ["resolve_identity"]
    assert rows["sample_static_tokens"]["distribution"] == "authcore-sample-plugin"
    assert rows["headers"]["used_by"] == ["headers"]
    assert rows["jwt"]["used_by"] == []
    assert all(row["error"] is None for row in rows.values())


def test_plugins_list_shows_an_import_failure_in_the_error_column(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = InstalledPlugin("broken_type", "authcore_no_such_module:Thing", "authcore-broken", "9.9")
    monkeypatch.setattr("authcore.cli.plugins_cmd.installed_plugins", lambda: [*installed_plugins(), broken])
    code, out, _ = run(capsys, "plugins", "list", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert "ModuleNotFoundError" in rows["broken_type"]["error"]
    assert rows["broken_type"]["hooks"] == []
    assert rows["headers"]["error"] is None


# -- plugins schema ------------------------------------------------------------------


def test_plugins_schema_prints_the_config_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins", "schema", "sample_static_tokens")
    assert code == 0
    schema = json.loads(out)
    assert schema["required"] == ["tokens"]
    assert schema["additionalProperties"] is False


def test_plugins_schema_of_an_unknown_type_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plugins", "schema", "no_such_type")
    assert code == 2
    assert out == ""
    assert_one_line_error(err)
    assert "no_such_type" in err


# -- plugins doctor ------------------------------------------------------------------


def test_doctor_passes_a_working_config_and_redacts_env_secrets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "plugins", "doctor", "--config", str(write_config(tmp_path)))
    assert code == 0, out
    assert "[error]" not in out
    assert "[ok]    plugins.static: type 'sample_static_tokens' imports and its config validates" in out
    assert "[ok]    storage: database is reachable" in out
    assert "[warn]  plugin type 'jwt'" in out
    assert '"tokens": {"alice": "**********"}' in out
    assert ALICE_TOKEN not in out + err


def test_doctor_fails_when_nothing_can_authenticate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "only-headers.yaml"
    path.write_text(f"storage:\n  database_url: sqlite+aiosqlite:///{tmp_path / 'x.db'}\n", encoding="utf-8")
    code, out, _ = run(capsys, "plugins", "doctor", "--config", str(path))
    assert code == 1
    assert "[error] resolve_identity: no plugin and no custom_auth; nothing can authenticate" in out


def test_doctor_reports_a_type_that_is_not_installed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(
        path.read_text(encoding="utf-8").replace("storage:", "  ghost:\n    use: authcore_ghost_type\nstorage:"),
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "plugins", "doctor", "--config", str(path))
    assert code == 1
    assert "[error] plugins.ghost:" in out
    assert "authcore_ghost_type" in out
    assert ALICE_TOKEN not in out


def test_doctor_reports_an_unreachable_store_without_its_url(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_config(tmp_path, "  redis_url: redis://:redis-password-canary@127.0.0.1:1/0\n")
    code, out, err = run(capsys, "plugins", "doctor", "--config", str(path))
    assert code == 1
    assert "[error] storage: redis is not reachable" in out
    assert "redis-password-canary" not in out + err


def test_doctor_reports_an_invalid_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("plugins:\n  static:\n    use: sample_static_tokens\n    colour: blue\n", encoding="utf-8")
    code, out, _ = run(capsys, "plugins", "doctor", "--config", str(path))
    assert code == 1
    assert f"[error] config: {path}: plugins.static.colour" in out


# -- explain -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_explain_allowed_request_shows_trace_and_identity_but_not_the_credential(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    config = str(write_config(tmp_path))
    code, out, err = run(
        capsys,
        "explain", "--config", config, "--format", fmt,
        "POST", "/v1/chat/completions",
        "-H", f"Authorization: Bearer {ALICE_TOKEN}",
        "--json", '{"model": "gpt-4o", "messages": []}',
    )  # fmt: skip
    assert code == 0
    assert ALICE_TOKEN not in out + err
    if fmt == "json":
        decision = json.loads(out)
        assert decision["allowed"] is True
        assert decision["identity"]["user_id"] == "alice"
        stages = [(step["stage"], step["plugin"], step["outcome"]) for step in decision["trace"]["steps"]]
        assert ("extract_credentials", "headers", "credentials") in stages
        assert ("resolve_identity", "static", "identity") in stages
    else:
        assert "outcome:    allowed" in out
        assert "alice" in out
        assert "resolve_identity" in out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_explain_denied_request_exits_1_without_printing_the_credential(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    config = str(write_config(tmp_path))
    code, out, err = run(
        capsys, "explain", "--config", config, "--format", fmt, "GET", "/v1/models", "-H", f"x-api-key: {UNKNOWN_TOKEN}"
    )
    assert code == 1
    assert UNKNOWN_TOKEN not in out + err
    assert "unknown_token" in out
    assert "401" in out


def test_explain_without_credentials_is_401(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(
        capsys, "explain", "--config", str(write_config(tmp_path)), "--format", "json", "GET", "/v1/models"
    )
    assert code == 1
    assert json.loads(out)["error"]["error"]["code"] == "missing_api_key"


def test_explain_public_route_is_allowed_without_identity(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "explain", "--config", str(write_config(tmp_path)), "GET", "/health/readiness")
    assert code == 0
    assert "none (public route)" in out


def test_explain_malformed_header_never_echoes_its_value(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    code, out, err = run(capsys, "explain", "--config", config, "GET", "/v1/models", "-H", f"Bearer {ALICE_TOKEN}")
    assert code == 2
    assert_one_line_error(err)
    assert ALICE_TOKEN not in out + err


# -- serve (checks made before binding) and errors --------------------------------------


def test_serve_with_an_uninstalled_plugin_exits_2_before_binding(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "ghost.yaml"
    path.write_text("plugins:\n  ghost:\n    use: authcore_ghost_type\n", encoding="utf-8")
    code, _, err = run(capsys, "serve", "--config", str(path), "--port", "1")
    assert code == 2
    assert_one_line_error(err)
    assert "authcore_ghost_type" in err


def test_serve_with_an_invalid_config_names_the_file_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("gateway:\n  upstream_timeout_s: -1\nstorage:\n  nope: 1\n", encoding="utf-8")
    code, _, err = run(capsys, "serve", "--config", str(path), "--port", "1")
    assert code == 2
    assert_one_line_error(err)
    assert f"{path}: gateway.upstream_timeout_s" in err
    assert f"{path}: storage.nope" in err


def test_serve_with_an_invalid_plugin_setting_does_not_echo_the_secret(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALICE_TOKEN", "wrong-prefix-canary-31")
    code, _, err = run(capsys, "serve", "--config", str(write_config(tmp_path)), "--port", "1")
    assert code == 2
    assert "plugins.static.config" in err
    assert "wrong-prefix-canary-31" not in err


def test_missing_config_file_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "explain", "--config", str(tmp_path / "absent.yaml"), "GET", "/")
    assert code == 2
    assert_one_line_error(err)
    assert "absent.yaml" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(
            capsys,
        )[0]
        == 2
    )
    assert run(capsys, "serve", "--workers", "0")[0] == 2
    assert run(capsys, "plugins")[0] == 2
