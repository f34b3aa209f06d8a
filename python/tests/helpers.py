"""Test helpers: import path, a fake `bitnet` binary (a real executable that records its argv)."""

import atexit
import os
import shutil
import stat
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

FAKE = '''#!{python}
import json, os, sys
COMMANDS = {commands!r}
if len(sys.argv) < 2 or sys.argv[1] == "--help":
    print("usage: bitnet <command> [options]\\n\\ncommands:")
    for c in COMMANDS:
        print("  %-12s summary" % c)
    sys.exit(0)
if os.environ.get("BITNET_FAKE_RECORD"):  # what a command got: its arguments and the API key variables
    with open(os.environ["BITNET_FAKE_RECORD"], "a") as f:
        f.write(json.dumps({{"argv": sys.argv[1:],
                             "env": {{k: v for k, v in os.environ.items() if "API_KEY" in k}}}}) + "\\n")
if sys.argv[1] not in COMMANDS:
    sys.stderr.write("error: unknown command '%s' (see bitnet --help)\\n" % sys.argv[1])
    sys.exit(2)
if "--dry-run" in sys.argv:
    print(json.dumps({{"resolved": {{"threads": 3, "ctx_size": 2048}}}}))
    sys.exit(0)
print(json.dumps(sys.argv[1:]))
'''


def fake_bin_dir(commands=("run", "doctor", "gen-model")) -> str:
    """A directory with an executable `bitnet` that knows `commands` and prints its arguments (and,
    when $BITNET_FAKE_RECORD names a file, appends its arguments and API key variables to it)."""
    d = tempfile.mkdtemp(prefix="bitnet-fake-bin-")
    atexit.register(shutil.rmtree, d, True)
    path = os.path.join(d, "bitnet")
    with open(path, "w") as f:
        f.write(FAKE.format(python=sys.executable, commands=list(commands)))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return d


def real_bin_dir() -> str:
    return os.environ.get("BITNET_BIN_DIR") or os.path.join(ROOT, "build", "bin")
