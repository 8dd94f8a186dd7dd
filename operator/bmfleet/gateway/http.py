"""A small HTTP/1.1 server on asyncio streams: one coroutine per connection instead of one thread.

Every device holds a long poll open most of the time, so a gateway carries thousands of idle connections. With
ThreadingHTTPServer each is a thread (8 MiB of stack reserved, a GIL hand-off per wake-up, thread creation per
request because the agent opens one connection per request); here an idle poll is a parked future. The parser
takes only what the agent and ordinary tools send: Content-Length bodies (no chunked uploads), bounded headers,
keep-alive for clients that want it, and a deadline on every read so a slow client cannot hold a slot for free.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

log = logging.getLogger(__name__)

MAX_HEADER = 16 << 10
MAX_BODY = 1 << 20
SHUTDOWN = 3.0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    peer: str

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


BodyWriter = Callable[[asyncio.StreamWriter], Awaitable[int]]


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: BodyWriter | None = None  # writes exactly `length` bytes itself (blobs)
    length: int = 0


def json_response(status: int, doc: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(doc, separators=(",", ":")).encode()
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})


def error(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """The protocol's error body: {"error": <Reason>, "message": <text for people>}."""
    return json_response(status, {"error": reason, "message": message}, headers)


Handler = Callable[[Request], Awaitable[Response]]
Observer = Callable[[Request, Response, int], None]  # (request, response, body bytes written)


class _BadRequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpServer:
    """Serves `handler` on one listening socket. `connections` counts open ones (for metrics and limits)."""

    def __init__(
        self,
        handler: Handler,
        observe: Observer | None = None,
        header_timeout: float = 15.0,
        max_connections: int = 20000,
    ) -> None:
        self.handler = handler
        self.observe = observe
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.connections = 0
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        """Listen; returns the bound port (0 picks one). A TLS close waits at most SHUTDOWN s for the peer's
        close_notify (the agent just drops the socket; the default 30 s keeps ~50 KiB per finished request)."""
        extra = {"ssl_handshake_timeout": self.header_timeout, "ssl_shutdown_timeout": SHUTDOWN} if tls else {}
        self.server = await asyncio.start_server(
            self._serve, host, port, ssl=tls, backlog=4096, limit=MAX_HEADER, **extra
        )
        port_: int = self.server.sockets[0].getsockname()[1]
        return port_

    async def close(self) -> None:
        """Stop listening and drop the connections still open (long polls: the agents simply poll again)."""
        if self.server is not None:
            self.server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        try:
            if self.connections > self.max_connections:
                await self._write(writer, error(503, "Unavailable", "too many connections", {"Retry-After": "5"}))
                return
            peer = writer.get_extra_info("peername")
            host = str(peer[0]) if isinstance(peer, tuple) else "?"
            while await self._one(reader, writer, host):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError, OSError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            writer.transport.abort()  # shutting down
        finally:
            self.connections -= 1
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> bool:
        """One request/response. Returns whether the connection stays open for another."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.header_timeout)
        except asyncio.IncompleteReadError as e:
            if e.partial.strip():
                await self._write(writer, error(400, "BadRequest", "incomplete request"))
            return False
        except asyncio.LimitOverrunError:
            await self._write(writer, error(431, "BadRequest", "request header too large"))
            return False
        try:
            req, keep = self._parse(head, peer)
            length = req.headers.get("content-length", "0")
            if not length.isdigit():
                raise _BadRequestError(400, "bad Content-Length")
            if int(length) > MAX_BODY:
                raise _BadRequestError(413, "request body too large")
            if int(length):
                req.body = await asyncio.wait_for(reader.readexactly(int(length)), self.header_timeout)
        except _BadRequestError as e:
            await self._write(writer, error(e.status, "BadRequest", str(e)))
            return False
        try:
            resp = await self.handler(req)
        except Exception:
            log.exception("%s %s failed", req.method, req.path)
            resp = error(500, "InternalError", "internal error")
        sent = await self._write(writer, resp, keep, head_only=req.method == "HEAD")
        if self.observe is not None:
            self.observe(req, resp, sent)
        return keep and sent == (resp.length if resp.stream else len(resp.body))

    @staticmethod
    def _parse(head: bytes, peer: str) -> tuple[Request, bool]:
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise _BadRequestError(400, "malformed request line") from None
        if not version.startswith("HTTP/1.") or not target.startswith("/"):
            raise _BadRequestError(400, "unsupported request")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequestError(400, "malformed header")
            key = name.lower()
            if key in headers and key in ("content-length", "authorization", "host", "range"):
                raise _BadRequestError(400, f"repeated {name} header")
            headers[key] = value.strip()
        if "transfer-encoding" in headers:
            raise _BadRequestError(501, "chunked request bodies are not supported")
        path, _, query = target.partition("?")
        conn = headers.get("connection", "").lower()
        keep = (version == "HTTP/1.1" and "close" not in conn) or "keep-alive" in conn
        return Request(method, path, dict(parse_qsl(query)), headers, b"", peer), keep

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, resp: Response, keep: bool = False, head_only: bool = False) -> int:
        length = resp.length if resp.stream else len(resp.body)
        try:
            phrase = HTTPStatus(resp.status).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {resp.status} {phrase}"]
        lines += [f"{k}: {v}" for k, v in resp.headers.items()]
        lines += [f"Content-Length: {length}", "Connection: " + ("keep-alive" if keep else "close"), "", ""]
        writer.write("\r\n".join(lines).encode("latin-1"))
        if head_only:
            await writer.drain()
            return length
        if resp.stream is None:
            writer.write(resp.body)
            await writer.drain()
            return length
        return await resp.stream(writer)
