"""A lean HTTP/1.1 client for the load tester's timing path, on asyncio Protocols.

A load tester must own the code between "send now" and "the byte arrived": a general
client (aiohttp's) spends more CPU per request than the whole exchange is worth at
thousands of requests per second, and its buffering hides when bytes really arrived.
This one does only what the load tester needs:

* a keep-alive connection pool to one origin (``http`` or ``https``), most recently
  used connection first, opened on demand up to ``limit``, at most ``max_connecting``
  at a time (callers wait beyond either for one to be released or opened);
* each request goes out in one ``transport.write`` of pre-encoded bytes;
* the response is parsed in ``data_received`` as it arrives: status line and headers,
  then a ``Content-Length``, ``Transfer-Encoding: chunked`` or read-until-close body,
  split anywhere across reads; each piece of body is handed to the exchange with the
  ``perf_counter`` timestamp of the read that brought it, so a streamed answer's events
  are timed when their bytes arrived, not when a task got round to them;
* timeouts are one timer per exchange, checked lazily when it fires (first byte of the
  body, gap between reads, total), instead of a timer rescheduled on every read.

No redirects, proxies, compression (none is asked for), or pipelining. A connection the
server closes, resets, or that breaks the protocol fails the exchange on it with
``TransientError`` and is never reused; ``Connection: close`` is honoured.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from time import perf_counter as _now
from typing import Protocol
from urllib.parse import urlsplit

from writ_async.errors import CallTimeout, ConfigError, StaleConnection, TransientError

MAX_HEAD = 64 * 1024  # a status line and headers longer than this are not HTTP we accept

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _UNTIL_CLOSE, _IDLE = range(8)


class Exchange(Protocol):
    """What a connection reports one request's response to (all on the event loop)."""

    def on_head(self, status: int, headers: dict[str, str], now: float) -> None: ...

    def on_body(self, data: bytes, now: float) -> None: ...

    def on_end(self, now: float) -> None: ...

    def on_error(self, error: BaseException) -> None: ...


