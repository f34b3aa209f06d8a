"""RuntimeSupervisor: runs `bitnet` child processes on asyncio with a concurrency limit,
per-task timeouts that kill the child's whole process group, retries with exponential backoff for
retryable failures, and JSONL scheduling events tagged with queue ids (docs/runtime_supervisor.md).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, Iterable, List, Optional

from .runtime import child_env, redact

EVENT_SCHEMA = "bitnet.supervisor"
EVENT_SCHEMA_VERSION = 1
EX_TEMPFAIL = 75  # sysexits.h: "try again later"


@dataclass
class TaskResult:
    task_id: str
    queue_id: str
    argv: List[str]
    status: str  # ok, failed, timeout, cancelled
    returncode: Optional[int]
    attempts: int
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0


@dataclass
class _Task:
    task_id: str
    queue_id: str
    argv: List[str]
    timeout: Optional[float]
    retries: int
    env: Dict[str, Optional[str]]
    state: str = "queued"  # queued, running, backoff
    attempt: int = 0
    pid: Optional[int] = None
    started: float = field(default_factory=time.monotonic)


class RuntimeSupervisor:
    def __init__(self, max_concurrency: int = 1, timeout: Optional[float] = None, retries: int = 0,
                 backoff: float = 0.5, backoff_max: float = 30.0,
                 retry_exit_codes: Iterable[int] = (EX_TEMPFAIL,), retry_on_timeout: bool = True,
                 events_path: Optional[str] = None, max_threads_per_task: Optional[int] = None,
                 kill_grace: float = 2.0):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be ≥ 1 (got {max_concurrency})")
        if retries < 0:
            raise ValueError(f"retries must be ≥ 0 (got {retries})")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds (got {timeout})")
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.retry_exit_codes = set(retry_exit_codes)
        self.retry_on_timeout = retry_on_timeout
        self.events_path = events_path
        self.max_threads_per_task = max_threads_per_task
        self.kill_grace = kill_grace
        self._semaphore: Optional[asyncio.Semaphore] = None
        self._tasks: Dict[str, _Task] = {}
        self._futures: Dict[str, asyncio.Task] = {}
        self._ids = itertools.count(1)
        self._closed = False

    # ---- public API ------------------------------------------------------------------------
    def schedule(self, argv: List[str], queue_id: str = "default", timeout: Optional[float] = None,
                 retries: Optional[int] = None, env: Optional[Dict[str, Optional[str]]] = None,
                 task_id: Optional[str] = None) -> "asyncio.Task[TaskResult]":
        """Queues one child process (an argument list, never a shell string). Call inside a running
        event loop; await the returned task for its TaskResult. `env` changes the inherited
        environment for every attempt, retries included (None unsets a variable): pass a
        configuration's env() with its args(), e.g. a server's API key, which is never in argv."""
        if self._closed:
            raise RuntimeError("supervisor is shut down: no new tasks")
        if not isinstance(argv, (list, tuple)) or not argv or not all(isinstance(a, str) for a in argv):
            raise TypeError("argv must be a non-empty list of strings (no shell command lines)")
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        task_id = task_id or f"t{next(self._ids)}"
        if task_id in self._tasks:
            raise ValueError(f"task id {task_id!r} is already scheduled")
        t = _Task(task_id, queue_id, list(argv), self.timeout if timeout is None else timeout,
                  self.retries if retries is None else retries, dict(env or {}))
        self._tasks[task_id] = t
        self._emit("queued", t, argv=redact(argv))
        fut = asyncio.get_running_loop().create_task(self._run(t))
        self._futures[task_id] = fut
        return fut

    def active_tasks(self) -> List[Dict[str, object]]:
        """Tasks queued, running or waiting to retry: id, queue id, state, attempt, pid."""
        return [{"task_id": t.task_id, "queue_id": t.queue_id, "state": t.state, "attempt": t.attempt,
                 "pid": t.pid} for t in self._tasks.values()]

    async def shutdown(self) -> List[TaskResult]:
        """Stops accepting work, cancels queued tasks and kills running ones (process groups)."""
        self._closed = True
        futures = list(self._futures.values())
        self._emit("shutdown", None, pending=len(futures))
        for f in futures:
            f.cancel()
        return [r for r in await asyncio.gather(*futures, return_exceptions=True) if isinstance(r, TaskResult)]

    # ---- internals -------------------------------------------------------------------------
    async def _run(self, t: _Task) -> TaskResult:
        start = time.monotonic()
        result = TaskResult(t.task_id, t.queue_id, t.argv, "cancelled", None, 0)
        try:
            while True:
                result = await self._attempt(t)
                if result.status == "ok" or t.attempt > t.retries or not self._retryable(result):
                    break
                delay = min(self.backoff_max, self.backoff * 2 ** (t.attempt - 1))
                t.state = "backoff"
                self._emit("retry_scheduled", t, delay_s=delay, after=result.status, returncode=result.returncode)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            # Our own cancellation (shutdown): report it as a result rather than an exception.
            result = TaskResult(t.task_id, t.queue_id, t.argv, "cancelled", result.returncode, t.attempt,
                                result.stdout, result.stderr)
            self._emit("cancelled", t)
        finally:
            self._tasks.pop(t.task_id, None)
            self._futures.pop(t.task_id, None)
        result.duration_s = time.monotonic() - start
        result.attempts = t.attempt
        self._emit("finished", t, status=result.status, returncode=result.returncode, duration_s=result.duration_s)
        return result

    def _retryable(self, r: TaskResult) -> bool:
        if r.status == "timeout":
            return self.retry_on_timeout
        return r.returncode is not None and (r.returncode < 0 or r.returncode in self.retry_exit_codes)

    def _child_env(self, t: _Task) -> Dict[str, str]:
        env = child_env(t.env)
        # Tags the child's own telemetry with the queue and task, so both logs join on it.
        env.setdefault("BITNET_RUN_ID", f"{t.queue_id}/{t.task_id}/{t.attempt}")
        if self.max_threads_per_task:
            env["BITNET_MAX_THREADS"] = str(self.max_threads_per_task)
        return env

    async def _attempt(self, t: _Task) -> TaskResult:
        assert self._semaphore is not None
        async with self._semaphore:
            t.attempt += 1  # counted when it starts: a task cancelled while queued made no attempt
            t.state = "running"
            began = time.monotonic()
            # A new session makes the child a process-group leader: a timeout kills everything it
            # started, not just the direct child.
            proc = await asyncio.create_subprocess_exec(
                *t.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self._child_env(t), start_new_session=True)
            t.pid = proc.pid
            self._emit("started", t, pid=proc.pid)
            comm = asyncio.ensure_future(proc.communicate())
            status = "ok"
            try:
                done, _ = await asyncio.wait({comm}, timeout=t.timeout)
                if not done:
                    status = "timeout"
                    self._emit("timeout", t, pid=proc.pid, timeout_s=t.timeout)
                    await self._kill_group(proc)
                out, err = await comm
            except asyncio.CancelledError:
                await self._kill_group(proc)
                comm.cancel()
                raise
            finally:
                t.pid = None
            rc = proc.returncode
            if status == "ok" and rc != 0:
                status = "failed"
            self._emit("exited", t, returncode=rc, status=status, duration_s=time.monotonic() - began)
            return TaskResult(t.task_id, t.queue_id, t.argv, status, rc, t.attempt,
                              out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    async def _kill_group(self, proc) -> None:
        """SIGTERM to the group, SIGKILL after the grace period."""
        for sig, wait in ((signal.SIGTERM, self.kill_grace), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            if wait is None:
                break
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), wait)
                # The leader is gone; its group may still hold children that ignored SIGTERM.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return
            except asyncio.TimeoutError:
                continue
        await proc.wait()

    def _emit(self, event: str, t: Optional[_Task], **fields) -> None:
        """Appends one event line; never a secret (argv is redacted, the environment not written)."""
        if not self.events_path:
            return
        line = {"schema": EVENT_SCHEMA, "schema_version": EVENT_SCHEMA_VERSION, "event": event,
                "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        if t is not None:
            line.update({"queue_id": t.queue_id, "task_id": t.task_id, "attempt": t.attempt})
        line.update(fields)
        with open(self.events_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
