"""The lean Redis connection recovers from a server that stops answering without closing the connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from authcore.lean_redis import ScriptConnection, pack

pytestmark = pytest.mark.services


class SilencingProxy:
    """Forwards loopback connections to Redis; `silence()` makes the open ones swallow everything, unclosed.

    What a replica sees when its Redis host dies without closing the connection, or a failover moves the
    address: the old connection stays open and no reply ever comes. New connections are forwarded.
    """

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._silenced: list[asyncio.Event] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        silent = asyncio.Event()
        self._silenced.append(silent)
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                if not silent.is_set():
                    sink.write(data)

        pumps = [
            asyncio.ensure_future(pump(reader, upstream_writer)),
            asyncio.ensure_future(pump(upstream_reader, writer)),
        ]
        try:
            await asyncio.gather(*pumps)
        finally:
            for task in pumps:
                task.cancel()
            upstream_writer.close()
            writer.close()

    def silence(self) -> None:
        for event in self._silenced:
            event.set()

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            server.close()


async def test_a_connection_that_stops_answering_is_replaced_after_a_timeout(authcore_redis_url: str) -> None:
    pool = Redis.from_url(authcore_redis_url).connection_pool
    kwargs = pool.connection_kwargs
    proxy = SilencingProxy(str(kwargs.get("host", "127.0.0.1")), int(kwargs.get("port", 6379)))
    async with proxy.listening() as port:
        connection = ScriptConnection({**kwargs, "host": "127.0.0.1", "port": port})
        try:
            assert await connection.call(pack("PING"), 0.5) == b"PONG"
            proxy.silence()
            with pytest.raises(TimeoutError):
                await connection.call(pack("PING"), 0.1)
            # The silent connection is dropped: the next call connects again and is answered.
            assert await connection.call(pack("PING"), 0.5) == b"PONG"
            assert proxy.connections == 2
        finally:
            await connection.aclose()
    await pool.disconnect()