class Origin:
    """Where requests go: scheme, host, port and the request-target prefix of a URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("<command line>", f"not an http(s) URL: {url!r}", "--base-url")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = parts.path.rstrip("/")
        default = (self.scheme == "http" and self.port == 80) or (
            self.scheme == "https" and self.port == 443)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if default else f"{host}:{self.port}"

    def __repr__(self) -> str:
        return f"<Origin {self.scheme}://{self.authority}{self.path}>"


class Connection(asyncio.Protocol):
    """One keep-alive connection, carrying one exchange at a time."""

    __slots__ = ("_buf", "_chunk_left", "_exchange", "_left", "_pool", "_state",
                 "_status", "closed", "keep_alive", "served", "transport")

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self._exchange: Exchange | None = None
        self._state = _IDLE
        self._buf = b""
        self._left = 0  # body bytes still due (Content-Length)
        self._chunk_left = 0
        self._status = 0
        self.keep_alive = True
        self.closed = False
        self.served = 0  # exchanges completed on it: a reused connection may be stale

    def __repr__(self) -> str:
        return f"<Connection state={self._state} closed={self.closed}>"

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._forget(self)
        exchange = self._exchange
        if exchange is None:
            return
        if self._state == _UNTIL_CLOSE:
            self._finish(_now())  # the body ran to the close, as its framing said
            return
        self._exchange = None
        what = "reset" if exc is not None else "closed"
        early = self._state == _HEAD and not self._buf
        stage = "before the response" if early else "mid-response"
        detail = f": {exc}" if exc is not None else ""
        # On a connection that had served before, nothing back means the server closed
        # it while idle (its keep-alive policy) as the request went out.
        kind = StaleConnection if early and self.served else TransientError
        exchange.on_error(kind(f"connection {what} by the server {stage}{detail}",
                               endpoint=self._pool.name))

    def data_received(self, data: bytes) -> None:
        now = _now()
        exchange = self._exchange
        if exchange is None:
            # Bytes nobody asked for (a server talking out of turn): the connection can
            # no longer be trusted to frame the next response.
            self.abort()
            return
        if self._state == _HEAD:
            data = self._head(data, exchange, now)
            if not data and self._state == _HEAD:
                return
        state = self._state
        if state == _LENGTH:
            left = self._left
            if len(data) > left:
                self._protocol_error(f"{len(data) - left} bytes past Content-Length")
                return
            self._left = left - len(data)
            if data:
                exchange.on_body(data, now)
                if self._exchange is not exchange:
                    return  # it gave up (and dropped the connection)
            if self._left == 0:
                self._finish(now)
        elif state == _UNTIL_CLOSE:
            if data:
                exchange.on_body(data, now)
        elif state != _IDLE:
            self._chunked(data, exchange, now)

    def eof_received(self) -> bool | None:
        return False  # close our side too; connection_lost decides what it meant

    # -- parsing -----------------------------------------------------------------------

    def _head(self, data: bytes, exchange: Exchange, now: float) -> bytes:
        buf = self._buf + data if self._buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._protocol_error("response head too long")
            else:
                self._buf = buf
            return b""
        self._buf = b""
        head, rest = buf[:end], buf[end + 4:]
        lines = head.split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        try:
            version, status = status_line[0], int(status_line[1])
        except (IndexError, ValueError):
            self._protocol_error(f"not an HTTP status line: {lines[0][:80]!r}")
            return b""
        if not version.startswith(b"HTTP/1."):
            self._protocol_error(f"not HTTP/1.x: {lines[0][:80]!r}")
            return b""
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                self._protocol_error(f"bad header line: {line[:80]!r}")
                return b""
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if 100 <= status < 200:  # an interim response (100 Continue): the real one follows
            return self._head(rest, exchange, now) if rest else b""
        connection = headers.get("connection", "").lower()
        self.keep_alive = ("close" not in connection) if version == b"HTTP/1.1" else (
            "keep-alive" in connection)
        self._status = status
        exchange.on_head(status, headers, now)
        if self._exchange is not exchange:
            return b""  # the exchange gave up on seeing the head
        if status in (204, 304):
            self._finish(now)
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = _CHUNK_SIZE
        elif "content-length" in headers:
            try:
                self._left = int(headers["content-length"])
            except ValueError:
                self._protocol_error(f"bad Content-Length {headers['content-length']!r}")
                return b""
            self._state = _LENGTH
            if self._left == 0:
                if rest:
                    self._protocol_error("bytes after an empty body")
                else:
                    self._finish(now)
                return b""
        else:
            self._state = _UNTIL_CLOSE
            self.keep_alive = False
        return rest

    def _chunked(self, data: bytes, exchange: Exchange, now: float) -> None:
        buf = self._buf + data if self._buf else data
        self._buf = b""
        pos, n = 0, len(buf)
        while pos < n or self._state == _TRAILER:
            state = self._state
            if state == _CHUNK_DATA:
                take = min(self._chunk_left, n - pos)
                exchange.on_body(buf[pos:pos + take], now)
                if self._exchange is not exchange:
                    return
                pos += take
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._state = _CHUNK_CRLF
                continue
            if state == _CHUNK_CRLF:
                if n - pos < 2:
                    break
                if buf[pos:pos + 2] != b"\r\n":
                    self._protocol_error("chunk not followed by CRLF")
                    return
                pos += 2
                self._state = _CHUNK_SIZE
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if n - pos > MAX_HEAD:
                    self._protocol_error("chunk size line too long")
                    return
                break
            line = buf[pos:end]
            pos = end + 2
            if state == _CHUNK_SIZE:
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self._protocol_error(f"bad chunk size line {line[:40]!r}")
                    return
                if size < 0:
                    self._protocol_error(f"bad chunk size line {line[:40]!r}")
                    return
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._chunk_left = size
                    self._state = _CHUNK_DATA
            elif not line:  # _TRAILER: the empty line that ends the message
                if pos < n:
                    self._protocol_error("bytes after the last chunk")
                    return
                self._finish(now)
                return
        if pos < n:
            self._buf = buf[pos:]

    # -- ends --------------------------------------------------------------------------

    def _finish(self, now: float) -> None:
        exchange = self._exchange
        self._exchange = None
        self._state = _IDLE
        self.served += 1
        if self.closed:
            pass
        elif not self.keep_alive:
            self.abort()
        else:
            self._pool._release(self)
        if exchange is not None:
            exchange.on_end(now)

    def _protocol_error(self, why: str) -> None:
        exchange = self._exchange
        self._exchange = None
        self.abort()
        if exchange is not None:
            exchange.on_error(TransientError(f"HTTP protocol error: {why}",
                                             endpoint=self._pool.name))

    def start(self, payload: bytes, exchange: Exchange) -> None:
        """Send one request (already encoded) and report its response to ``exchange``."""
        assert self._exchange is None and self.transport is not None
        self._exchange = exchange
        self._state = _HEAD
        self._buf = b""
        self.transport.write(payload)

    def abort(self) -> None:
        """Drop the connection now (an exchange given up on, or a broken protocol)."""
        self._exchange = None
        self.closed = True
        self._pool._forget(self)
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """Keep-alive connections to one origin (see the module docstring)."""

    def __init__(self, origin: Origin, *, limit: int = 10_000, connect_timeout: float = 10.0,
                 name: str = "loadtest", max_connecting: int = 64) -> None:
        self.origin, self.limit, self.name = origin, limit, name
        self.max_connecting = max_connecting
        self._connecting = 0
        self.connect_timeout = connect_timeout
        self._idle: list[Connection] = []
        self._open = 0  # connections open or opening
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if origin.scheme == "https" else None)
        self._all: set[Connection] = set()
        self.opened = 0  # connections opened over the pool's life

    def __repr__(self) -> str:
        return (f"<Pool {self.origin!r} open={self._open} idle={len(self._idle)} "
                f"opened={self.opened}>")

    async def acquire(self, *, fresh: bool = False) -> Connection:
        """An idle connection, else a new one (``fresh``: always a new one); waits while
        ``limit`` are open, or while ``max_connecting`` are being opened (then a released
        one is as likely to come first: past an endpoint's capacity, opening a connection
        per late request would only add work on both sides)."""
        idle = [] if fresh else self._idle
        while True:
            while idle:
                conn = idle.pop()
                if not conn.closed:
                    return conn
            if self._open < self.limit and self._connecting < self.max_connecting:
                break
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # it was woken: pass the turn on
                raise
        self._open += 1
        self._connecting += 1
        try:
            conn = await self._connect()
        except BaseException:
            self._open -= 1
            raise
        finally:
            self._connecting -= 1
            self._wake()
        self._all.add(conn)
        self.opened += 1
        return conn

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(self), origin.host, origin.port, ssl=self._ssl,
                    server_hostname=origin.host if self._ssl else None)
        except TimeoutError:
            raise CallTimeout("connect", self.connect_timeout, endpoint=self.name) from None
        except OSError as exc:
            raise TransientError(f"cannot connect to {origin.host}:{origin.port}: {exc}",
                                 endpoint=self.name) from None
        sock = conn.transport.get_extra_info("socket") if conn.transport else None
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _release(self, conn: Connection) -> None:
        self._idle.append(conn)
        self._wake()

    def _forget(self, conn: Connection) -> None:
        if conn in self._all:
            self._all.discard(conn)
            self._open -= 1
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        for conn in list(self._all):
            conn.abort()
        self._idle.clear()
