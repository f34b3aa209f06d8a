#!/usr/bin/env python3
"""Side-by-side benchmark: our `llama-bench` against other engines' `llama-bench` binaries
(ik_llama.cpp, llama.cpp, bitnet.cpp) on the same weights, in alternating rounds, one table with
medians and ratios. Standard library only.

  bench/compare.py --engine ours=build/bin/llama-bench:large-i2_s.gguf \\
                   --engine ik=/scratch/ik/build/bin/llama-bench:large-iq2_bn_r4.gguf \\
                   [-p 512] [-n 128] [-t 2] [--rounds 5] [--extra ik=-fa,0]

Each --engine is NAME=LLAMA_BENCH:MODEL[,MODEL...]; the i-th model of every engine must hold
the same weights (a file requantized losslessly for the other engine counts as the same). The
first engine is the baseline of the ratio columns. Every round runs each engine once per model
(-r 1, so the machine's drift is spread over all engines alike) and the table shows the median
over rounds. Every run is an argument list (no shell); a binary that fails or prints no result
stops the comparison with its stderr.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys


class CompareError(Exception):
    pass


def parse_engine(spec):
    name, sep, rest = spec.partition("=")
    binary, sep2, models = rest.rpartition(":")
    if not sep or not sep2 or not name or not binary or not models:
        raise CompareError(f"--engine '{spec}': expected NAME=LLAMA_BENCH:MODEL[,MODEL...]")
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        raise CompareError(f"--engine {name}: '{binary}' is not an executable file")
    files = [m for m in models.split(",") if m]
    for m in files:
        if not os.path.isfile(m):
            raise CompareError(f"--engine {name}: model '{m}' not found")
    return {"name": name, "binary": binary, "models": files, "extra": []}


def json_rows(text):
    """The result objects of llama-bench's -o json (one array) or -o jsonl (one object a line),
    skipping anything else an engine prints on stdout."""
    start = text.find("[")
    if start >= 0:
        try:
            rows = json.loads(text[start:text.rfind("]") + 1])
            return [r for r in rows if isinstance(r, dict)]
        except ValueError:
            pass
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def run_bench(engine, model, args):
    """One llama-bench run (-r 1, JSON: every llama-bench writes it, not every one JSON lines);
    returns {test name: tokens/s}."""
    cmd = [engine["binary"], "-m", model, "-p", str(args.p), "-n", str(args.n), "-t", str(args.t),
           "-r", "1", "-o", "json", *engine["extra"]]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise CompareError(f"{engine['name']}: no result within {args.timeout} s: {' '.join(cmd)}")
    if r.returncode != 0:
        raise CompareError(f"{engine['name']} exited with {r.returncode}: {' '.join(cmd)}\n{r.stderr.strip()[-2000:]}")
    results = {}
    for row in json_rows(r.stdout):
        n_prompt, n_gen = int(row.get("n_prompt", 0)), int(row.get("n_gen", 0))
        test = f"pp{n_prompt}" if n_gen == 0 else f"tg{n_gen}" if n_prompt == 0 else f"pp{n_prompt}+tg{n_gen}"
        results[test] = float(row["avg_ts"])
    if not results:
        raise CompareError(f"{engine['name']}: no JSON result lines from {' '.join(cmd)}\n{r.stderr.strip()[-2000:]}")
    return results


def compare(engines, args, log=sys.stderr):
    counts = {len(e["models"]) for e in engines}
    if len(counts) != 1:
        raise CompareError("every --engine needs the same number of models (the i-th models hold the same weights)")
    n_models = counts.pop()
    samples = {}  # (model index, test, engine name) -> [t/s per round]
    for rnd in range(args.rounds):
        for i in range(n_models):
            # Alternate the order each round so neither engine always runs first.
            order = engines if rnd % 2 == 0 else list(reversed(engines))
            for e in order:
                for test, ts in run_bench(e, e["models"][i], args).items():
                    samples.setdefault((i, test, e["name"]), []).append(ts)
                print(f"round {rnd + 1}/{args.rounds}: {e['name']} on {os.path.basename(e['models'][i])} done",
                      file=log, flush=True)
    return samples


def table(engines, samples):
    base = engines[0]["name"]
    head = ["model", "test"] + [f"{e['name']} t/s" for e in engines] + [f"{base}/{e['name']}" for e in engines[1:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = sorted({(i, test) for (i, test, _) in samples}, key=lambda k: (k[0], k[1]))
    for i, test in keys:
        med = {e["name"]: statistics.median(samples[(i, test, e["name"])]) if (i, test, e["name"]) in samples else None
               for e in engines}
        cells = [os.path.basename(engines[0]["models"][i]), test]
        cells += ["-" if med[e["name"]] is None else f"{med[e['name']]:.2f}" for e in engines]
        for e in engines[1:]:
            other = med[e["name"]]
            cells.append("-" if not other or med[base] is None else f"{med[base] / other:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", action="append", required=True, help="NAME=LLAMA_BENCH:MODEL[,MODEL...]")
    ap.add_argument("--extra", action="append", default=[], help="NAME=ARG,ARG,...: extra llama-bench arguments")
    ap.add_argument("-p", type=int, default=512, help="prompt tokens (0 skips)")
    ap.add_argument("-n", type=int, default=128, help="generated tokens (0 skips)")
    ap.add_argument("-t", type=int, default=2, help="threads")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (median over them)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per llama-bench run")
    args = ap.parse_args(argv)
    try:
        if args.rounds < 1 or args.t < 1 or args.p < 0 or args.n < 0 or args.p + args.n == 0:
            raise CompareError("need --rounds >= 1, -t >= 1 and a prompt (-p) or generation (-n) length")
        engines = [parse_engine(s) for s in args.engine]
        if len({e["name"] for e in engines}) != len(engines):
            raise CompareError("engine names must differ")
        by_name = {e["name"]: e for e in engines}
        for spec in args.extra:
            name, _, extra = spec.partition("=")
            if name not in by_name:
                raise CompareError(f"--extra '{spec}': no engine named '{name}'")
            by_name[name]["extra"] += [a for a in extra.split(",") if a]
        samples = compare(engines, args)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"threads {args.t}, {args.rounds} alternating rounds, medians")
    print(table(engines, samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
