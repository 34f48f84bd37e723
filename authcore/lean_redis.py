"""A lean Redis connection for scripts on the request path: pre-encoded commands, pipelined.

redis-py spends about 100 µs of CPU per call here (connection checkout, health
checks, observability hooks, its pure-Python parser), which is most of what a
Redis read adds to a request (budgets' reserve and settle, virtual keys' shared
rows). This sends already-encoded RESP commands from every concurrent request
over one connection (Redis answers in order, and runs a script atomically
whatever connection it comes from), and parses the replies of those scripts:
integers, strings, errors and nested arrays.

Errors are redis-py's exception types, so callers fail closed on them as on any
other Redis failure. A lost connection fails every call in flight and the next
call connects again. So does a call that times out: a server gone without closing
the connection (a host that died, a failover behind the same address) would
otherwise keep every later call waiting for replies that never come.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

from redis.exceptions import AuthenticationError, NoScriptError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

Reply = int | bytes | list[Any] | None


class _Incomplete(Exception):
    """The buffer ends inside a reply: wait for more bytes."""


def pack(*args: bytes | str | int) -> bytes:
    """One RESP command."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def bulk(arg: bytes | str | int) -> bytes:
    """One argument of a command, to splice into a pre-encoded one (its count must include it)."""
    data = arg if isinstance(arg, bytes) else str(arg).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _error(message: bytes) -> RedisError:
    text = message.decode(errors="replace")
    if text.startswith("NOSCRIPT"):
        return NoScriptError(text)
    if text.startswith(("NOAUTH", "WRONGPASS")):
        return AuthenticationError(text)
    return ResponseError(text)


def _parse(buffer: bytearray, start: int) -> tuple[Reply | RedisError, int]:
    """One reply from `buffer[start:]` and the position after it; raises `_Incomplete`."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        raise _Incomplete
    kind = buffer[start]
    line = bytes(buffer[start + 1 : end])
    after = end + 2
    if kind == 58:  # ':' integer
        return int(line), after
    if kind == 43:  # '+' simple string
        return line, after
    if kind == 45:  # '-' error
        return _error(line), after
    if kind == 36:  # '$' bulk string
        size = int(line)
        if size < 0:
            return None, after
        if len(buffer) < after + size + 2:
            raise _Incomplete
        return bytes(buffer[after : after + size]), after + size + 2
    if kind == 42:  # '*' array
        count = int(line)
        if count < 0:
            return None, after
        items: list[Any] = []
        for _ in range(count):
            item, after = _parse(buffer, after)
            items.append(item)
        return items, after
    raise RedisConnectionError(f"unexpected reply type {chr(kind)!r} from Redis")


class _Protocol(asyncio.Protocol):
    """Replies matched to callers in order; commands of one loop turn written together; deadlines in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.buffer = bytearray()
        self.lost: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._outgoing: list[bytes] = []
        self._deadlines: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio's.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, command: bytes, timeout_s: float | None) -> asyncio.Future[Any]:
        """Queue `command`; its reply (or error) resolves the returned future, or `TimeoutError` after `timeout_s`."""
        if self.lost is not None or self.transport is None:
            raise RedisConnectionError("connection to Redis lost")
        waiter: asyncio.Future[Any] = self._loop.create_future()
        self.waiting.append(waiter)
        if not self._outgoing:
            # Requests served in the same loop turn share one write (and Redis one read and one wake-up).
            self._loop.call_soon(self._flush)
        self._outgoing.append(command)
        if timeout_s is not None:
            deadlines = self._deadlines
            while deadlines and deadlines[0][1].done():
                deadlines.popleft()
            # One timeout per store, so deadlines arrive in order and one timer serves them all.
            deadlines.append((self._loop.time() + timeout_s, waiter))
            if self._timer is None:
                self._timer = self._loop.call_at(deadlines[0][0], self._expire)
        return waiter

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if self.lost is None and self.transport is not None:
            self.transport.write(b"".join(outgoing))

    def _expire(self) -> None:
        self._timer = None
        now = self._loop.time()
        deadlines = self._deadlines
        expired = False
        while deadlines and (deadlines[0][0] <= now or deadlines[0][1].done()):
            _, waiter = deadlines.popleft()
            if not waiter.done():
                waiter.set_exception(TimeoutError())
                expired = True
        if expired:
            # Whether the server is slow or gone cannot be told apart here: start again on a new connection.
            self._fail(RedisConnectionError("no reply from Redis in time"))
        elif deadlines:
            self._timer = self._loop.call_at(deadlines[0][0], self._expire)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        position = 0
        try:
            while position < len(buffer):
                reply, position = _parse(buffer, position)
                waiter = self.waiting.popleft()
                # A caller that timed out has gone; its reply is read and dropped.
                if not waiter.done():
                    if isinstance(reply, RedisError):
                        waiter.set_exception(reply)
                    else:
                        waiter.set_result(reply)
        except _Incomplete:
            pass
        except Exception as error:  # noqa: BLE001 - a reply we cannot frame poisons the connection
            self._fail(RedisConnectionError(f"unreadable reply from Redis ({type(error).__name__})"))
            return
        del buffer[:position]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError("connection to Redis lost"))

    def _fail(self, error: BaseException) -> None:
        self.lost = error
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadlines.clear()
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)
        if self.transport is not None:
            self.transport.abort()


