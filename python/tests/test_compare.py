"""bench/compare.py against fake llama-bench executables: the exact argument lists, alternating
order, medians and ratios, and clear errors for a failing engine or mismatched model lists."""

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
calls = sum(1 for _ in open({log!r}))
print("some banner line")
rows = []
if p:
    rows.append({{"n_prompt": p, "n_gen": 0, "avg_ts": {pp} + calls % 2}})
if n:
    rows.append({{"n_prompt": 0, "n_gen": n, "avg_ts": {tg}}})
if calls % 2:  # both output forms: a JSON array (-o json) and JSON lines
    print(json.dumps(rows, indent=2))
else:
    for row in rows:
        print(json.dumps(row))
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


if __name__ == "__main__":
    unittest.main()
