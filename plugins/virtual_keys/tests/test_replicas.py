"""Replicas sharing Postgres and Redis: a change made through one is enforced by the others within a second."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import (
    HASH_SECRET,
    MASTER_KEY,
    POLL_S,
    REVOCATION_BOUND_S,
    SETTLE_S,
    Gateway,
    Replica,
    free_port,
    seconds_until,
    warm,
)

pytestmark = pytest.mark.services


@contextlib.asynccontextmanager
async def two_replicas(replica: Replica) -> AsyncIterator[tuple[Gateway, Gateway]]:
    # One after the other: the first creates the schema.
    async with replica() as first, replica() as second:
        yield first, second


async def test_a_key_blocked_on_one_replica_is_denied_on_the_other_within_a_second(replica: Replica) -> None:
    async with two_replicas(replica) as (a, b):
        key = (await a.generate())["key"]
        await warm(b, key)

        assert (await a.admin("/key/block", {"key": key})).status_code == 200
        await seconds_until(403, lambda: b.chat(key), REVOCATION_BOUND_S)

        assert (await a.admin("/key/unblock", {"key": key})).status_code == 200
        await seconds_until(200, lambda: b.chat(key), REVOCATION_BOUND_S)


async def test_a_key_deleted_on_one_replica_is_unknown_on_the_other_within_a_second(replica: Replica) -> None:
    async with two_replicas(replica) as (a, b):
        key = (await a.generate())["key"]
        await warm(b, key)

        assert (await a.admin("/key/delete", {"keys": [key]})).status_code == 200
        await seconds_until(401, lambda: b.chat(key), REVOCATION_BOUND_S)


async def test_a_model_removed_on_one_replica_is_refused_on_the_other_within_a_second(replica: Replica) -> None:
    async with two_replicas(replica) as (a, b):
        key = (await a.generate(models=["gpt-4o", "gpt-4o-mini"]))["key"]
        await warm(b, key, "gpt-4o")

        assert (await a.admin("/key/update", {"key": key, "models": ["gpt-4o-mini"]})).status_code == 200
        await seconds_until(403, lambda: b.chat(key, "gpt-4o"), REVOCATION_BOUND_S)


async def test_a_team_blocked_on_one_replica_denies_its_keys_on_the_other_within_a_second(replica: Replica) -> None:
    async with two_replicas(replica) as (a, b):
        await a.team("research")
        key = (await a.generate(team_id="research"))["key"]
        await warm(b, key)

        assert (await a.admin("/team/update", {"team_id": "research", "blocked": True})).status_code == 200
        await seconds_until(403, lambda: b.chat(key), REVOCATION_BOUND_S)


async def test_a_user_deactivated_on_one_replica_denies_their_keys_on_the_other_within_a_second(
    replica: Replica,
) -> None:
    async with two_replicas(replica) as (a, b):
        await a.user("ada")
        key = (await a.generate(user_id="ada"))["key"]
        await warm(b, key)

        assert (await a.admin("/user/update", {"user_id": "ada", "deactivated": True})).status_code == 200
        await seconds_until(403, lambda: b.chat(key), REVOCATION_BOUND_S)


# -- two gateway processes ----------------------------------------------------


def write_config(path: Path, database_url: str, redis_url: str, redis_prefix: str) -> Path:
    path.write_text(
        "plugins:\n"
        "  keys:\n"
        "    use: virtual_keys\n"
        "    config:\n"
        "      master_key: os.environ/VK_TEST_MASTER_KEY\n"
        "      hash_secret: os.environ/VK_TEST_HASH_SECRET\n"
        "storage:\n"
        f"  database_url: {database_url}\n"
        f"  redis_url: {redis_url}\n"
        f"  redis_prefix: '{redis_prefix}'\n",
        encoding="utf-8",
    )
    return path


class Server:
    """`authcore serve` in its own process, on a loopback port."""

    def __init__(self, config: Path, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "VK_TEST_MASTER_KEY": MASTER_KEY, "VK_TEST_HASH_SECRET": HASH_SECRET}
        env.pop("AUTHCORE_CONFIG", None)
        command = [sys.executable, "-m", "authcore.cli", "serve", "--config", str(config), "--port", str(self.port)]
        self._log = log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [*command, "--log-level", "warning"],
            cwd=config.parent,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_alive(self, deadline_s: float = 20.0) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"serve exited early with {self.process.returncode}"
            try:
                if httpx.get(f"{self.base}/health/liveliness", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("serve did not answer in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def servers(
    tmp_path: Path, authcore_postgres_url: str, authcore_redis_url: str, authcore_redis_prefix: str
) -> Iterator[tuple[Server, Server]]:
    config = write_config(tmp_path / "authcore.yaml", authcore_postgres_url, authcore_redis_url, authcore_redis_prefix)
    started: list[Server] = []
    try:
        # The first creates the schema before the second starts.
        for name in ("a", "b"):
            server = Server(config, tmp_path / f"{name}.log")
            started.append(server)
            server.wait_alive()
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


def test_two_gateway_processes_a_key_blocked_through_one_is_denied_by_the_other_within_a_second(
    servers: tuple[Server, Server],
) -> None:
    a, b = servers
    admin = {"authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(timeout=5.0) as client:
        generated = client.post(f"{a.base}/key/generate", json={}, headers=admin)
        assert generated.status_code == 200, generated.text
        key = generated.json()["key"]
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}

        def chat_through_b() -> int:
            return client.post(
                f"{b.base}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
            ).status_code

        # Warm B's cache once the new key's announcement has passed: from here on B answers from memory.
        time.sleep(SETTLE_S)
        assert chat_through_b() == 200
        assert chat_through_b() == 200

        assert client.post(f"{a.base}/key/block", json={"key": key}, headers=admin).status_code == 200
        start = time.monotonic()
        while (status := chat_through_b()) != 403:
            assert status == 200, status
            assert time.monotonic() - start < REVOCATION_BOUND_S, "replica B still accepts the blocked key"
            time.sleep(POLL_S)
        print(f"cross-process revocation: {1000 * (time.monotonic() - start):.1f} ms")
