#!/usr/bin/env python3
"""Server soak (issue 16): N minutes of concurrent mixed traffic against `bitnet serve`, then a
report and a verdict. Standard library only.

Clients loop over: streaming and plain chat, completions, tokenize, invalid JSON, oversized bodies,
abandoned requests (a partial head, then close), disconnects mid-stream, and prompts that fill the
context. Measured: every status (any 5xx but 503 is a failure), the server's RSS, open file
descriptors and threads at the start (after a warm-up) and at the end (after the clients stop),
time to first token and inter-token latency (p50/p99), and a clean exit on SIGTERM.

  bench/soak.py --bin build/bin/bitnet [--model M.gguf] [--minutes 10] [--clients 12] [--json OUT]
                [--dead-collector | --hostile-collector] [--api-key KEY]

--dead-collector exports OTLP telemetry to a closed port. --hostile-collector runs a local OTLP
"collector" in this process that cycles, connection by connection, through an endless body, a
trickle (a valid head, then one byte a second), silence, garbage (control bytes and an invalid
status line), a 100 KB head and a well-behaved 200 `{}`; every behaviour must be met at least once
in a run of a minute or more, no collector connection may be held far past the exporter's timeout,
and the collector's own sockets must all be closed at the end. --api-key starts the server with the
key in LLAMA_API_KEY: the clients send it (Bearer, lower-case bearer or X-Api-Key), and the mix
gains requests without a key or with a wrong one (401), with a '%' in Authorization / X-Api-Key and
with `Content-Length: 2%38` (400, sent as raw bytes). In every mode the server's log must carry no
raw control byte (ESC, BEL, CSI) and no invalid UTF-8.

  bench/soak.py --bin build/bin/bitnet --minutes 30 --clients 12 --hostile-collector --api-key K

is the long run of the reliability issue (not in CI; CI runs 60 s with --dead-collector).
Without --model a `tiny` model is generated in a temporary directory. Exit 0 when every check
passes, 1 otherwise (the failed checks are printed).
"""
import argparse
import http.client
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_load import percentile, start_server  # noqa: E402

MAX_BODY = 65536


def socket_inodes(pid):
    """The inodes of a process's open sockets (from /proc/PID/fd)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp_sockets(inodes, local_port=None, remote_port=None):
    """How many of these socket inodes are TCP sockets with that local or remote port (/proc/net/tcp*)."""
    found = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
                    if fields[9] in inodes and (local == local_port or remote == remote_port):
                        found += 1
        except OSError:
            pass
    return found


def proc_stats(pid, collector_port=None):
    """RSS in KiB, open fds, threads of a process (from /proc). With collector_port, the sockets
    connected to that port (an OTLP export in flight when the sample is taken) are not counted in
    fds but reported apart."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    if collector_port is None:
        return {"rss_kib": rss, "fds": fds, "threads": threads}
    exporting = tcp_sockets(socket_inodes(pid), remote_port=collector_port)
    return {"rss_kib": rss, "fds": fds - exporting, "threads": threads, "fds_to_collector": exporting}


BEHAVIOURS = ("endless", "trickle", "silent", "garbage", "oversized-head", "well-behaved")
HOLD_LIMIT_S = 15  # the exporter gives a request 2 s; a collector connection open this long is a hang


