"""bench/compare.py against fake llama-bench and llama-batched-bench executables: the exact argument
lists, alternating order, medians and ratios, both result forms of llama-batched-bench (JSON lines,
the markdown table), and clear errors for a failing engine, a missing case or mismatched model
lists."""

import json
import os
import stat
import subprocess
import sys
import tempfile
import unittest

from helpers import ROOT

FAKE_BENCH = '''#!{python}
import json, sys
with open({log!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if {fail!r}:
    sys.stderr.write("fake engine: cannot load model\\n")
    sys.exit(3)
args = sys.argv[1:]
p, n = int(args[args.index("-p") + 1]), int(args[args.index("-n") + 1])
d = int(args[args.index("-d") + 1]) if "-d" in args else 0
calls = sum(1 for _ in open({log!r}))
print("some banner line")
rows = []
if p:
    rows.append({{"n_prompt": p, "n_gen": 0, "n_depth": d, "avg_ts": {pp} + calls % 2}})
if n:
    rows.append({{"n_prompt": 0, "n_gen": n, "n_depth": d, "avg_ts": {tg}}})
if calls % 2:  # both output forms: a JSON array (-o json) and JSON lines
    print(json.dumps(rows, indent=2))
else:
    for row in rows:
        print(json.dumps(row))
'''


# A llama-batched-bench: with --output-format jsonl and json=True it prints JSON lines on stdout
# (ours, llama.cpp's); otherwise llama-batched-bench's markdown table on stderr after a log prefix,
# as ik_llama.cpp does, and a llama.log in its working directory. S_PP = pp_rate·B (+1 on odd
# calls), S_TG = tg_rate·B; `skip`: a B it leaves out.
FAKE_BATCHED = '''#!{python}
import json, os, sys
with open({log!r}, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd()}}) + "\\n")
open("llama.log", "w").close()
args = sys.argv[1:]
def ints(flag):
    return [int(v) for v in args[args.index(flag) + 1].split(",")]
calls = sum(1 for _ in open({log!r}))
shared = "-pps" in args
jsonl = {json!r} and "--output-format" in args and args[args.index("--output-format") + 1] == "jsonl"
sys.stderr.write("main: n_kv_max = 512, n_batch = 2048\\n\\n")
if not jsonl:
    sys.stderr.write("|%6s | %6s | %4s | %6s | %8s | %8s | %8s | %8s | %8s | %8s |\\n" % (
        "PP", "TG", "B", "N_KV", "T_PP s", "S_PP t/s", "T_TG s", "S_TG t/s", "T s", "S t/s"))
    sys.stderr.write("|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|\\n")
for pp in ints("-npp"):
    for tg in ints("-ntg"):
        for pl in ints("-npl"):
            if pl == {skip!r}:
                continue
            n_kv = pp + pl * tg if shared else pl * (pp + tg)
            s_pp, s_tg = {pp_rate} * pl + calls % 2, {tg_rate} * pl
            if jsonl:
                print(json.dumps({{"pp": pp, "tg": tg, "pl": pl, "n_kv": n_kv, "t_pp": 1.0, "speed_pp": s_pp,
                                  "t_tg": 1.0, "speed_tg": s_tg, "t": 2.0, "speed": n_kv / 2}}))
            else:
                sys.stderr.write("[1700000000] |%6d | %6d | %4d | %6d | %8.3f | %8.2f | %8.3f | %8.2f | %8.3f | %8.2f |\\n"
                                 % (pp, tg, pl, n_kv, 1.0, s_pp, 1.0, s_tg, 2.0, n_kv / 2))
sys.stderr.write("\\nllama_print_timings:        load time =     221.36 ms\\n")
'''


