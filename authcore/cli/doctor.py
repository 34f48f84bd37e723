"""`authcore plugins doctor`: everything that would stop or weaken start-up, checked and explained."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from typing import Any

from pydantic import BaseModel

from authcore.cli.common import load_cli_config, one_line
from authcore.config import AuthcoreConfig
from authcore.errors import ConfigurationError
from authcore.gateway.settings import gateway_resolver
from authcore.loader import build_instances, duplicate_names, installed_plugins
from authcore.plugin import Plugin
from authcore.runner import Runner

MASK = "**********"
# Defence in depth for plugins that declare a secret as a plain `str`.
_SECRET_NAME = re.compile(r"secret|password|passwd|token|api_?key|private|credential|pepper|salt", re.IGNORECASE)
_EMPTY_STAGE_WARNINGS = ("extract_credentials", "post_checks", "reserve_budget")


class Report:
    """Findings in order; errors decide the exit code."""

    def __init__(self) -> None:
        self.errors = 0
        self.warnings = 0

    def ok(self, message: str) -> None:
        print(f"[ok]    {message}")

    def warn(self, message: str) -> None:
        self.warnings += 1
        print(f"[warn]  {message}")

    def error(self, message: str) -> None:
        self.errors += 1
        print(f"[error] {one_line(message)}")


def redacted(value: Any, key: str = "") -> Any:
    """A dumped config with every secret-looking string masked (SecretStr already dumps masked)."""
    if isinstance(value, dict):
        return {name: redacted(item, str(name)) for name, item in value.items()}
    if isinstance(value, list):
        return [redacted(item, key) for item in value]
    if isinstance(value, str) and value and _SECRET_NAME.search(key):
        return MASK
    return value


def run(args: argparse.Namespace) -> int:
    report = Report()
    try:
        config = load_cli_config(args.config)
    except ConfigurationError as error:
        report.error(f"config: {error}")
        return _summary(report)
    report.ok(f"config: {config.source} is valid")
    instances = _check_types(config, report)
    if instances is not None:
        runner = _check_runner(config, instances, report)
        if runner is not None:
            asyncio.run(_check_start(runner, report))
        _print_configs(instances)
    return _summary(report)


def _check_types(config: AuthcoreConfig, report: Report) -> list[Plugin[BaseModel]] | None:
    rows = installed_plugins()
    clashes = duplicate_names(rows)
    for name, dists in sorted(clashes.items()):
        report.error(f"plugin type {name!r} is registered by more than one distribution: {', '.join(dists)}")
    used = {spec.use for spec in config.plugins.values()}
    for row in rows:
        if row.name not in used and row.name not in clashes:
            report.warn(f"plugin type {row.name!r} ({row.distribution}) is installed but not used")
    if clashes:
        return None
    resolve = gateway_resolver(config)
    instances: list[Plugin[BaseModel]] = []
    for name, spec in config.plugins.items():
        try:
            built = build_instances(config.model_copy(update={"plugins": {name: spec}}), resolve)
        except ConfigurationError as error:
            report.error(f"plugins.{name}: {error}")
            continue
        instances.extend(built)
        report.ok(f"plugins.{name}: type {spec.use!r} imports and its config validates")
    return instances if len(instances) == len(config.plugins) else None


def _check_runner(config: AuthcoreConfig, instances: list[Plugin[BaseModel]], report: Report) -> Runner | None:
    try:
        runner = Runner(config, instances)
    except ConfigurationError as error:
        report.error(f"pipeline: {error}")
        return None
    report.ok("pipeline: the runner builds")
    stages = {stage: [call.name for call in calls] for stage, calls in runner.stages.items()}
    for stage, names in stages.items():
        print(f"        {stage:<20} {' -> '.join(names) or '(none)'}")
    if len(stages["custom_auth"]) > 1:
        report.warn(f"custom_auth: {len(stages['custom_auth'])} instances; the first to decide wins")
    for instance, stage in runner.unused_implementations():
        report.warn(f"plugins.{instance}: implements {stage} but pipeline.{stage} leaves it out")
    if not stages["resolve_identity"]:
        if stages["custom_auth"]:
            report.warn("resolve_identity: no plugin; only custom_auth can authenticate")
        else:
            report.error("resolve_identity: no plugin and no custom_auth; nothing can authenticate")
    for stage in _EMPTY_STAGE_WARNINGS:
        if not stages[stage]:
            report.warn(f"{stage}: no plugin")
    for plugin in instances:
        # `fail_open` is the shared spelling for "admit when my store is down"; never silent.
        if getattr(plugin.config, "fail_open", False) is True:
            report.warn(f"plugins.{plugin.name}: fail_open is true: requests are admitted when its store fails")
    return runner


async def _check_start(runner: Runner, report: Report) -> None:
    try:
        await runner.startup()
    except ConfigurationError as error:
        report.error(f"startup: {error}")
        if runner.resources is not None:
            await runner.resources.aclose()
        return
    try:
        report.ok("startup: every instance started")
        assert runner.resources is not None
        print(f"        {runner.resources!r}")
        for store, status in (await runner.resources.check()).items():
            if status == "ok":
                report.ok(f"storage: {store} is reachable")
            else:
                report.error(f"storage: {store} is not reachable ({status})")
    finally:
        await runner.shutdown()


def _print_configs(instances: list[Plugin[BaseModel]]) -> None:
    print("\nconfigured instances (secrets redacted):")
    for instance in instances:
        dumped = redacted(instance.config.model_dump(mode="json"))
        print(f"  {instance.name} ({type(instance).__name__}): {json.dumps(dumped, sort_keys=True)}")


def _summary(report: Report) -> int:
    verdict = "FAILED" if report.errors else "OK"
    print(f"\n{verdict}: {report.errors} error(s), {report.warnings} warning(s)")
    return 1 if report.errors else 0