class HostileCollector:
    """An OTLP/HTTP "collector" on 127.0.0.1 that misbehaves: each run of 6 connections meets all of
    BEHAVIOURS, the order rotated by one per run (so that logs and metrics requests, which the
    exporter sends by turns, both meet every behaviour). One thread per connection; every socket is closed when the peer closes it, and all of them (and
    the listening socket) by stop()."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.counts = dict.fromkeys(BEHAVIOURS, 0)
        self.longest = dict.fromkeys(BEHAVIOURS, 0.0)  # seconds until the peer closed, the longest
        self.paths = {b: {} for b in BEHAVIOURS}  # the requests each behaviour answered, by path
        self.open = 0
        self.closed_at_stop = 0
        self.errors = []  # the collector's own failures (not the server's)
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self):
        self.acceptor.start()
        return self

    def stop(self):
        self.stopping.set()
        self.acceptor.join(10)
        for t in self.threads:
            t.join(10)
        self.listener.close()

    def report(self):
        with self.lock:
            return {"connections": dict(self.counts), "longest_s": {k: round(v, 2) for k, v in self.longest.items()},
                    "paths": {b: dict(p) for b, p in self.paths.items()}, "open_after_stop": self.open, "closed_at_stop": self.closed_at_stop,
                    "errors": self.errors[:10]}

    def _accept_loop(self):
        n = 0
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError as e:
                self._error(f"accept: {e}")
                return
            behaviour = BEHAVIOURS[(n + n // len(BEHAVIOURS)) % len(BEHAVIOURS)]
            n += 1
            with self.lock:
                self.counts[behaviour] += 1
                self.open += 1
            seed = self.rng.getrandbits(32)
            t = threading.Thread(target=self._serve, args=(conn, behaviour, random.Random(seed)), daemon=True)
            self.threads = [x for x in self.threads if x.is_alive()] + [t]
            t.start()

    def _error(self, text):
        with self.lock:
            self.errors.append(text[:200])

    def _serve(self, conn, behaviour, rng):
        start = time.monotonic()
        peer_closed = False
        try:
            conn.settimeout(0.5)
            path, peer_closed = self._read_request(conn)
            with self.lock:
                self.paths[behaviour][path] = self.paths[behaviour].get(path, 0) + 1
            if not peer_closed:
                peer_closed = getattr(self, "_" + behaviour.replace("-", "_"))(conn, rng)
        except (ConnectionResetError, BrokenPipeError):
            peer_closed = True
        except OSError as e:
            self._error(f"{behaviour}: {type(e).__name__} {e}")
        finally:
            conn.close()
            with self.lock:
                self.open -= 1
                if peer_closed:
                    self.longest[behaviour] = max(self.longest[behaviour], time.monotonic() - start)
                else:
                    self.closed_at_stop += 1

    def _peer_closed(self, conn, wait):
        """Waits up to `wait` s for the peer; True when it has closed (what it sends is dropped)."""
        readable, _, _ = select.select([conn], [], [], wait)
        if not readable:
            return False
        try:
            return conn.recv(65536) == b""
        except socket.timeout:
            return False

    def _send(self, conn, data):
        """Sends all of data unless the collector stops first (a peer that stops reading)."""
        view = memoryview(data)
        while view and not self.stopping.is_set():
            try:
                view = view[conn.send(view):]
            except socket.timeout:
                continue
        return not view

    def _read_request(self, conn):
        """Reads one request (head and Content-Length body): (path, whether the peer closed)."""
        data, deadline = b"", time.monotonic() + 5
        while b"\r\n\r\n" not in data and len(data) < 1 << 20:
            if time.monotonic() > deadline or self.stopping.is_set():
                return "?", False
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return "?", True
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        path = parts[1].decode("ascii", "replace") if len(parts) > 1 else "?"
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value)
        while len(body) < length and time.monotonic() < deadline and not self.stopping.is_set():
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return path, True
            body += chunk
        return path, False

    def _until_peer_closes(self, conn):
        while not self.stopping.is_set():
            if self._peer_closed(conn, 0.5):
                return True
        return False

    def _endless(self, conn, rng):
        """200 and headers without Content-Length, then a body that never ends."""
        if not self._send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"partialSuccess\": ["):
            return False
        chunk = b"0, " * 5461
        while not self.stopping.is_set():
            if self._peer_closed(conn, 0):
                return True
            self._send(conn, chunk)
        return False

    def _trickle(self, conn, rng):
        """A valid-looking head, then one byte a second."""
        if not self._send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"):
            return False
        while not self.stopping.is_set():
            if self._peer_closed(conn, 1.0):
                return True
            self._send(conn, b" ")
        return False

    def _silent(self, conn, rng):
        """Reads, never answers."""
        return self._until_peer_closes(conn)

    def _garbage(self, conn, rng):
        """An invalid status line with terminal control bytes, then random bytes; every other time
        with a header and the blank line after the status line, so that the head is complete and
        the status line itself is judged (without one the exporter waits out its timeout)."""
        status = rng.choice([b"HTTP/1.1 \x1b[2J\x1b]0;pwned\x07200 OK\r\n", b"\x9b31mHTTP/1.1 200 OK\r\n",
                             b"HTTP/1.1 99999999999999999999 \x07\x9b\r\n", b"HTTP/1.1\r\n", b"\x00\xff\xfe\r\n"])
        if rng.random() < 0.5:
            status += b"X-\x1b[1mBold: \x07\x9b0m\r\n\r\n"
        noise = bytes(rng.choice(b"\x1b\x07\x9b\x00\r\n[]0;") if rng.random() < 0.3 else rng.randrange(256)
                      for _ in range(rng.randint(64, 8192)))
        if not self._send(conn, status + noise):
            return False
        return self._until_peer_closes(conn)

    def _oversized_head(self, conn, rng):
        """100 KB of header lines before a valid 200 `{}`."""
        head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Filler-%05d: %s\r\n" % (i, b"a" * 84) for i in range(1024))
        if not self._send(conn, head + b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"):
            return False
        return self._until_peer_closes(conn)

    def _well_behaved(self, conn, rng):
        if not self._send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                                b"Connection: close\r\n\r\n{}"):
            return False
        return self._until_peer_closes(conn)


class ServerLog:
    """Watches the server's stderr: lines with raw control bytes or invalid UTF-8, the OTLP summary."""
    BAD = ("\x1b", "\x07", "\x9b", "\ufffd")

    def __init__(self):
        self.lines = 0
        self.raw_control = []
        self.otlp = []

    def __call__(self, line):
        self.lines += 1
        if any(c in line for c in self.BAD):
            self.raw_control.append(repr(line[:200]))
            del self.raw_control[5:]
        if "OTLP" in line:
            self.otlp = (self.otlp + [line.strip()[:300]])[-3:]


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.status = {}
        self.unexpected = []
        self.ttft, self.gaps = [], []

    def add(self, kind, status, ok=True, detail=""):
        with self.lock:
            key = f"{kind} {status}"
            self.status[key] = self.status.get(key, 0) + 1
            if not ok or (isinstance(status, int) and status >= 500 and status != 503):
                self.unexpected.append(f"{kind}: {status} {detail}"[:300])


