"""FleetSupervisor: dispatch over local processes and remote servers, the per-host concurrency
limit, failover from a host that is down or failing, and 503 treated as busy (not down). Remote
hosts are small in-process HTTP servers; the local host is the fake `bitnet` from helpers."""

import asyncio
import json
import os
import socket
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from helpers import fake_bin_dir
from bitnet.fleet import FleetSupervisor, Host, NoHostAvailable


class FakeServer:
    """POST /completion answers {"content": NAME} after `delay` s, or `status` when not 200."""

    def __init__(self, name, status=200, delay=0.05):
        self.name, self.status, self.delay = name, status, delay
        self.active = self.max_active = self.requests = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests += 1
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                time.sleep(outer.delay)
                with outer.lock:
                    outer.active -= 1
                payload = json.dumps({"content": "%s:%s" % (outer.name, body["prompt"])}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def dead_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d" % port


class Fleet(unittest.TestCase):
    def test_spreads_work_and_respects_per_host_concurrency(self):
        a, b = FakeServer("a"), FakeServer("b")
        try:
            fleet = FleetSupervisor([Host("a", url=a.url, concurrency=2), Host("b", url=b.url, concurrency=1)])

            async def go():
                return await asyncio.gather(*(fleet.complete("p%d" % i, n_predict=4) for i in range(12)))

            results = asyncio.run(go())
            self.assertEqual(sorted(r.text.split(":")[1] for r in results), sorted("p%d" % i for i in range(12)))
            self.assertEqual(a.requests + b.requests, 12)
            self.assertGreater(a.requests, 0)
            self.assertGreater(b.requests, 0)
            self.assertLessEqual(a.max_active, 2)
            self.assertLessEqual(b.max_active, 1)
        finally:
            a.close()
            b.close()

    def test_failover_from_down_and_failing_hosts(self):
        good, broken = FakeServer("good"), FakeServer("broken", status=500)
        try:
            fleet = FleetSupervisor([Host("dead", url=dead_url()), Host("broken", url=broken.url),
                                     Host("good", url=good.url)], retries=3, down_for=60)
            r = asyncio.run(fleet.complete("hello"))
            self.assertEqual(r.host, "good")
            self.assertEqual(r.text, "good:hello")
            status = {s["name"]: s for s in fleet.status()}
            self.assertFalse(status["dead"]["up"])
            self.assertFalse(status["broken"]["up"])
            self.assertTrue(status["good"]["up"])
            # Down hosts are skipped until their time is up: the next request goes straight to good.
            r2 = asyncio.run(fleet.complete("again"))
            self.assertEqual((r2.host, r2.attempts, r2.failed_hosts), ("good", 1, []))
        finally:
            good.close()
            broken.close()

    def test_busy_host_is_not_marked_down_and_no_host_is_an_error(self):
        busy = FakeServer("busy", status=503)
        try:
            fleet = FleetSupervisor([Host("busy", url=busy.url)], retries=1)
            with self.assertRaises(NoHostAvailable):
                asyncio.run(fleet.complete("x"))
            self.assertTrue(fleet.status()[0]["up"], "503 means busy, not down")
        finally:
            busy.close()

    def test_local_process_host(self):
        bitnet = os.path.join(fake_bin_dir(), "bitnet")
        fleet = FleetSupervisor([Host("local", argv=[bitnet, "run", "-m", "m.gguf"], concurrency=2)])

        async def go():
            try:
                return await asyncio.gather(fleet.complete("one", n_predict=3), fleet.complete("two", n_predict=3))
            finally:
                await fleet.shutdown()

        results = asyncio.run(go())
        argvs = [json.loads(r.text) for r in results]
        self.assertEqual(argvs[0], ["run", "-m", "m.gguf", "-p", "one", "-n", "3"])
        self.assertEqual(argvs[1][4], "two")

    def test_bad_configuration(self):
        with self.assertRaises(ValueError):
            Host("x")
        with self.assertRaises(ValueError):
            Host("x", url="ftp://a")
        with self.assertRaises(ValueError):
            FleetSupervisor([Host("a", url="http://a"), Host("a", url="http://b")])


if __name__ == "__main__":
    unittest.main()
