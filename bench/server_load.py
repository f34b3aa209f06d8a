#!/usr/bin/env python3
"""Load generator for `bitnet serve` (standard library only).

For each concurrency level it opens that many streaming /v1/completions requests at once and
reports aggregate generated tokens/s (all completion tokens / wall time of the level), time to
first token and inter-token latency percentiles. Either point it at a running server (--url) or
let it start one (--bin and --model; the server picks a free port).

  bench/server_load.py --bin build/bin/bitnet --model models/dummy-bitnet-b1.58-125M-i2_s.gguf \
      --threads 2 --parallel 8 --ctx 4096 --levels 1,2,4,8 --tokens 32

--mode embeddings: each of 1, 4 and 16 concurrent clients (--levels) sends --requests
/v1/embeddings requests of --inputs texts one after another; reports embeddings/s (inputs embedded
/ wall time of the level) and request latency percentiles. A started server gets --embeddings.

  bench/server_load.py --mode embeddings --bin build/bin/bitnet --model models/bitnet-kjv-13M-i2_s.gguf \
      --threads 2 --parallel 16 --ctx 8192
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
    # The token count comes from the usage chunk, which the server sends only when asked (as OpenAI).
    body = json.dumps({"prompt": prompt, "max_tokens": tokens, "temperature": 0, "ignore_eos": True,
                       "stream": True, "stream_options": {"include_usage": True}})
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


def embedding_client(url, client, level, requests, inputs, words, key, out):
    """Sends `requests` embedding requests one after another; appends (latencies, embeddings,
    tokens, error) to out."""
    u = urllib.parse.urlparse(url)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    latencies, n, tokens = [], 0, 0
    for r in range(requests):
        texts = [" ".join(f"word{(client * 31 + r * 7 + i * 3 + w) % 97}" for w in range(words))
                 for i in range(inputs)]
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=3600)
        start = time.perf_counter()
        conn.request("POST", "/v1/embeddings", json.dumps({"input": texts, "encoding_format": "base64"}), headers)
        resp = conn.getresponse()
        body = resp.read()
        latencies.append(time.perf_counter() - start)
        if resp.status != 200:
            out.append((latencies, n, tokens, f"HTTP {resp.status}: {body[:200]!r}"))
            return
        reply = json.loads(body)
        n += len(reply["data"])
        tokens += reply["usage"]["prompt_tokens"]
    out.append((latencies, n, tokens, None))


def run_clients(level, client):
    """Runs client(i, results) on `level` threads at once; returns (results, wall seconds). Each
    client appends tuples whose 4th item is an error message or None; an error stops the bench."""
    results, threads = [], []
    start = time.perf_counter()
    for i in range(level):
        t = threading.Thread(target=client, args=(i, results))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    errors = [r[3] for r in results if r[3]]
    if errors:
        raise SystemExit(f"level {level}: {errors[0]}")
    return results, wall


def run_embedding_level(url, level, requests, inputs, words, key):
    results, wall = run_clients(level, lambda c, out: embedding_client(url, c, level, requests, inputs, words, key, out))
    latencies = [x for r in results for x in r[0]]
    n = sum(r[1] for r in results)
    tokens = sum(r[2] for r in results)
    return {"clients": level, "requests": len(latencies), "embeddings": n, "tokens": tokens, "wall_s": wall,
            "embeddings_per_s": n / wall, "tokens_per_s": tokens / wall,
            "latency_p50_ms": 1e3 * percentile(latencies, 50), "latency_p90_ms": 1e3 * percentile(latencies, 90)}


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def run_level(url, level, tokens, key):
    results, wall = run_clients(level, lambda i, out: one_stream(
        url, f"Request {i} of {level}: tell me a story about ternary weights", tokens, key, out))
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
    p.add_argument("--mode", choices=("completions", "embeddings"), default="completions")
    p.add_argument("--levels", help="concurrent streams (clients) per level (default 1,2,4,8; embeddings: 1,4,16)")
    p.add_argument("--requests", type=int, default=8, help="embeddings: requests per client")
    p.add_argument("--inputs", type=int, default=1, help="embeddings: texts per request")
    p.add_argument("--words", type=int, default=24, help="embeddings: words per text")
    p.add_argument("--tokens", type=int, default=32, help="tokens generated per stream")
    p.add_argument("--api-key", default=os.environ.get("LLAMA_API_KEY", ""))
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args()
    if not args.url and not (args.bin and args.model):
        p.error("give --url, or --bin and --model")
    proc = None
    url = args.url
    embeddings = args.mode == "embeddings"
    levels = [int(x) for x in (args.levels or ("1,4,16" if embeddings else "1,2,4,8")).split(",")]
    if not url:
        proc, url = start_server(args, extra=("--embeddings",) if embeddings else ())
    try:
        if embeddings:
            embedding_client(url, 0, 1, 1, 1, args.words, args.api_key, [])  # warm-up
            rows = [run_embedding_level(url, level, args.requests, args.inputs, args.words, args.api_key)
                    for level in levels]
        else:
            one_stream(url, "warm-up", 2, args.api_key, [])
            rows = [run_level(url, level, args.tokens, args.api_key) for level in levels]
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=60)
    if embeddings:
        if args.json:
            print(json.dumps({"url": url, "threads": args.threads, "mode": "embeddings", "inputs_per_request": args.inputs,
                              "words_per_input": args.words, "levels": rows}))
            return
        base = rows[0]["embeddings_per_s"]
        print("| clients | embeddings/s | × 1 client | tokens/s | latency p50 / p90 (ms) |")
        print("|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['clients']} | {r['embeddings_per_s']:.1f} | {r['embeddings_per_s'] / base:.2f} | "
                  f"{r['tokens_per_s']:.0f} | {r['latency_p50_ms']:.0f} / {r['latency_p90_ms']:.0f} |")
        return
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
