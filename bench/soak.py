#!/usr/bin/env python3
"""Server soak (issue 16): N minutes of concurrent mixed traffic against `bitnet serve`, then a
report and a verdict. Standard library only.

Clients loop over: streaming and plain chat, completions, tokenize, invalid JSON, oversized bodies,
abandoned requests (a partial head, then close), disconnects mid-stream, and prompts that fill the
context. Measured: every status (any 5xx but 503 is a failure), the server's RSS, open file
descriptors and threads at the start (after a warm-up) and at the end (after the clients stop),
time to first token and inter-token latency (p50/p99), and a clean exit on SIGTERM.

  bench/soak.py --bin build/bin/bitnet [--model M.gguf] [--minutes 10] [--clients 12] [--json OUT]

Without --model a `tiny` model is generated in a temporary directory. Exit 0 when every check
passes, 1 otherwise (the failed checks are printed).
"""
import argparse
import http.client
import json
import os
import random
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


def proc_stats(pid):
    """RSS in KiB, open fds, threads of a process (from /proc)."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return {"rss_kib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": threads}


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


def request(host, port, method, path, body=None, timeout=120):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body, headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def stream_chat(host, port, tally, drop_after=None):
    """A streaming chat; drop_after: close the connection after that many events."""
    conn = http.client.HTTPConnection(host, port, timeout=120)
    body = json.dumps({"messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 24,
                       "stream": True, "temperature": 0.8})
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        tally.add("stream", resp.status, resp.status == 503, resp.read()[:200])
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


def one_action(host, port, tally, rng, n_ctx_slot):
    a = rng.randrange(10)
    if a == 0:
        stream_chat(host, port, tally)
    elif a == 1:
        stream_chat(host, port, tally, drop_after=rng.randint(1, 4))
    elif a == 2:
        st, data = request(host, port, "POST", "/v1/chat/completions",
                           json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}))
        tally.add("chat", st, st in (200, 503), data[:200])
    elif a == 3:
        st, data = request(host, port, "POST", "/v1/completions", json.dumps({"prompt": "Once upon", "max_tokens": 8}))
        tally.add("completion", st, st in (200, 503), data[:200])
    elif a == 4:
        st, data = request(host, port, "POST", "/tokenize", json.dumps({"content": "hello world " * rng.randint(1, 50)}))
        tally.add("tokenize", st, st == 200, data[:200])
    elif a == 5:
        st, data = request(host, port, "POST", "/completion", "{\"prompt\": ")
        tally.add("invalid", st, st == 400, data[:200])
    elif a == 6:
        st, data = request(host, port, "POST", "/completion", json.dumps({"prompt": "x" * (MAX_BODY + 10)}))
        tally.add("oversized", st, st == 413, data[:200])
    elif a == 7:
        abandoned(host, port, tally)
    elif a == 8:
        # A prompt longer than a slot's context: refused with 400 (or, if it fits, generation to the end).
        st, data = request(host, port, "POST", "/completion",
                           json.dumps({"prompt": "word " * (n_ctx_slot + 8), "n_predict": 4}))
        tally.add("context-full", st, st in (200, 400, 503), data[:200])
    else:
        st, data = request(host, port, "GET", "/health")
        tally.add("health", st, st == 200, data[:200])


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
    ap.add_argument("--dead-collector", action="store_true",
                    help="export telemetry over OTLP to a collector that is down (a closed port) the whole time: "
                         "it must cost no request and no memory growth")
    args = ap.parse_args()
    if args.minutes <= 0 or args.clients < 1:
        ap.error("--minutes must be > 0 and --clients ≥ 1")

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
    proc, url = start_server(args, extra, env)
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
                one_action(host, port, tally, rng, args.ctx // args.parallel)
            except Exception as e:  # noqa: BLE001 — every failure is counted, the client goes on
                tally.add("client-error", type(e).__name__, False, str(e))

    idle_stats = proc_stats(proc.pid)  # fds and threads: idle before, idle after
    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    for w in workers:
        w.start()
    time.sleep(warmup)
    start_stats = proc_stats(proc.pid)  # RSS: under load after the warm-up, against the end
    for w in workers:
        w.join()
    time.sleep(3)  # connections close, per-connection threads end
    end_stats = proc_stats(proc.pid)

    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "no exit within 30 s of SIGTERM"

    report = {
        "minutes": args.minutes, "clients": args.clients, "dead_collector": args.dead_collector,
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
        print(f"soak: ok — {total} requests in {args.minutes:g} min, no unexpected answer, RSS "
              f"{start_stats['rss_kib']} → {end_stats['rss_kib']} KiB, fds and threads unchanged, clean SIGTERM",
              file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
