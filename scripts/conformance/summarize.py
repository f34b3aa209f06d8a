#!/usr/bin/env python3
"""Render a bitnet_plugin report (JSON lines) as Markdown: per-file table, skips, waivers and
one line per failure. Standard library only.

    summarize.py REPORT.jsonl [--title TEXT]
"""

import argparse
import collections
import json
import re
import sys


def load(path):
    meta, recs = {}, []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj.get("meta"):
                meta = obj
            else:
                recs.append(obj)
    return meta, recs


def md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def short_id(nodeid):
    path, _, rest = nodeid.partition("::")
    return f"{path.rsplit('/', 1)[-1]}::{rest}" if rest else nodeid


def refused_flag(rec):
    for line in rec.get("server_log_tail") or []:
        m = re.search(r"unknown (?:argument|option|flag):?\s+'?(-[^\s']+)'?"
                      r"|(?:^|\s)(-{1,2}[A-Za-z][\w-]*) is not supported", line)
        if m:
            return m.group(1) or m.group(2), line.strip()
    return None, None


def describe_failure(rec):
    """(expected, actual) for one failed test."""
    msg = rec.get("message") or ""
    stmt = rec.get("statement") or ""
    if "Server process died" in msg or "did not start" in msg:
        flag, line = refused_flag(rec)
        tail = "; ".join((rec.get("server_log_tail") or [])[-2:])
        if flag:
            allf = ", ".join(f"`{f}`" for f in rec.get("refused_flags") or [flag])
            return "server starts", f"exits: `{md(line)}`; all refused flags: {allf}"
        return "server starts", f"{md(msg)}; log: {md(tail)}"
    first = msg.splitlines()[0] if msg else ""
    expected = f"`{md(stmt)}`" if stmt else md(first)
    if first and first not in stmt:
        expected += f" — {md(first[:200])}"
    got = []
    for r in rec.get("last_responses") or []:
        if "error" in r:
            got.append(f"{r['req']} → {md(r['error'])}")
        elif "events" in r:
            s = f"{r['req']} → {r.get('status')}"
            if r.get("body"):
                s += f" {md(r['body'])}"
            else:
                s += f", {r['events']} events, last {md(r.get('last_event'))}"
            got.append(s)
        else:
            got.append(f"{r['req']} → {r['status']} {md(r['body'])}")
    actual = " ; ".join(got[-1:]) if got else f"{rec.get('exception')}"
    if rec.get("dropped_flags"):
        names = sorted({d.split()[0] for d in rec["dropped_flags"]})
        actual += f" (dropped flags: {' '.join(names)})"
    return expected, actual


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--title", default="llama.cpp server suite against bitnet.cpp")
    a = ap.parse_args()
    meta, recs = load(a.report)
    out = []
    w = out.append
    w(f"## {a.title}\n")
    if meta:
        w(f"- date: {meta.get('date')}; binary: `{meta.get('bin')}`; model: `{meta.get('model')}`")
        if meta.get("drop_unknown_flags_mode"):
            w("- **DIAGNOSTIC MODE**: flags the binary refused were dropped; these are not conformance results")
        w("")
    by_file = collections.OrderedDict()
    for r in recs:
        by_file.setdefault(r["file"], []).append(r)
    w("| file | run | pass | fail | skip | of the passes: with waived model-specific assertions |")
    w("|---|---:|---:|---:|---:|---:|")
    tot = collections.Counter()
    for f, rs in by_file.items():
        c = collections.Counter()
        for r in rs:
            c["run"] += 1
            o = r["outcome"]
            c["pass" if o == "passed" else "skip" if o == "skipped" else "fail"] += 1
            if o == "passed" and r["waivers"]:
                c["waived"] += 1
        tot.update(c)
        w(f"| {f} | {c['run']} | {c['pass']} | {c['fail']} | {c['skip']} | {c['waived']} |")
    w(f"| **total** | {tot['run']} | {tot['pass']} | {tot['fail']} | {tot['skip']} | {tot['waived']} |")
    w("")

    skips = collections.Counter()
    for r in recs:
        if r["outcome"] == "skipped":
            reason = r.get("skip_reason") or ""
            if reason.startswith("model-specific assertion waived"):
                reason = re.sub(r"\): .*", ")", reason)
            skips[(r["file"], reason)] += 1
    if skips:
        w("### Skipped\n")
        w("| file | tests | reason |")
        w("|---|---:|---|")
        for (f, reason), n in sorted(skips.items()):
            w(f"| {f} | {n} | {md(reason)} |")
        w("")

    waivers = [(r, wv) for r in recs for wv in r["waivers"]]
    if waivers:
        w("### Waived model-specific assertions\n")
        w("| test | outcome | assertion | ours | why |")
        w("|---|---|---|---|---|")
        for r, wv in waivers:
            w(f"| {md(short_id(r['nodeid']))} | {r['outcome']} | `{md(wv['what'])}` | {md(wv['actual'])} | {md(wv['reason'])} |")
        w("")

    refused = collections.Counter()
    for r in recs:
        for f in r.get("refused_flags") or []:
            refused[f.split()[0]] += 1
    if refused:
        w("### Flags the binary refused (tests whose command line had them)\n")
        w("| flag | tests |")
        w("|---|---:|")
        for f, n in sorted(refused.items(), key=lambda kv: (-kv[1], kv[0])):
            w(f"| `{f}` | {n} |")
        w("")

    fails = [r for r in recs if r["outcome"] in ("failed", "error")]
    starts = collections.OrderedDict()
    others = []
    for r in fails:
        exp, act = describe_failure(r)
        if exp == "server starts":
            starts.setdefault(act, []).append(r)
        else:
            others.append(r)
    if starts:
        w("### Failures: the server did not start\n")
        for act, rs in starts.items():
            w(f"- {len(rs)} tests — {act}: " + ", ".join(f"`{md(short_id(r['nodeid']))}`" for r in rs))
        w("")
    if others:
        w("### Failures\n")
        for r in others:
            exp, act = describe_failure(r)
            loc = f" ({r['location']})" if r.get("location") else ""
            w(f"- `{short_id(r['nodeid'])}`{loc}: expected {exp}; got {act}")
        w("")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
