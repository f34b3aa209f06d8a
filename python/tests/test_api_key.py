"""The server's API key travels in the child's environment (LLAMA_API_KEY), never on its command
line (any local user can read /proc/PID/cmdline): in the argument list ServerConfig builds, in
the process run_inference_server.py starts, in a dry run (shown masked), and in every attempt of
a task the RuntimeSupervisor restarts."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from helpers import ROOT, fake_bin_dir

from bitnet.config import ServerConfig
from bitnet.runtime import BitNetRuntime
from bitnet.supervisor import RuntimeSupervisor

KEY = "topsecret-key-1234"

# A `bitnet serve` stand-in for the supervisor: records what each attempt got, and fails the first
# one with EX_TEMPFAIL (retryable), as a server that crashed at start-up and is restarted.
FLAKY = '''#!{python}
import json, os, sys
record = {record!r}
with open(record, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "key": os.environ.get("LLAMA_API_KEY"),
                        "shadow": os.environ.get("LLAMA_ARG_API_KEY")}}) + "\\n")
with open(record) as f:
    attempts = len(f.readlines())
sys.exit(75 if attempts == 1 else 0)
'''


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


class KeyNotInArgv(unittest.TestCase):
    def test_argument_list_has_no_key_and_the_environment_has_it(self):
        c = ServerConfig(host="0.0.0.0", api_key=KEY).validate()
        argv = c.args("bitnet")
        self.assertNotIn(KEY, " ".join(argv))
        self.assertNotIn("--api-key", argv)
        self.assertEqual(c.env()["LLAMA_API_KEY"], KEY)
        self.assertNotIn(KEY, repr(c))
        env = BitNetRuntime(bin_dir="/nonexistent").environment(c)
        self.assertEqual(env["LLAMA_API_KEY"], KEY)
        self.assertEqual(env.get("PATH"), os.environ.get("PATH"), "the rest of the environment is inherited")

    def test_variables_the_binary_would_prefer_are_cleared(self):
        # bitnet serve reads LLAMA_ARG_API_KEY (and _FILE) before LLAMA_API_KEY.
        parent = {"PATH": "/bin", "LLAMA_ARG_API_KEY": "stale-key-000", "LLAMA_ARG_API_KEY_FILE": "/k"}
        env = BitNetRuntime(bin_dir="/nonexistent").environment(ServerConfig(api_key=KEY), parent)
        self.assertEqual(env, {"PATH": "/bin", "LLAMA_API_KEY": KEY})

    def test_no_key_changes_nothing(self):
        c = ServerConfig()
        self.assertEqual(c.env(), {})
        self.assertIsNone(BitNetRuntime(bin_dir="/nonexistent").environment(c))


def script(name, *args, bin_dir, env_extra):
    env = dict(os.environ)
    env.pop("BITNET_BIN", None)
    env.pop("LLAMA_API_KEY", None)
    env["BITNET_BIN_DIR"] = bin_dir
    env.update(env_extra)
    return subprocess.run([sys.executable, os.path.join(ROOT, name), *args], capture_output=True, text=True,
                          env=env, timeout=120)


class ServerScript(unittest.TestCase):
    def setUp(self):
        self.bin = fake_bin_dir(("run", "serve"))
        self.dir = tempfile.mkdtemp(prefix="bitnet-key-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.record = os.path.join(self.dir, "record.jsonl")

    def test_key_from_the_environment_reaches_the_server_in_its_environment(self):
        r = script("run_inference_server.py", "--host", "0.0.0.0", bin_dir=self.bin,
                   env_extra={"BITNET_API_KEY": KEY, "BITNET_FAKE_RECORD": self.record})
        self.assertEqual(r.returncode, 0, r.stderr)
        (got,) = records(self.record)
        self.assertEqual(got["argv"][0], "serve")
        self.assertNotIn(KEY, " ".join(got["argv"]))
        self.assertNotIn("--api-key", got["argv"])
        self.assertEqual(got["env"].get("LLAMA_API_KEY"), KEY)

    def test_key_flag_too(self):
        r = script("run_inference_server.py", "--api-key", KEY, bin_dir=self.bin,
                   env_extra={"BITNET_FAKE_RECORD": self.record, "LLAMA_ARG_API_KEY": "stale-key-000"})
        self.assertEqual(r.returncode, 0, r.stderr)
        (got,) = records(self.record)
        self.assertNotIn(KEY, " ".join(got["argv"]))
        self.assertEqual(got["env"], {"LLAMA_API_KEY": KEY})

    def test_dry_run_says_a_key_is_set_without_showing_it(self):
        env = {"BITNET_API_KEY": KEY, "BITNET_FAKE_RECORD": self.record}
        text = script("run_inference_server.py", "--host", "0.0.0.0", "--dry-run", bin_dir=self.bin, env_extra=env)
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertNotIn(KEY, text.stdout + text.stderr)
        self.assertIn("LLAMA_API_KEY=****", text.stdout)
        j = script("run_inference_server.py", "--host", "0.0.0.0", "--dry-run", "--json", bin_dir=self.bin,
                   env_extra=env)
        self.assertNotIn(KEY, j.stdout + j.stderr)
        report = json.loads(j.stdout)
        self.assertEqual(report["env"], {"LLAMA_API_KEY": "****"})
        self.assertEqual(report["config"]["api_key"], "****")
        # The binary's own dry run got the key the same way (its resolution may depend on it).
        for got in records(self.record):
            self.assertNotIn(KEY, " ".join(got["argv"]))
            self.assertEqual(got["env"].get("LLAMA_API_KEY"), KEY)


class SupervisedRestart(unittest.TestCase):
    def test_every_attempt_gets_the_key_and_the_event_log_never_has_it(self):
        d = tempfile.mkdtemp(prefix="bitnet-key-sup-")
        self.addCleanup(shutil.rmtree, d, True)
        record, events = os.path.join(d, "record.jsonl"), os.path.join(d, "events.jsonl")
        binary = os.path.join(d, "bitnet")
        with open(binary, "w") as f:
            f.write(FLAKY.format(python=sys.executable, record=record))
        os.chmod(binary, 0o755)
        config = ServerConfig(host="0.0.0.0", api_key=KEY).validate()
        sup = RuntimeSupervisor(retries=2, backoff=0.01, events_path=events)
        os.environ["LLAMA_ARG_API_KEY"] = "stale-key-000"  # inherited, and preferred by the binary
        self.addCleanup(os.environ.pop, "LLAMA_ARG_API_KEY", None)

        async def go():
            return await sup.schedule(config.args(binary), env=config.env())

        result = asyncio.run(go())
        self.assertEqual((result.status, result.attempts), ("ok", 2))
        attempts = records(record)
        self.assertEqual(len(attempts), 2)
        for got in attempts:
            self.assertNotIn(KEY, " ".join(got["argv"]))
            self.assertEqual((got["key"], got["shadow"]), (KEY, None))
        self.assertNotIn(KEY, " ".join(result.argv))
        with open(events) as f:
            self.assertNotIn(KEY, f.read())

    def test_events_mask_a_key_given_on_a_command_line_anyway(self):
        d = tempfile.mkdtemp(prefix="bitnet-key-sup-")
        self.addCleanup(shutil.rmtree, d, True)
        events = os.path.join(d, "events.jsonl")
        sup = RuntimeSupervisor(events_path=events)

        async def go():
            return await sup.schedule([sys.executable, "-c", "pass", "--api-key", KEY, "--api-key=" + KEY])

        self.assertEqual(asyncio.run(go()).status, "ok")
        with open(events) as f:
            log = f.read()
        self.assertNotIn(KEY, log)
        self.assertIn("****", log)


if __name__ == "__main__":
    unittest.main()
