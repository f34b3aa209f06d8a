"""The bounded HTTP exchange (bitnet.httpfetch) every request of the package goes through, against a
local http.server: a host that sends an endless body, one that trickles a byte every 0.5 s (in its
body, and in its status line), one that never answers, and a normal one; the URL checks; and the
fleet failing over from such hosts within its timeout."""

import asyncio
import json
import socket
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import helpers  # noqa: F401 (the import path)
from bitnet.fleet import FleetSupervisor, Host
from bitnet.httpfetch import (DeadlineExceeded, FetchError, HTTPStatusError, InvalidURL, ResponseTooLarge, fetch,
                              parse_url)

DEADLINE = 1.5
SLACK = 1.0  # scheduling, connection set-up; far below what an unbounded client would take
STOP_AFTER = 10.0  # the misbehaving handlers give up after this long (an unbounded client waits that long)


class Server:
    def __init__(self):
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.dispatch(b"")

            def do_POST(self):
                self.dispatch(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def reply(self, status, payload, length=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload) if length is None else length))
                self.end_headers()
                self.wfile.write(payload)

            def dispatch(self, body):
                start = time.monotonic()
                try:
                    if self.path == "/ok/completion" or self.path.startswith("/ok?"):
                        prompt = json.loads(body)["prompt"] if body else None
                        self.reply(200, json.dumps({"content": "ok:%s" % prompt, "path": self.path}).encode())
                    elif self.path == "/fail":
                        self.reply(500, b'{"error": "boom"}')
                    elif self.path == "/bad-request":
                        self.reply(400, b'{"error": "no"}')
                    elif self.path == "/huge":
                        self.reply(200, b"", length=10 ** 12)  # says a terabyte follows
                    elif self.path.startswith("/endless"):
                        # No length: the body lasts until the connection closes, and it never does.
                        self.send_response(200)
                        self.end_headers()
                        chunk = b"x" * 65536
                        while not outer.stop.is_set() and time.monotonic() - start < STOP_AFTER:
                            self.wfile.write(chunk)
                            time.sleep(0.01)  # ~6 MB/s: keeps coming, never finishes
                    elif self.path.startswith("/trickle-body"):
                        self.send_response(200)
                        self.send_header("Content-Length", "100")
                        self.end_headers()
                        self.wfile.flush()
                        while not outer.stop.is_set() and time.monotonic() - start < STOP_AFTER:
                            self.wfile.write(b"x")
                            time.sleep(0.5)
                    elif self.path.startswith("/trickle-head"):
                        for byte in b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}":
                            if outer.stop.is_set() or time.monotonic() - start > STOP_AFTER:
                                break
                            self.wfile.write(bytes([byte]))
                            time.sleep(0.5)
                    elif self.path.startswith("/silent"):
                        outer.stop.wait(STOP_AFTER)
                    else:
                        self.reply(404, b"{}")
                except OSError:
                    pass  # the client gave up: what a bounded client does

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class BoundedFetch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def timed_failure(self, path, error, needle, **kw):
        start = time.monotonic()
        with self.assertRaises(error) as cm:
            fetch(self.server.url + path, timeout=DEADLINE, **kw)
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, DEADLINE + SLACK, f"{path} took {elapsed:.2f} s")
        self.assertIn(needle, str(cm.exception))
        self.assertEqual(len(str(cm.exception).splitlines()), 1)
        return elapsed

    def test_endless_body_hits_the_size_cap(self):
        self.timed_failure("/endless", ResponseTooLarge, "larger than the 1048576 bytes allowed", max_bytes=1 << 20)

    def test_endless_body_under_a_large_cap_hits_the_deadline(self):
        # Data keeps arriving, so no single read waits long: only a whole-exchange deadline ends it.
        elapsed = self.timed_failure("/endless", DeadlineExceeded, "no complete reply within 1.5 s",
                                     max_bytes=1 << 30)
        self.assertGreater(elapsed, DEADLINE - 0.1)

    def test_trickling_body_hits_the_deadline(self):
        self.timed_failure("/trickle-body", DeadlineExceeded, "GET %s/trickle-body: no complete reply within 1.5 s"
                           % self.server.url)

    def test_trickling_status_line_hits_the_deadline(self):
        self.timed_failure("/trickle-head", DeadlineExceeded, "no complete reply within 1.5 s")

    def test_silent_server_hits_the_deadline(self):
        self.timed_failure("/silent", DeadlineExceeded, "no complete reply within 1.5 s")

    def test_declared_length_over_the_cap_fails_at_once(self):
        elapsed = self.timed_failure("/huge", ResponseTooLarge, "1000000000000 bytes, more than the 1024 allowed",
                                     max_bytes=1024)
        self.assertLess(elapsed, 0.5)

    def test_normal_exchanges(self):
        r = fetch(self.server.url + "/ok/completion", method="POST", json={"prompt": "hi"}, timeout=DEADLINE)
        self.assertEqual((r.status, r.ok, r.json()["content"]), (200, True, "ok:hi"))
        self.assertEqual(r.headers["content-type"], "application/json")
        r = fetch(self.server.url + "/ok?q=1#fragment", timeout=DEADLINE)
        self.assertEqual(r.json()["path"], "/ok?q=1")
        r = fetch(self.server.url + "/fail", timeout=DEADLINE)
        self.assertEqual(r.status, 500)  # a status is an answer, not an exception
        with self.assertRaises(HTTPStatusError) as cm:
            r.raise_for_status()
        self.assertEqual(cm.exception.status, 500)

    def test_refused_connection_is_a_fetch_error(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with self.assertRaises(FetchError) as cm:
            fetch("http://127.0.0.1:%d/" % port, timeout=DEADLINE)
        self.assertNotIsInstance(cm.exception, DeadlineExceeded)


class URLChecks(unittest.TestCase):
    def test_good_urls(self):
        self.assertEqual(parse_url("http://127.0.0.1:8080/completion"), ("127.0.0.1", 8080, "/completion"))
        self.assertEqual(parse_url("http://Example.COM"), ("example.com", 80, "/"))
        self.assertEqual(parse_url("http://[::1]:9000/a?b=c"), ("::1", 9000, "/a?b=c"))
        self.assertEqual(parse_url("http://" + "a" * 63 + "." + "b" * 63 + ":1/")[1], 1)
        self.assertEqual(parse_url("http://h:65535/")[1], 65535)

    def test_bad_urls_are_refused_before_connecting(self):
        cases = [("https://example.com/", "only http://"), ("ftp://a/", "only http://"),
                 ("example.com", "only http://"),
                 ("http://h:0/", "between 1 and 65535"), ("http://h:65536/", "between 1 and 65535"),
                 ("http://h:99999/", "between 1 and 65535"), ("http://h:x/", "between 1 and 65535"),
                 ("http://" + "a." * 127 + "aa/", "longer than 253"), ("http:///path", "no host"),
                 ("http://a b/", "spaces or control"), ("http://h/\r\nX-Injected: 1", "spaces or control"),
                 ("http://user:pw@h/", "credentials"), ("http://h_~!/", "not a host name"),
                 ("http://[zz::1]/", "IPv6"), ("", "not a URL")]
        for url, needle in cases:
            with self.subTest(url=url):
                with self.assertRaises(InvalidURL) as cm:
                    fetch(url, timeout=DEADLINE)
                self.assertIn(needle, str(cm.exception))
                self.assertIsInstance(cm.exception, ValueError)

    def test_bad_limits(self):
        for kw in ({"timeout": 0}, {"timeout": float("inf")}, {"timeout": None}, {"max_bytes": -1}):
            with self.subTest(kw=kw), self.assertRaises(ValueError):
                fetch("http://127.0.0.1:1/", **kw)

    def test_fleet_hosts_are_checked_when_made(self):
        for url in ("https://a", "http://a:0", "http://a:70000", "http://" + "a" * 254):
            with self.subTest(url=url), self.assertRaises(ValueError):
                Host("x", url=url)


class FleetOverBoundedFetch(unittest.TestCase):
    def test_endless_and_trickling_hosts_fail_over_within_the_timeout(self):
        server = Server()
        try:
            for bad in ("/endless", "/trickle-body", "/silent"):
                with self.subTest(bad=bad):
                    fleet = FleetSupervisor([Host("bad", url=server.url + bad), Host("good", url=server.url + "/ok")],
                                            retries=1, timeout=DEADLINE, max_response_bytes=1 << 20)
                    start = time.monotonic()
                    r = asyncio.run(fleet.complete("hello"))
                    elapsed = time.monotonic() - start
                    self.assertEqual((r.host, r.text, r.failed_hosts), ("good", "ok:hello", ["bad"]))
                    self.assertLess(elapsed, DEADLINE + SLACK, f"{bad} took {elapsed:.2f} s")
                    self.assertFalse(fleet.status()[0]["up"])
        finally:
            server.close()

    def test_a_4xx_is_the_requests_fault(self):
        server = Server()
        try:
            fleet = FleetSupervisor([Host("a", url=server.url + "/bad-request")], timeout=DEADLINE)
            # /bad-request/completion is unknown to the server: 404, the request's fault, not the host's.
            with self.assertRaises(HTTPStatusError) as cm:
                asyncio.run(fleet.complete("x"))
            self.assertEqual(cm.exception.status, 404)
            self.assertTrue(fleet.status()[0]["up"])
        finally:
            server.close()


if __name__ == "__main__":
    unittest.main()
