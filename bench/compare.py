#!/usr/bin/env python3
"""Side-by-side benchmark: our `llama-bench` against other engines' `llama-bench` binaries
(ik_llama.cpp, llama.cpp, bitnet.cpp) on the same weights, in alternating rounds, one table with
medians and ratios. Standard library only.

  bench/compare.py --engine ours=build/bin/llama-bench:large-i2_s.gguf \\
                   --engine ik=/scratch/ik/build/bin/llama-bench:large-iq2_bn_r4.gguf \\
                   [-p 512] [-n 128] [-t 2] [-d 0] [--rounds 5] [--extra ik=-fa,0]

Each --engine is NAME=LLAMA_BENCH:MODEL[,MODEL...]; the i-th model of every engine must hold
the same weights (a file requantized losslessly for the other engine counts as the same). The
first engine is the baseline of the ratio columns. Every round runs each engine once per model
(-r 1, so the machine's drift is spread over all engines alike) and the table shows the median
over rounds. Every run is an argument list (no shell); a binary that fails or prints no result
stops the comparison with its stderr. -d N (depth: N tokens already in the cache) goes to every
engine and needs one whose llama-bench has -d (ours, upstream llama.cpp's).

--batched compares `llama-batched-bench` binaries instead (S_PP and S_TG per PP, TG and B):

  bench/compare.py --batched --engine ours=build/bin/llama-batched-bench:M.gguf \\
                   --engine ik=/scratch/ik/build/bin/llama-batched-bench:M-ik.gguf \\
                   [-npp 128] [-ntg 32] [-npl 1,2,4,8] [-pps] [-t 2] [--rounds 5]

Every engine gets the same flags, -c set to the largest N_KV of the cases (so no engine skips one),
and `--output-format jsonl`: ours and llama.cpp's print JSON lines then, ik_llama.cpp's accepts the
flag and prints its markdown table (on stderr); `--plain NAME` leaves the flag out for a build that
does not know it. Either form is read. Engines run in a fresh temporary directory (ik_llama.cpp
writes llama.log into the working directory), with absolute paths.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


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
           "-r", "1", "-o", "json", *(["-d", str(args.d)] if args.d else []), *engine["extra"]]
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
        if int(row.get("n_depth", 0)):
            test += f" @ d{int(row['n_depth'])}"
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


# ---- --batched: llama-batched-bench ------------------------------------------------------------


def int_list(flag, text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v < 0 for v in values):
        raise CompareError(f"{flag} expects a comma-separated list of non-negative integers, got '{text}'")
    return values


def batched_cases(args):
    """(PP, TG, B) in llama-batched-bench's order: PP outermost, B innermost."""
    return [(pp, tg, pl) for pp in args.npp for tg in args.ntg for pl in args.npl]


def batched_n_kv(case, shared):
    pp, tg, pl = case
    return pp + pl * tg if shared else pl * (pp + tg)


def batched_json_rows(text):
    """{(PP, TG, B): (S_PP, S_TG)} from JSON lines with llama-batched-bench's jsonl names."""
    rows = {}
    for row in json_rows(text):
        if all(k in row for k in ("pp", "tg", "pl", "speed_pp", "speed_tg")):
            rows[(int(row["pp"]), int(row["tg"]), int(row["pl"]))] = (float(row["speed_pp"]), float(row["speed_tg"]))
    return rows


def batched_table_rows(text):
    """{(PP, TG, B): (S_PP, S_TG)} from llama-batched-bench's markdown table, wherever it is in the
    text (a log prefix before the first '|' is allowed); the header fixes the column positions."""
    rows, columns = {}, None
    for line in text.splitlines():
        start = line.find("|")
        if start < 0:
            continue
        cells = [c.strip() for c in line[start:].strip().strip("|").split("|")]
        if cells and cells[0] == "PP":
            columns = {name: i for i, name in enumerate(cells)}
            if any(name not in columns for name in ("PP", "TG", "B", "S_PP t/s", "S_TG t/s")):
                columns = None
            continue
        if columns is None or len(cells) != len(columns) or set(cells[0]) <= set("-:"):
            continue
        try:
            key = (int(cells[columns["PP"]]), int(cells[columns["TG"]]), int(cells[columns["B"]]))
            rows[key] = (float(cells[columns["S_PP t/s"]]), float(cells[columns["S_TG t/s"]]))
        except ValueError:
            continue
    return rows


def run_batched(engine, model, args):
    """One llama-batched-bench run over every case; returns {(PP, TG, B): (S_PP, S_TG)}."""
    cases = batched_cases(args)
    n_ctx = max(batched_n_kv(c, args.pps) for c in cases)
    cmd = [os.path.abspath(engine["binary"]), "-m", os.path.abspath(model),
           "-npp", ",".join(map(str, args.npp)), "-ntg", ",".join(map(str, args.ntg)),
           "-npl", ",".join(map(str, args.npl)), "-t", str(args.t), "-c", str(n_ctx)]
    if args.pps:
        cmd.append("-pps")
    if engine["name"] not in args.plain:
        cmd += ["--output-format", "jsonl"]
    cmd += engine["extra"]
    with tempfile.TemporaryDirectory(prefix="compare-batched-") as cwd:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=cwd)
        except subprocess.TimeoutExpired:
            raise CompareError(f"{engine['name']}: no result within {args.timeout} s: {' '.join(cmd)}")
    if r.returncode != 0:
        raise CompareError(f"{engine['name']} exited with {r.returncode}: {' '.join(cmd)}\n{r.stderr.strip()[-2000:]}")
    results = batched_json_rows(r.stdout) or batched_table_rows(r.stdout + "\n" + r.stderr)
    missing = [c for c in cases if c not in results]
    if missing:
        names = ", ".join(f"PP {pp} TG {tg} B {pl}" for pp, tg, pl in missing)
        raise CompareError(f"{engine['name']}: no result for {names} from {' '.join(cmd)}\n"
                           f"{(r.stdout.strip() + chr(10) + r.stderr.strip()).strip()[-2000:]}")
    return {c: results[c] for c in cases}


