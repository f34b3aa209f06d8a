"""One bounded HTTP/1.1 exchange, for every request this package makes (the fleet's remote hosts).

fetch() checks the URL first (http:// only, a host name of at most 253 characters, a port from 1
to 65535), then holds the whole exchange — connecting, sending, the status line, the headers and
every read of the body — to one deadline: each socket operation gets the time that is left as its
timeout, and none starts after the deadline. The body is capped at `max_bytes`. A server that
trickles bytes, never answers or never stops sending therefore costs at most `timeout` seconds
(plus the name lookup, which the socket API cannot bound) and `max_bytes` of memory, and ends with a
FetchError whose message says which. Statuses are not errors here: the caller reads
Response.status (raise_for_status() when any non-2xx is one). Standard library only.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import json as jsonlib
import math
import re
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_BYTES = 16 << 20
MAX_HOST_LENGTH = 253
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


class FetchError(Exception):
    """The exchange did not complete; the message (one line) says what happened."""


class InvalidURL(FetchError, ValueError):
    """The URL is not one fetch() talks to (checked before any connection)."""


class DeadlineExceeded(FetchError):
    """The whole exchange took longer than its timeout."""


class ResponseTooLarge(FetchError):
    """The reply's body is (or says it is) larger than max_bytes."""


class HTTPStatusError(FetchError):
    """A reply whose status the caller treats as a failure (raise_for_status())."""

    def __init__(self, message: str, status: int, body: bytes):
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass
class Response:
    url: str
    status: int
    reason: str
    headers: Dict[str, str]  # names in lower case
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        """The body as JSON; a FetchError when it is not."""
        try:
            return jsonlib.loads(self.body)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise FetchError(f"{self.url}: the reply (HTTP {self.status}) is not JSON: {e}") from None

    def raise_for_status(self) -> "Response":
        if not self.ok:
            raise HTTPStatusError(f"{self.url}: HTTP {self.status} {self.reason}".rstrip(), self.status, self.body)
        return self


def parse_url(url: str) -> Tuple[str, int, str]:
    """(host, port, request target) of an http:// URL; InvalidURL says what is wrong with it."""
    if not isinstance(url, str) or not url:
        raise InvalidURL(f"not a URL: {url!r}")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidURL(f"{url!r}: a URL may not contain spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:  # a bad port ("Port out of range 0-65535", not a number) or bad brackets
        raise InvalidURL(f"{url!r}: {e} (the port must be between 1 and 65535)") from None
    if parts.scheme.lower() != "http":
        raise InvalidURL(f"{url!r}: only http:// URLs are supported")
    if parts.username is not None or parts.password is not None:
        raise InvalidURL(f"{url!r}: credentials in the URL are not supported (send a header)")
    host = parts.hostname or ""
    if not host:
        raise InvalidURL(f"{url!r}: no host")
    if len(host) > MAX_HOST_LENGTH:
        raise InvalidURL(f"{url[:40]!r}…: the host name is longer than {MAX_HOST_LENGTH} characters")
    if port is None:
        port = 80
    if not 1 <= port <= 65535:
        raise InvalidURL(f"{url!r}: the port must be between 1 and 65535 (got {port})")
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidURL(f"{url!r}: {host!r} in brackets is not an IPv6 address") from None
    elif not _HOST_NAME.fullmatch(host):
        raise InvalidURL(f"{url!r}: {host!r} is not a host name or IPv4 address")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return host, port, target


class _Deadline:
    def __init__(self, timeout: float):
        self.timeout = timeout
        self.end = time.monotonic() + timeout

    def left(self) -> float:
        """Seconds left; socket.timeout (a TimeoutError) once there are none."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        return left


class _DeadlineReader(io.RawIOBase):
    """The reading side of the connection: every receive is armed with the time left."""

    def __init__(self, owner: "_DeadlineSocket"):
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        sock = self._owner.sock
        sock.settimeout(self._owner.deadline.left())
        return sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._owner.release()


class _DeadlineSocket:
    """The socket as http.client uses it (sendall, makefile, close), under one deadline. Like a
    socket, it stays open while a file made from it is (http.client closes the connection before
    the reply is read when the server will close it)."""

    def __init__(self, sock: socket.socket, deadline: _Deadline):
        self.sock, self.deadline = sock, deadline
        self._files = 0
        self._closed = False

    def sendall(self, data) -> None:
        self.sock.settimeout(self.deadline.left())  # since Python 3.5 the timeout bounds the whole send
        self.sock.sendall(data)

    def makefile(self, mode: str = "rb", *args, **kwargs):
        if mode != "rb":
            raise ValueError(f"only binary reading is supported (got mode {mode!r})")
        self._files += 1
        return io.BufferedReader(_DeadlineReader(self))

    def release(self) -> None:
        self._files -= 1
        if self._closed and self._files <= 0:
            self.sock.close()

    def close(self) -> None:
        self._closed = True
        if self._files <= 0:
            self.sock.close()

    def __getattr__(self, name):
        return getattr(self.sock, name)


class _Connection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, deadline: _Deadline):
        super().__init__(host, port, timeout=deadline.timeout)
        self._deadline = deadline

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self._deadline.left())
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.sock = _DeadlineSocket(sock, self._deadline)


def fetch(url: str, method: str = "GET", body: Optional[bytes] = None, json=None,
          headers: Optional[Dict[str, str]] = None, timeout: float = DEFAULT_TIMEOUT,
          max_bytes: int = DEFAULT_MAX_BYTES) -> Response:
    """One request and its whole reply, within `timeout` seconds and `max_bytes` of body.

    `json` (any JSON value) is sent as the body with Content-Type application/json. Raises
    InvalidURL before connecting, DeadlineExceeded, ResponseTooLarge, or FetchError for anything
    else that stops the exchange (refused, reset, a malformed reply); an HTTP error status is a
    Response, not an exception."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
            or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds (got {timeout!r})")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"max_bytes must be an integer ≥ 0 (got {max_bytes!r})")
    host, port, target = parse_url(url)
    sent_headers = dict(headers or {})
    if json is not None:
        body = jsonlib.dumps(json).encode()
        sent_headers.setdefault("Content-Type", "application/json")
    deadline = _Deadline(float(timeout))
    conn = _Connection(host, port, deadline)
    what = f"{method} {url}"
    reply = None
    try:
        conn.request(method, target, body=body, headers=sent_headers)
        reply = conn.getresponse()
        declared = reply.getheader("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
            raise ResponseTooLarge(f"{what}: the reply's body is {int(declared)} bytes, more than the "
                                   f"{max_bytes} allowed")
        chunks, total = [], 0
        while True:
            chunk = reply.read(min(65536, max_bytes + 1 - total))
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise ResponseTooLarge(f"{what}: the reply's body is larger than the {max_bytes} bytes allowed")
            chunks.append(chunk)
        return Response(url, reply.status, reply.reason or "", {k.lower(): v for k, v in reply.getheaders()},
                        b"".join(chunks))
    except socket.timeout:  # TimeoutError: a receive, send or connect ran into the deadline
        raise DeadlineExceeded(f"{what}: no complete reply within {timeout:g} s") from None
    except http.client.HTTPException as e:
        raise FetchError(f"{what}: malformed or cut-short reply ({type(e).__name__}: {e})") from None
    except OSError as e:
        raise FetchError(f"{what}: {e.strerror or e}") from None
    finally:
        if reply is not None:
            reply.close()
        conn.close()
