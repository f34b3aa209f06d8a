"""FleetSupervisor: completions dispatched over several hosts — local `bitnet run` processes
(through a RuntimeSupervisor each) and remote `bitnet serve` instances given by URL — with a
concurrency limit per host and failover: a host that cannot be reached, answers 5xx or whose
process fails is marked down for `down_for` seconds and the completion is retried on another one
(docs/runtime_supervisor.md). Standard library only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .httpfetch import DEFAULT_MAX_BYTES, FetchError, HTTPStatusError, fetch, parse_url
from .supervisor import RuntimeSupervisor

# A remote exchange always has a deadline: with timeout=None (no limit for local processes) a
# remote host still gets at most this long.
REMOTE_TIMEOUT_CEILING = 3600.0


@dataclass
class Host:
    """A local host runs `argv` + ["-p", PROMPT, "-n", N] (e.g. ["bitnet", "run", "-m", "m.gguf"]);
    a remote one is the base URL of a `bitnet serve` (POST /completion). Exactly one of the two."""
    name: str
    url: Optional[str] = None
    argv: Optional[List[str]] = None
    concurrency: int = 1
    # bookkeeping
    in_flight: int = 0
    completed: int = 0
    failures: int = 0
    down_until: float = 0.0
    _semaphore: Optional[asyncio.Semaphore] = field(default=None, repr=False)
    _loop: Optional[asyncio.AbstractEventLoop] = field(default=None, repr=False)
    _runner: Optional[RuntimeSupervisor] = field(default=None, repr=False)

    def __post_init__(self):
        if (self.url is None) == (self.argv is None):
            raise ValueError(f"host {self.name!r}: give either url or argv")
        if self.concurrency < 1:
            raise ValueError(f"host {self.name!r}: concurrency must be ≥ 1")
        if self.url is not None:
            try:
                parse_url(self.url.rstrip("/") + "/completion")
            except ValueError as e:  # InvalidURL is a ValueError
                raise ValueError(f"host {self.name!r}: {e}") from None


@dataclass
class FleetResult:
    host: str
    text: str
    attempts: int
    failed_hosts: List[str]


class HostFailure(Exception):
    """This host could not serve the request (down, 5xx, process failed): try another."""


class HostBusy(Exception):
    """This host refused for load (503): try another without marking it down."""


class NoHostAvailable(Exception):
    pass


class FleetSupervisor:
    def __init__(self, hosts: List[Host], retries: int = 2, down_for: float = 30.0,
                 timeout: Optional[float] = 120.0, max_response_bytes: int = DEFAULT_MAX_BYTES):
        """timeout: seconds for one completion on one host (a local process, or the whole HTTP
        exchange with a remote one); max_response_bytes: the largest reply read from a remote host
        (a larger one is that host's failure)."""
        if not hosts:
            raise ValueError("a fleet needs at least one host")
        names = [h.name for h in hosts]
        if len(set(names)) != len(names):
            raise ValueError("host names must be unique")
        self.hosts = hosts
        self.retries = retries
        self.down_for = down_for
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes

    def status(self) -> List[Dict[str, object]]:
        now = time.monotonic()
        return [{"name": h.name, "up": h.down_until <= now, "in_flight": h.in_flight, "completed": h.completed,
                 "failures": h.failures} for h in self.hosts]

    async def complete(self, prompt: str, n_predict: int = 64, **params) -> FleetResult:
        """One completion on the least loaded host that is up; on a host failure, the next one."""
        failed: List[str] = []
        attempts = 0
        while attempts <= self.retries:
            host = self._pick(exclude=failed)
            if host is None:
                break
            attempts += 1
            try:
                text = await self._on(host, prompt, n_predict, params)
                return FleetResult(host.name, text, attempts, failed)
            except HostBusy:
                failed.append(host.name)  # not down: just not this time
            except HostFailure:
                host.failures += 1
                host.down_until = time.monotonic() + self.down_for
                failed.append(host.name)
        raise NoHostAvailable(f"no host could serve the request (tried: {', '.join(failed) or 'none up'})")

    async def shutdown(self) -> None:
        for h in self.hosts:
            if h._runner is not None:
                await h._runner.shutdown()

    # ---- internals -------------------------------------------------------------------------
    def _pick(self, exclude: List[str]) -> Optional[Host]:
        now = time.monotonic()
        up = [h for h in self.hosts if h.down_until <= now and h.name not in exclude]
        if not up:
            return None
        return min(up, key=lambda h: (h.in_flight / h.concurrency, h.in_flight))

    async def _on(self, host: Host, prompt: str, n_predict: int, params: Dict) -> str:
        loop = asyncio.get_running_loop()
        if host._semaphore is None or host._loop is not loop:  # a semaphore belongs to one event loop
            host._semaphore, host._loop = asyncio.Semaphore(host.concurrency), loop
        async with host._semaphore:
            host.in_flight += 1
            try:
                text = await (self._remote(host, prompt, n_predict, params) if host.url
                              else self._local(host, prompt, n_predict, params))
                host.completed += 1
                return text
            finally:
                host.in_flight -= 1

    async def _local(self, host: Host, prompt: str, n_predict: int, params: Dict) -> str:
        if host._runner is None:
            host._runner = RuntimeSupervisor(max_concurrency=host.concurrency, timeout=self.timeout)
        argv = list(host.argv) + ["-p", prompt, "-n", str(n_predict)]
        if "temperature" in params:
            argv += ["--temp", str(params["temperature"])]
        r = await host._runner.schedule(argv, queue_id=host.name)
        if r.status != "ok":
            raise HostFailure(f"{host.name}: {r.status} (exit {r.returncode}): {r.stderr.strip()[-200:]}")
        return r.stdout

    async def _remote(self, host: Host, prompt: str, n_predict: int, params: Dict) -> str:
        body = dict(params, prompt=prompt, n_predict=n_predict)

        def post() -> str:
            # Bounded: the whole exchange within the timeout, the reply within max_response_bytes,
            # so a host that trickles bytes or never stops sending fails over like a dead one.
            try:
                r = fetch(host.url.rstrip("/") + "/completion", method="POST", json=body,
                          timeout=self.timeout if self.timeout is not None else REMOTE_TIMEOUT_CEILING,
                          max_bytes=self.max_response_bytes)
            except FetchError as e:
                raise HostFailure(f"{host.name}: {e}") from None
            if r.status == 503:
                raise HostBusy(f"{host.name}: 503")
            if 400 <= r.status < 500:  # a 4xx is the request's fault: no other host will do better
                raise HTTPStatusError(f"{host.name}: HTTP {r.status}: {r.text()[:200]}", r.status, r.body)
            if not 200 <= r.status < 300:  # 5xx, or a status a bitnet server does not send
                raise HostFailure(f"{host.name}: HTTP {r.status}")
            try:
                reply = r.json()
                content = reply["content"]
            except (FetchError, KeyError, TypeError) as e:
                raise HostFailure(f"{host.name}: not a completion reply ({e})") from None
            if not isinstance(content, str):
                raise HostFailure(f"{host.name}: not a completion reply (content is not text)")
            return content

        return await asyncio.get_running_loop().run_in_executor(None, post)
