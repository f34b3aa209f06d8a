#!/usr/bin/env python3
"""Load generator for `bitnet serve` (standard library only).

For each concurrency level it opens that many streaming /v1/completions requests at once and
reports aggregate generated tokens/s (all completion tokens / wall time of the level), time to
first token and inter-token latency percentiles. Either point it at a running server (--url) or
let it start one (--bin and --model; the server picks a free port).

  bench/server_load.py --bin build/bin/bitnet --model models/dummy-bitnet-b1.58-125M-i2_s.gguf \
      --threads 2 --parallel 8 --ctx 4096 --levels 1,2,4,8 --tokens 32
"""
import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse


def start_server(args, extra=(), env=None, on_line=None):
    """Starts `bin serve` on a free port (argument list, no shell); returns (process, base URL)
    once it says ready. `extra`: more serve flags; `env`: variables added to the environment;
    `on_line`: called with every line the server writes to stderr (bytes that are not UTF-8 arrive
    as U+FFFD rather than stopping the reader, which would leave the server blocked on a full pipe)."""
    cmd = [args.bin, "serve", "-m", args.model, "-t", str(args.threads), "-np", str(args.parallel),
           "-c", str(args.ctx), "--port", "0", "--queue-limit", "64", *extra]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, errors="replace",
                            env=dict(os.environ, **(env or {})))
    on_line = on_line or (lambda line: None)
    pattern = re.compile(r"server listening on http://([0-9.]+):([0-9]+)")
    url = None
    for line in proc.stderr:
        sys.stderr.write(line)
        on_line(line)
        m = pattern.search(line)
        if m:
            url = f"http://{m.group(1)}:{m.group(2)}"
        if "server ready" in line:
            break
    if url is None:
        raise SystemExit("server did not start")
    threading.Thread(target=lambda: [on_line(line) for line in proc.stderr], daemon=True).start()  # drain logs
    return proc, url


def one_stream(url, prompt, tokens, key, out):
    """Streams one completion; appends (ttft, [inter-token gaps], n_tokens, error) to out."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=3600)
    body = json.dumps({"prompt": prompt, "max_tokens": tokens, "temperature": 0, "ignore_eos": True,
                       "stream": True})
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, headers)
    resp = conn.getresponse()
    if resp.status != 200:
        out.append((None, [], 0, f"HTTP {resp.status}: {resp.read()[:200]!r}"))
        return
    first, last, gaps, n = None, None, [], 0
    for raw in resp:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if not chunk.get("choices"):
            n = chunk["usage"]["completion_tokens"]
            continue
        if chunk["choices"][0].get("finish_reason") is not None:
            continue
        now = time.perf_counter()
        if first is None:
            first = now - start
        else:
            gaps.append(now - last)
        last = now
    out.append((first, gaps, n, None))


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def run_level(url, level, tokens, key):
    results, threads = [], []
    start = time.perf_counter()
    for i in range(level):
        prompt = f"Request {i} of {level}: tell me a story about ternary weights"
        t = threading.Thread(target=one_stream, args=(url, prompt, tokens, key, results))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    errors = [r[3] for r in results if r[3]]
    if errors:
        raise SystemExit(f"level {level}: {errors[0]}")
    ttft = [r[0] for r in results if r[0] is not None]
    gaps = [g for r in results for g in r[1]]
    generated = sum(r[2] for r in results)
    return {"streams": level, "tokens": generated, "wall_s": wall, "tokens_per_s": generated / wall,
            "ttft_p50_ms": 1e3 * percentile(ttft, 50), "ttft_p90_ms": 1e3 * percentile(ttft, 90),
            "itl_p50_ms": 1e3 * percentile(gaps, 50), "itl_p90_ms": 1e3 * percentile(gaps, 90),
            "itl_p99_ms": 1e3 * percentile(gaps, 99)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080")
    p.add_argument("--bin", help="bitnet binary to start a server with")
    p.add_argument("--model", help="model for the started server")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--parallel", type=int, default=8, help="slots of the started server")
    p.add_argument("--ctx", type=int, default=4096, help="total context of the started server")
    p.add_argument("--levels", default="1,2,4,8", help="concurrent streams per level")
    p.add_argument("--tokens", type=int, default=32, help="tokens generated per stream")
    p.add_argument("--api-key", default=os.environ.get("LLAMA_API_KEY", ""))
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args()
    if not args.url and not (args.bin and args.model):
        p.error("give --url, or --bin and --model")
    proc = None
    url = args.url
    if not url:
        proc, url = start_server(args)
    try:
        one_stream(url, "warm-up", 2, args.api_key, [])
        rows = [run_level(url, int(level), args.tokens, args.api_key) for level in args.levels.split(",")]
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=60)
    if args.json:
        print(json.dumps({"url": url, "threads": args.threads, "tokens_per_stream": args.tokens, "levels": rows}))
        return
    base = rows[0]["tokens_per_s"]
    print("| streams | tokens/s | × 1 stream | TTFT p50 / p90 (ms) | ITL p50 / p90 / p99 (ms) |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['streams']} | {r['tokens_per_s']:.1f} | {r['tokens_per_s'] / base:.2f} | "
              f"{r['ttft_p50_ms']:.0f} / {r['ttft_p90_ms']:.0f} | "
              f"{r['itl_p50_ms']:.1f} / {r['itl_p90_ms']:.1f} / {r['itl_p99_ms']:.1f} |")


if __name__ == "__main__":
    main()