class Compare(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bitnet-compare-")
        self.model = os.path.join(self.dir, "m.gguf")
        open(self.model, "w").close()

    def fake(self, name, pp, tg, fail=False):
        path, log = os.path.join(self.dir, name), os.path.join(self.dir, name + ".log")
        with open(path, "w") as f:
            f.write(FAKE_BENCH.format(python=sys.executable, log=log, fail=fail, pp=pp, tg=tg))
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return path, log

    def fake_batched(self, name, pp_rate, tg_rate, json=False, skip=None):
        path, log = os.path.join(self.dir, name), os.path.join(self.dir, name + ".log")
        with open(path, "w") as f:
            f.write(FAKE_BATCHED.format(python=sys.executable, log=log, json=json, skip=skip, pp_rate=pp_rate,
                                        tg_rate=tg_rate))
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return path, log

    def compare(self, *args):
        return subprocess.run([sys.executable, os.path.join(ROOT, "bench", "compare.py"), *args],
                              capture_output=True, text=True, timeout=60)

    def test_medians_ratios_and_exact_arguments(self):
        ours, ours_log = self.fake("ours", 300, 90)
        other, other_log = self.fake("other", 150, 60)
        r = self.compare("--engine", f"ours={ours}:{self.model}", "--engine", f"ik={other}:{self.model}",
                         "--extra", "ik=-fa,0", "-p", "64", "-n", "16", "-t", "2", "--rounds", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(other_log) as f:
            calls = [json.loads(line) for line in f]
        self.assertEqual(len(calls), 3)
        self.assertEqual(calls[0], ["-m", self.model, "-p", "64", "-n", "16", "-t", "2", "-r", "1", "-o", "json",
                                    "-fa", "0"])
        rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[1:-1]]
                for line in r.stdout.splitlines() if line.startswith("| m.gguf")}
        # pp is 301, 300, 301 (ours) and 151, 150, 151 (ik) by call count: medians of 3 rounds.
        self.assertEqual(rows["pp64"][2:], ["301.00", "151.00", "1.99x"])
        self.assertEqual(rows["tg16"][2:], ["90.00", "60.00", "1.50x"])
        self.assertIn("round 3/3", r.stderr)

    def test_depth_goes_to_every_engine_and_names_the_tests(self):
        ours, ours_log = self.fake("ours", 300, 90)
        other, _ = self.fake("other", 150, 60)
        r = self.compare("--engine", f"ours={ours}:{self.model}", "--engine", f"up={other}:{self.model}",
                         "-p", "64", "-n", "16", "-d", "4096", "--rounds", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(ours_log) as f:
            self.assertEqual(json.loads(f.readline())[-2:], ["-d", "4096"])
        self.assertIn("| m.gguf | pp64 @ d4096 |", r.stdout)
        self.assertIn("| m.gguf | tg16 @ d4096 | 90.00 | 60.00 | 1.50x |", r.stdout)
        self.assertIn("depth 4096", r.stdout)

    def test_failing_engine_is_a_clear_error(self):
        ours, _ = self.fake("ours", 300, 90)
        bad, _ = self.fake("bad", 1, 1, fail=True)
        r = self.compare("--engine", f"ours={ours}:{self.model}", "--engine", f"bad={bad}:{self.model}",
                         "--rounds", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad exited with 3", r.stderr)
        self.assertIn("fake engine: cannot load model", r.stderr)

    def test_bad_specs_are_refused(self):
        ours, _ = self.fake("ours", 300, 90)
        cases = [
            (["--engine", f"ours={ours}:{self.model},{self.model}", "--engine", f"b={ours}:{self.model}"],
             "same number of models"),
            (["--engine", f"ours={ours}:/nonexistent.gguf"], "not found"),
            (["--engine", "ours"], "expected NAME=LLAMA_BENCH:MODEL"),
            (["--engine", f"ours={ours}:{self.model}", "--extra", "nobody=-fa,0"], "no engine named 'nobody'"),
        ]
        for args, message in cases:
            r = self.compare(*args)
            self.assertEqual(r.returncode, 1, args)
            self.assertIn(message, r.stderr, args)


    def batched_rows(self, stdout):
        return {tuple(int(c) for c in line.split("|")[2:5]): [c.strip() for c in line.split("|")[5:-1]]
                for line in stdout.splitlines() if line.startswith("| m.gguf")}

    def test_batched_json_and_table_engines_medians_ratios_and_arguments(self):
        ours, ours_log = self.fake_batched("ours", 300, 90, json=True)
        ik, ik_log = self.fake_batched("ik", 150, 60)
        r = self.compare("--batched", "--engine", f"ours={ours}:{self.model}", "--engine", f"ik={ik}:{self.model}",
                         "--extra", "ik=-fa,1", "-npp", "16", "-ntg", "4", "-npl", "1,2", "-t", "2", "--rounds", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(ours_log) as f:
            ours_calls = [json.loads(line) for line in f]
        with open(ik_log) as f:
            ik_calls = [json.loads(line) for line in f]
        self.assertEqual(len(ours_calls), 3)
        self.assertEqual(len(ik_calls), 3)
        # -c is the largest N_KV of the cases: B 2 × (16 + 4).
        common = ["-m", self.model, "-npp", "16", "-ntg", "4", "-npl", "1,2", "-t", "2", "-c", "40",
                  "--output-format", "jsonl"]
        self.assertEqual(ours_calls[0]["argv"], common)
        self.assertEqual(ik_calls[0]["argv"], common + ["-fa", "1"])
        # Each run in its own temporary directory (ik_llama.cpp's llama.log), gone afterwards.
        cwds = {c["cwd"] for c in ours_calls + ik_calls}
        self.assertEqual(len(cwds), 6)
        for cwd in cwds:
            self.assertNotEqual(os.path.realpath(cwd), os.path.realpath(os.getcwd()))
            self.assertFalse(os.path.exists(cwd))
        rows = self.batched_rows(r.stdout)
        self.assertIn("| model | PP | TG | B | ours S_PP t/s | ik S_PP t/s | ours/ik S_PP | ours S_TG t/s | "
                      "ik S_TG t/s | ours/ik S_TG |", r.stdout)
        # S_PP by call count: 301, 300, 301 (ours, B 1) and 151, 150, 151 (ik): medians of 3 rounds.
        self.assertEqual(rows[(16, 4, 1)], ["301.00", "151.00", "1.99x", "90.00", "60.00", "1.50x"])
        self.assertEqual(rows[(16, 4, 2)], ["601.00", "301.00", "2.00x", "180.00", "120.00", "1.50x"])
        self.assertIn("round 3/3", r.stderr)

    def test_batched_shared_prompt_and_plain_engine(self):
        ours, ours_log = self.fake_batched("ours", 300, 90, json=True)
        old, old_log = self.fake_batched("old", 100, 30)
        r = self.compare("--batched", "--engine", f"ours={ours}:{self.model}", "--engine", f"old={old}:{self.model}",
                         "--plain", "old", "-npp", "32", "-ntg", "8", "-npl", "4", "-pps", "--rounds", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(old_log) as f:
            argv = json.loads(f.readline())["argv"]
        self.assertEqual(argv, ["-m", self.model, "-npp", "32", "-ntg", "8", "-npl", "4", "-t", "2", "-c", "64", "-pps"])
        with open(ours_log) as f:
            self.assertIn("--output-format", json.loads(f.readline())["argv"])
        self.assertEqual(self.batched_rows(r.stdout)[(32, 8, 4)], ["1201.00", "401.00", "3.00x", "360.00", "120.00", "3.00x"])
        self.assertIn("shared prompt", r.stdout)

    def test_batched_missing_case_and_bad_lists_are_errors(self):
        ours, _ = self.fake_batched("ours", 300, 90, json=True)
        ik, _ = self.fake_batched("ik", 150, 60, skip=8)
        r = self.compare("--batched", "--engine", f"ours={ours}:{self.model}", "--engine", f"ik={ik}:{self.model}",
                         "-npp", "16", "-ntg", "4", "-npl", "1,8", "--rounds", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("ik: no result for PP 16 TG 4 B 8", r.stderr)
        for args, message in [(["-npl", "0"], "-npl values >= 1"), (["-npp", "1,x"], "-npp expects a comma-separated"),
                              (["--plain", "nobody"], "no engine named 'nobody'")]:
            r = self.compare("--batched", "--engine", f"ours={ours}:{self.model}", *args)
            self.assertEqual(r.returncode, 1, args)
            self.assertIn(message, r.stderr, args)


if __name__ == "__main__":
    unittest.main()