class ScriptConnection:
    """One pipelined connection to the server a redis-py pool points at (TCP or Unix socket)."""

    def __init__(self, kwargs: Mapping[str, Any]) -> None:
        self._host = str(kwargs.get("host", "localhost"))
        self._port = int(kwargs.get("port", 6379))
        self._path: str | None = kwargs.get("path")
        self._setup: list[bytes] = []
        username, password = kwargs.get("username"), kwargs.get("password")
        if password is not None:
            self._setup.append(pack("AUTH", username, password) if username else pack("AUTH", password))
        if int(kwargs.get("db") or 0):
            self._setup.append(pack("SELECT", int(kwargs["db"])))
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None

    @staticmethod
    def supports(connection_class: type, kwargs: Mapping[str, Any]) -> bool:
        """Plain TCP or Unix sockets without TLS or client-side options this class does not speak."""
        from redis.asyncio.connection import Connection, UnixDomainSocketConnection

        plain = connection_class is Connection or connection_class is UnixDomainSocketConnection
        return plain and not kwargs.get("credential_provider") and int(kwargs.get("protocol") or 2) == 2

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self._path:
            _, protocol = await loop.create_unix_connection(_Protocol, self._path)
        else:
            _, protocol = await loop.create_connection(_Protocol, self._host, self._port)
        try:
            for command in self._setup:
                await protocol.send(command, None)
        except BaseException:
            if protocol.transport is not None:
                protocol.transport.abort()
            raise
        return protocol

    async def _ready(self) -> _Protocol:
        task = self._connecting
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            # Concurrent callers share one connection attempt; a failed one is retried by the next call.
            task = self._connecting = asyncio.ensure_future(self._connect())
        try:
            protocol = await asyncio.shield(task)
        except OSError as error:
            raise RedisConnectionError(f"cannot connect to Redis ({type(error).__name__})") from None
        if protocol.lost is not None:
            self._connecting = None
            raise RedisConnectionError("connection to Redis lost")
        self._protocol = protocol
        return protocol

    async def call(self, command: bytes, timeout_s: float | None = None) -> Any:
        """Send one encoded command and return its reply; an error reply raises (NOSCRIPT as `NoScriptError`).

        `TimeoutError` after `timeout_s` (connecting included); use one timeout per connection.
        """
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            if protocol is not None:
                self._protocol = self._connecting = None
            # Connected and sent by a task of its own: a caller cancelled while connecting still gets
            # its command sent, as it would have been once queued on a live connection.
            return await asyncio.shield(self._connect_and_send(command, timeout_s))
        return await protocol.send(command, timeout_s)

    async def _connect_and_send(self, command: bytes, timeout_s: float | None) -> Any:
        async with asyncio.timeout(timeout_s):
            protocol = await self._ready()
        return await protocol.send(command, timeout_s)

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
