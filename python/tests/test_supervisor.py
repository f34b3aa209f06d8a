"""RuntimeSupervisor with real child processes: concurrency limit, timeout kill of the whole
process group, retry with backoff, shutdown."""

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from bitnet.supervisor import RuntimeSupervisor  # noqa: E402

PY = sys.executable


def read_events(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def wait_until(predicate, limit=30.0):
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


class SupervisorTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bitnet-sup-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.events = os.path.join(self.dir, "events.jsonl")

    def test_concurrency_limit_is_never_exceeded(self):
        release = os.path.join(self.dir, "release")
        # Each child blocks until the test releases it, so "two running" is a stable state.
        child = f"import os,time\nwhile not os.path.exists({release!r}): time.sleep(0.01)\n"

        async def main():
            sup = RuntimeSupervisor(max_concurrency=2, events_path=self.events)
            tasks = [sup.schedule([PY, "-c", child], queue_id="q-limit") for _ in range(5)]
            await wait_until(lambda: sum(t["state"] == "running" for t in sup.active_tasks()) == 2)
            states = [t["state"] for t in sup.active_tasks()]
            self.assertEqual(states.count("queued"), 3)
            open(release, "w").close()
            return await asyncio.gather(*tasks)

        results = asyncio.run(main())
        self.assertEqual([r.status for r in results], ["ok"] * 5)
        running = peak = 0
        for e in read_events(self.events):
            self.assertEqual(e["schema"], "bitnet.supervisor")
            running += {"started": 1, "exited": -1}.get(e["event"], 0)
            peak = max(peak, running)
            if "task_id" in e:
                self.assertEqual(e["queue_id"], "q-limit")
        self.assertEqual(peak, 2)

    def test_timeout_kills_the_whole_process_group(self):
        pidfile = os.path.join(self.dir, "grandchild.pid")
        # The child starts a grandchild in its own process group and then hangs.
        child = ("import subprocess,sys,time\n"
                 f"p=subprocess.Popen([{PY!r},'-c','import time; time.sleep(600)'])\n"
                 f"open({pidfile!r},'w').write(str(p.pid))\n"
                 "time.sleep(600)\n")

        async def main():
            sup = RuntimeSupervisor(timeout=1.0, kill_grace=0.5, events_path=self.events)
            return await sup.schedule([PY, "-c", child], queue_id="q-timeout")

        result = asyncio.run(main())
        self.assertEqual(result.status, "timeout")
        self.assertEqual(result.attempts, 1 + 0)
        with open(pidfile) as f:
            grandchild = int(f.read())
        deadline = time.monotonic() + 10
        while alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(alive(grandchild), "the grandchild must die with its group")
        self.assertIn("timeout", [e["event"] for e in read_events(self.events)])

    def test_retryable_failure_is_retried_then_succeeds(self):
        counter = os.path.join(self.dir, "count")
        # Fails with EX_TEMPFAIL on the first attempt, succeeds on the second.
        child = ("import os,sys\n"
                 f"n=int(open({counter!r}).read()) if os.path.exists({counter!r}) else 0\n"
                 f"open({counter!r},'w').write(str(n+1))\n"
                 "print('attempt', n+1, os.environ['BITNET_RUN_ID'])\n"
                 "sys.exit(75 if n == 0 else 0)\n")

        async def main():
            sup = RuntimeSupervisor(retries=3, backoff=0.05, events_path=self.events)
            return await sup.schedule([PY, "-c", child], queue_id="q-retry", task_id="job1")

        result = asyncio.run(main())
        self.assertEqual(result.status, "ok")
        self.assertEqual(result.attempts, 2)
        self.assertIn("attempt 2 q-retry/job1/2", result.stdout)
        events = [e["event"] for e in read_events(self.events)]
        self.assertEqual(events.count("started"), 2)
        self.assertEqual(events.count("retry_scheduled"), 1)
        delay = [e for e in read_events(self.events) if e["event"] == "retry_scheduled"][0]["delay_s"]
        self.assertEqual(delay, 0.05)

    def test_non_retryable_failure_is_not_retried(self):
        async def main():
            sup = RuntimeSupervisor(retries=3, backoff=0.01)
            return await sup.schedule([PY, "-c", "import sys; sys.stderr.write('bad flag'); sys.exit(2)"])

        result = asyncio.run(main())
        self.assertEqual((result.status, result.returncode, result.attempts), ("failed", 2, 1))
        self.assertEqual(result.stderr, "bad flag")

    def test_backoff_doubles_up_to_the_cap(self):
        async def main():
            sup = RuntimeSupervisor(retries=3, backoff=0.01, backoff_max=0.03, events_path=self.events)
            return await sup.schedule([PY, "-c", "import sys; sys.exit(75)"])

        result = asyncio.run(main())
        self.assertEqual((result.status, result.attempts), ("failed", 4))
        delays = [e["delay_s"] for e in read_events(self.events) if e["event"] == "retry_scheduled"]
        self.assertEqual(delays, [0.01, 0.02, 0.03])

    def test_shutdown_kills_running_and_cancels_queued(self):
        marker = os.path.join(self.dir, "started")
        child = f"import time\nopen({marker!r},'w').close()\ntime.sleep(600)\n"

        async def main():
            sup = RuntimeSupervisor(max_concurrency=1, events_path=self.events, kill_grace=0.5)
            first = sup.schedule([PY, "-c", child])
            second = sup.schedule([PY, "-c", child])
            await wait_until(lambda: any(t["pid"] for t in sup.active_tasks()))
            pid = next(t["pid"] for t in sup.active_tasks() if t["pid"])
            results = await sup.shutdown()
            with self.assertRaises(RuntimeError):
                sup.schedule([PY, "-c", "pass"])
            self.assertEqual(sup.active_tasks(), [])
            return results, pid, await first, await second

        results, pid, first, second = asyncio.run(main())
        self.assertEqual(sorted(r.status for r in results), ["cancelled", "cancelled"])
        self.assertEqual(first.attempts, 1)
        self.assertEqual(second.attempts, 0, "the queued task never started")
        self.assertFalse(alive(pid))

    def test_ceiling_and_argument_checks(self):
        async def main():
            sup = RuntimeSupervisor(max_threads_per_task=3)
            with self.assertRaises(TypeError):
                sup.schedule("echo hi")  # a shell string is refused
            return await sup.schedule([PY, "-c", "import os; print(os.environ['BITNET_MAX_THREADS'])"])

        self.assertEqual(asyncio.run(main()).stdout.strip(), "3")
        with self.assertRaises(ValueError):
            RuntimeSupervisor(max_concurrency=0)
        with self.assertRaises(ValueError):
            RuntimeSupervisor(timeout=0)


if __name__ == "__main__":
    unittest.main()