def request(host, port, method, path, body=None, timeout=120, auth=None):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    headers.update(auth or {})
    conn.request(method, path, body, headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def raw_request(host, port, head, body=b"", timeout=30):
    """Sends a request as raw bytes (for heads http.client would not send as written) and reads the
    answer to the end (the server closes): (status, body)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(head + body)
        data = b""
        while len(data) < 1 << 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    line, _, rest = data.partition(b"\r\n")
    parts = line.split(b" ")
    status = int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit() else repr(line[:60])
    return status, rest.partition(b"\r\n\r\n")[2]


def stream_chat(host, port, tally, drop_after=None, auth=None):
    """A streaming chat; drop_after: close the connection after that many events."""
    conn = http.client.HTTPConnection(host, port, timeout=120)
    body = json.dumps({"messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 24,
                       "stream": True, "temperature": 0.8})
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json", **(auth or {})})
    resp = conn.getresponse()
    if resp.status != 200:
        tally.add("stream", resp.status, resp.status == 503, resp.read()[:200])
        conn.close()
        return
    first = last = None
    events = 0
    for raw in resp:
        line = raw.strip()
        if not line.startswith(b"data: "):
            continue
        events += 1
        now = time.perf_counter()
        if first is None:
            first = now - start
            tally.ttft.append(first)
        elif last is not None:
            tally.gaps.append(now - last)
        last = now
        if drop_after is not None and events >= drop_after:
            conn.close()  # the client goes away mid-stream
            tally.add("stream-dropped", 200)
            return
        if line == b"data: [DONE]":
            break
    conn.close()
    tally.add("stream", 200, events > 0, "no events")


def abandoned(host, port, tally):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"POST /completion HTTP/1.1\r\nHost: x\r\nContent-Le")
    time.sleep(random.uniform(0.0, 0.3))
    s.close()
    tally.add("abandoned", "closed")


def auth_headers(key, client):
    """The credential a keyed client sends: clients take turns with the three accepted forms."""
    if not key:
        return {}
    return [{"Authorization": "Bearer " + key}, {"Authorization": "bearer " + key}, {"X-Api-Key": key}][client % 3]


KEYED_PATHS = [("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}),
               ("POST", "/v1/completions", {"prompt": "Once", "max_tokens": 4}),
               ("POST", "/tokenize", {"content": "hello"}),
               ("GET", "/props", None),  # (the model list is public, as llama-server's)
               ("GET", "/metrics", None)]


def key_actions(host, port, tally, rng, key, a):
    """The requests a server with a key must refuse: no key or a wrong one (401), a '%' in a
    credential header or a Content-Length that is not a decimal number (400, on the raw bytes)."""
    method, path, body = rng.choice(KEYED_PATHS)
    data = json.dumps(body) if body is not None else None
    if a == 0:
        st, out = request(host, port, method, path, data)
        tally.add("no-key", st, st in (401, 503), f"{method} {path} {out[:200]}")
    elif a == 1:
        wrong = rng.choice([key + "x", key[:-1], "", key.upper() if key.upper() != key else key + "X"])
        header = rng.choice([{"Authorization": "Bearer " + wrong}, {"X-Api-Key": wrong},
                             {"Authorization": "Basic " + key}, {"Authorization": key}])
        st, out = request(host, port, method, path, data, auth=header)
        tally.add("wrong-key", st, st in (401, 503), f"{method} {path} {header} {out[:200]}")
    elif a == 2:
        # The key with one byte percent-encoded: the HTTP library would decode it into the real key.
        i = rng.randrange(len(key))
        encoded = key[:i] + "%%%02X" % ord(key[i]) + key[i + 1:]
        header = rng.choice([b"Authorization: Bearer ", b"X-Api-Key: "]) + encoded.encode()
        payload = (data or "").encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: soak\r\n".encode() + header + b"\r\n" +
                (f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n" if body is not None else "")
                .encode() + b"\r\n")
        st, out = raw_request(host, port, head, payload)
        tally.add("percent-key", st, st == 400, f"{head[:200]!r} {out[:200]}")
    else:
        payload = b'{"prompt": "Hello", "n_predict": 2}'  # 28 bytes: what "2%38" would decode to
        head = (b"POST /completion HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer " + key.encode() +
                b"\r\nContent-Type: application/json\r\nContent-Length: 2%38\r\n\r\n")
        st, out = raw_request(host, port, head, payload)
        tally.add("percent-length", st, st == 400, f"{head[:200]!r} {out[:200]}")


def one_action(host, port, tally, rng, n_ctx_slot, key=None, client=0):
    a = rng.randrange(14 if key else 10)
    auth = auth_headers(key, client)
    if a == 0:
        stream_chat(host, port, tally, auth=auth)
    elif a == 1:
        stream_chat(host, port, tally, drop_after=rng.randint(1, 4), auth=auth)
    elif a == 2:
        st, data = request(host, port, "POST", "/v1/chat/completions",
                           json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}), auth=auth)
        tally.add("chat", st, st in (200, 503), data[:200])
    elif a == 3:
        st, data = request(host, port, "POST", "/v1/completions", json.dumps({"prompt": "Once upon", "max_tokens": 8}),
                           auth=auth)
        tally.add("completion", st, st in (200, 503), data[:200])
    elif a == 4:
        st, data = request(host, port, "POST", "/tokenize", json.dumps({"content": "hello world " * rng.randint(1, 50)}),
                           auth=auth)
        tally.add("tokenize", st, st == 200, data[:200])
    elif a == 5:
        st, data = request(host, port, "POST", "/completion", "{\"prompt\": ", auth=auth)
        tally.add("invalid", st, st == 400, data[:200])
    elif a == 6:
        st, data = request(host, port, "POST", "/completion", json.dumps({"prompt": "x" * (MAX_BODY + 10)}), auth=auth)
        tally.add("oversized", st, st == 413, data[:200])
    elif a == 7:
        abandoned(host, port, tally)
    elif a == 8:
        # A prompt longer than a slot's context: refused with 400 (or, if it fits, generation to the end).
        st, data = request(host, port, "POST", "/completion",
                           json.dumps({"prompt": "word " * (n_ctx_slot + 8), "n_predict": 4}), auth=auth)
        tally.add("context-full", st, st in (200, 400, 503), data[:200])
    elif a == 9:
        st, data = request(host, port, "GET", "/health")  # public: no key needed
        tally.add("health", st, st == 200, data[:200])
    else:
        key_actions(host, port, tally, rng, key, a - 10)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the bitnet binary")
    ap.add_argument("--model", help="GGUF model (default: a generated tiny one)")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--clients", type=int, default=12, help="concurrent clients (8-16 in the issue)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the report here too")
    collector = ap.add_mutually_exclusive_group()
    collector.add_argument("--dead-collector", action="store_true",
                           help="export telemetry over OTLP to a collector that is down (a closed port) the whole "
                                "time: it must cost no request and no memory growth")
    collector.add_argument("--hostile-collector", action="store_true",
                           help="export telemetry over OTLP to a local collector that cycles through an endless "
                                "body, a trickle, silence, garbage, a 100 KB head and a proper answer")
    ap.add_argument("--api-key", help="start the server with this key (in LLAMA_API_KEY); clients send it, and "
                                      "unkeyed, wrong-key and malformed-credential requests join the mix")
    args = ap.parse_args()
    if args.minutes <= 0 or args.clients < 1:
        ap.error("--minutes must be > 0 and --clients ≥ 1")
    if args.api_key is not None and (not args.api_key or not all(33 <= ord(c) < 127 and c != "%" for c in args.api_key)):
        ap.error("--api-key must be printable ASCII without spaces or '%'")

    tmp = tempfile.TemporaryDirectory()
    if not args.model:
        args.model = os.path.join(tmp.name, "tiny.gguf")
        subprocess.run([args.bin, "gen-model", "--preset", "tiny", "-o", args.model], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    extra, env = ["--max-body", str(MAX_BODY), "--metrics", "--header-timeout", "5"], {}
    if args.dead_collector:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        extra += ["--otlp-endpoint", "http://127.0.0.1:%d" % s.getsockname()[1]]
        s.close()  # nothing listens there any more
        env["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"
    hostile = None
    if args.hostile_collector:
        hostile = HostileCollector(args.seed).start()
        extra += ["--otlp-endpoint", "http://127.0.0.1:%d" % hostile.port]
        env["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"
    if args.api_key:
        env["LLAMA_API_KEY"] = args.api_key  # not on the command line, where `ps` shows it
    server_log = ServerLog()
    proc, url = start_server(args, extra, env, on_line=server_log)
    host, port = url.split("//")[1].split(":")
    port = int(port)
    duration = args.minutes * 60
    warmup = min(60.0, duration / 4)  # the baseline is taken after the first minute (or quarter)
    tally = Tally()
    stop_at = time.monotonic() + duration

    def client(i):
        rng = random.Random(args.seed * 1000 + i)
        while time.monotonic() < stop_at:
            try:
                one_action(host, port, tally, rng, args.ctx // args.parallel, args.api_key, i)
            except Exception as e:  # noqa: BLE001 — every failure is counted, the client goes on
                tally.add("client-error", type(e).__name__, False, str(e))

    idle_stats = proc_stats(proc.pid, hostile and hostile.port)  # fds and threads: idle before, idle after
    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    for w in workers:
        w.start()
    time.sleep(warmup)
    start_stats = proc_stats(proc.pid, hostile and hostile.port)  # RSS: under load after the warm-up, against the end
    for w in workers:
        w.join()
    time.sleep(3)  # connections close, per-connection threads end
    end_stats = proc_stats(proc.pid, hostile and hostile.port)

    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "no exit within 30 s of SIGTERM"
    collector = None
    if hostile:
        hostile.stop()  # after the server's exit: its last export at exit meets the collector too
        collector = hostile.report()
        collector["sockets_left"] = tcp_sockets(socket_inodes("self"), local_port=hostile.port)

    report = {
        "minutes": args.minutes, "clients": args.clients, "dead_collector": args.dead_collector,
        "hostile_collector": args.hostile_collector,
        "collector_connections": collector["connections"] if collector else None,
        "collector": collector, "api_key_set": bool(args.api_key),
        "server_log": {"lines": server_log.lines, "raw_control_lines": server_log.raw_control,
                       "otlp": server_log.otlp},
        "requests": tally.status,
        "unexpected": tally.unexpected[:20], "unexpected_count": len(tally.unexpected),
        "idle_before": idle_stats, "after_warmup": start_stats, "end": end_stats,
        "rss_growth": end_stats["rss_kib"] / max(1, start_stats["rss_kib"]) - 1,
        "ttft_ms": {"p50": 1e3 * percentile(tally.ttft, 50), "p99": 1e3 * percentile(tally.ttft, 99)},
        "itl_ms": {"p50": 1e3 * percentile(tally.gaps, 50), "p99": 1e3 * percentile(tally.gaps, 99)},
        "sigterm_exit": rc,
    }
    failures = []
    if tally.unexpected:
        failures.append(f"{len(tally.unexpected)} unexpected answers (first: {tally.unexpected[0]})")
    if report["rss_growth"] > 0.05:
        failures.append(f"RSS grew {100 * report['rss_growth']:.1f}% after the warm-up (limit 5%)")
    if end_stats["fds"] != idle_stats["fds"]:
        failures.append(f"open fds {idle_stats['fds']} before → {end_stats['fds']} after")
    if end_stats["threads"] != idle_stats["threads"]:
        failures.append(f"threads {idle_stats['threads']} before → {end_stats['threads']} after")
    if rc != 0:
        failures.append(f"SIGTERM exit: {rc}")
    if server_log.raw_control:
        failures.append(f"the server log carries raw control bytes or invalid UTF-8: {server_log.raw_control[0]}")
    if collector:
        missed = [b for b, n in collector["connections"].items() if n == 0]
        if missed and args.minutes >= 1:
            failures.append(f"collector behaviours never met: {', '.join(missed)}")
        held = {b: t for b, t in collector["longest_s"].items() if t > HOLD_LIMIT_S}
        if held:
            failures.append(f"the server held collector connections open for {held} s (limit {HOLD_LIMIT_S} s)")
        if collector["open_after_stop"] or collector["sockets_left"]:
            failures.append(f"collector sockets left open: {collector['open_after_stop']} connections, "
                            f"{collector['sockets_left']} sockets on its port")
        if collector["errors"]:
            failures.append(f"collector errors: {collector['errors'][0]}")
    report["failures"] = failures
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    for f in failures:
        print("soak: FAIL: " + f, file=sys.stderr)
    if not failures:
        total = sum(tally.status.values())
        mode = ("hostile collector (" + ", ".join(f"{b} {n}" for b, n in collector["connections"].items()) + ")"
                if collector else "dead collector" if args.dead_collector else "no collector")
        print(f"soak: ok — {total} requests in {args.minutes:g} min, no unexpected answer, RSS "
              f"{start_stats['rss_kib']} → {end_stats['rss_kib']} KiB, fds and threads unchanged, clean SIGTERM; "
              f"{mode}; API key {'set' if args.api_key else 'not set'}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