def compare_batched(engines, args, log=sys.stderr):
    counts = {len(e["models"]) for e in engines}
    if len(counts) != 1:
        raise CompareError("every --engine needs the same number of models (the i-th models hold the same weights)")
    n_models = counts.pop()
    samples = {}  # (model index, (PP, TG, B), engine name) -> [(S_PP, S_TG) per round]
    for rnd in range(args.rounds):
        for i in range(n_models):
            order = engines if rnd % 2 == 0 else list(reversed(engines))
            for e in order:
                for case, speeds in run_batched(e, e["models"][i], args).items():
                    samples.setdefault((i, case, e["name"]), []).append(speeds)
                print(f"round {rnd + 1}/{args.rounds}: {e['name']} on {os.path.basename(e['models'][i])} done",
                      file=log, flush=True)
    return samples


def batched_table(engines, samples):
    base = engines[0]["name"]
    head = ["model", "PP", "TG", "B"]
    for what in ("S_PP", "S_TG"):
        head += [f"{e['name']} {what} t/s" for e in engines] + [f"{base}/{e['name']} {what}" for e in engines[1:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = sorted({(i, case) for (i, case, _) in samples})
    for i, case in keys:
        cells = [os.path.basename(engines[0]["models"][i]), *map(str, case)]
        for k in (0, 1):  # S_PP, S_TG
            med = {e["name"]: statistics.median(s[k] for s in samples[(i, case, e["name"])])
                   for e in engines if (i, case, e["name"]) in samples}
            cells += ["-" if e["name"] not in med else f"{med[e['name']]:.2f}" for e in engines]
            for e in engines[1:]:
                other = med.get(e["name"])
                cells.append("-" if not other or base not in med else f"{med[base] / other:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- llama-bench ---------------------------------------------------------------------------------

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
    ap.add_argument("-d", type=int, default=0, help="depth: tokens already in the cache (llama-bench -d; 0: none)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (median over them)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per llama-bench run")
    ap.add_argument("--batched", action="store_true", help="compare llama-batched-bench binaries (S_PP, S_TG per B)")
    ap.add_argument("-npp", default="128", help="--batched: prompt tokens per sequence, comma-separated")
    ap.add_argument("-ntg", default="32", help="--batched: generated tokens per sequence, comma-separated")
    ap.add_argument("-npl", default="1,2,4,8", help="--batched: numbers of sequences B, comma-separated")
    ap.add_argument("-pps", action="store_true", help="--batched: the prompt is shared between the sequences")
    ap.add_argument("--plain", action="append", default=[],
                    help="--batched: NAME of an engine not given --output-format jsonl (its table is read)")
    args = ap.parse_args(argv)
    try:
        if args.batched:
            if args.d:
                raise CompareError("-d goes with llama-bench engines, not --batched")
            args.npp, args.ntg = int_list("-npp", args.npp), int_list("-ntg", args.ntg)
            args.npl = int_list("-npl", args.npl)
            if args.rounds < 1 or args.t < 1 or min(args.npl) < 1 or any(pp + tg == 0 for pp in args.npp for tg in args.ntg):
                raise CompareError("need --rounds >= 1, -t >= 1, -npl values >= 1 and PP + TG >= 1")
        elif args.rounds < 1 or args.t < 1 or args.p < 0 or args.n < 0 or args.p + args.n == 0 or args.d < 0:
            raise CompareError("need --rounds >= 1, -t >= 1, -d >= 0 and a prompt (-p) or generation (-n) length")
        engines = [parse_engine(s) for s in args.engine]
        if len({e["name"] for e in engines}) != len(engines):
            raise CompareError("engine names must differ")
        by_name = {e["name"]: e for e in engines}
        for spec in args.extra:
            name, _, extra = spec.partition("=")
            if name not in by_name:
                raise CompareError(f"--extra '{spec}': no engine named '{name}'")
            by_name[name]["extra"] += [a for a in extra.split(",") if a]
        for name in args.plain:
            if name not in by_name:
                raise CompareError(f"--plain '{name}': no engine named '{name}'")
        samples = compare_batched(engines, args) if args.batched else compare(engines, args)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.batched:
        shared = ", shared prompt" if args.pps else ""
        print(f"threads {args.t}{shared}, {args.rounds} alternating rounds, medians")
        print(batched_table(engines, samples))
        return 0
    print(f"threads {args.t}, {args.rounds} alternating rounds, medians" + (f", depth {args.d}" if args.d else ""))
    print(table(engines, samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
