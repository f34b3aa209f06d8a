"""Bad input and broken binaries end in one `error: …` line and an exit code (2: usage, 1: the
rest), never a Python traceback: values checked on the --diagnostics path too, and the answers of
child processes checked before they are parsed. Each command runs as a real process."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

from helpers import ROOT, fake_bin_dir, real_bin_dir

from bitnet.runtime import RuntimeDiagnostics, _port_problem

# A `bitnet` whose doctor answers as told by $FAKE_DOCTOR: "usage" (exit 2, like a bad flag),
# "garbage" (not JSON), "crash" (killed by a signal), "wrong" (JSON, but not a report).
ODD = '''#!{python}
import os, signal, sys
if len(sys.argv) < 2 or sys.argv[1] == "--help":
    print("usage: bitnet <command>\\n\\ncommands:\\n  run  x\\n  doctor  x\\n  serve  x")
    sys.exit(0)
mode = os.environ.get("FAKE_DOCTOR")
if mode == "usage":
    sys.stderr.write("error: -c must be positive\\n")
    sys.exit(2)
if mode == "garbage":
    print("Segmentation fault (core dumped), or some other noise")
    sys.exit(1)
if mode == "crash":
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "wrong":
    print('{{"ready": "yes", "checks": 3}}')
    sys.exit(0)
sys.exit(3)
'''


def run(name, *args, bin_dir=None, env_extra=None, cwd=None):
    env = dict(os.environ)
    env.pop("BITNET_BIN", None)
    env["BITNET_BIN_DIR"] = bin_dir or "/nonexistent/bin"
    env.update(env_extra or {})
    return subprocess.run([sys.executable, os.path.join(ROOT, name), *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=cwd)


class ClearErrors(unittest.TestCase):
    def expect(self, r, code, needle):
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(r.returncode, code, r.stderr)
        self.assertIn(needle, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("error: ", lines[0])

    def odd_bin(self):
        d = tempfile.mkdtemp(prefix="bitnet-odd-bin-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "bitnet")
        with open(path, "w") as f:
            f.write(ODD.format(python=sys.executable))
        os.chmod(path, 0o755)
        return d

    # ---- values are checked on the --diagnostics path too --------------------------------------
    def test_diagnostics_with_a_bad_context_size(self):
        for bin_dir in (None, fake_bin_dir()):  # no binary (the Python report), and a binary
            with self.subTest(bin_dir=bin_dir):
                r = run("run_inference.py", "--diagnostics", "-c", "-1", bin_dir=bin_dir)
                self.expect(r, 2, "run_inference: error: -c must be positive")

    def test_diagnostics_with_a_bad_port(self):
        for bin_dir in (None, fake_bin_dir(("run", "serve", "doctor"))):
            with self.subTest(bin_dir=bin_dir):
                r = run("run_inference_server.py", "--diagnostics", "--port", "99999", bin_dir=bin_dir)
                self.expect(r, 2, "run_inference_server: error: --port must be between 1 and 65535")

    def test_diagnostics_need_no_prompt_and_report_a_public_host(self):
        for model in ([], ["-m", "/nonexistent/m.gguf"], ["-m", tempfile.gettempdir()]):  # findings, not usage
            r = run("run_inference.py", "--diagnostics", "--json", *model)
            self.assertEqual(r.returncode, 1, r.stderr)  # not ready (no binary), but a report
            self.assertIn('"schema": "bitnet.doctor"', r.stdout)
        r = run("run_inference_server.py", "--diagnostics", "--host", "0.0.0.0", "--port", "0", "--json")
        self.assertNotIn("Traceback", r.stderr)
        self.assertIn('"schema": "bitnet.doctor"', r.stdout)

    # ---- a binary that does not answer as expected -----------------------------------------------
    def test_a_binary_that_is_not_bitnet(self):
        r = run("run_inference.py", "--diagnostics", env_extra={"BITNET_BIN": "/bin/false"})
        self.expect(r, 1, "run_inference: error: `/bin/false doctor --json` (exit status 1) printed no report")
        r = run("run_inference.py", "-p", "hi", env_extra={"BITNET_BIN": "/bin/false"})
        self.expect(r, 1, "/bin/false does not look like the bitnet binary")
        r = run("run_inference_server.py", "--diagnostics", env_extra={"BITNET_BIN": "/bin/false"})
        self.expect(r, 1, "printed no report")

    def test_a_binary_that_cannot_be_executed(self):
        d = tempfile.mkdtemp(prefix="bitnet-noexec-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "bitnet")
        with open(path, "w") as f:
            f.write("not a program\n")  # executable bit, no #! line: exec fails with ENOEXEC
        os.chmod(path, 0o755)
        self.expect(run("run_inference.py", "--diagnostics", bin_dir=d), 1, "cannot run " + path)
        self.expect(run("run_inference.py", "-p", "hi", bin_dir=d), 1, "cannot run " + path)
        self.expect(run("utils/generate-dummy-bitnet-model.py", "--outfile", os.path.join(d, "o.gguf"), bin_dir=d),
                    1, "error: ")

    def test_doctor_answers_that_are_not_reports(self):
        d = self.odd_bin()
        cases = [("usage", 2, "run_inference: error: -c must be positive"),
                 ("garbage", 1, "printed no report"),
                 ("crash", 1, "killed by signal 9"),
                 ("wrong", 1, "not a bitnet.doctor report"),
                 ("other", 1, "failed (exit status 3)")]
        for mode, code, needle in cases:
            with self.subTest(mode=mode):
                self.expect(run("run_inference.py", "--diagnostics", bin_dir=d, env_extra={"FAKE_DOCTOR": mode}),
                            code, needle)

    def test_a_dry_run_with_a_binary_that_is_not_bitnet_still_shows_the_command(self):
        r = run("run_inference.py", "-p", "hi", "--dry-run", env_extra={"BITNET_BIN": "/bin/false"})
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("does not look like the bitnet binary", r.stdout)
        self.assertIn("would run:", r.stdout)

    # ---- setup_env.py ------------------------------------------------------------------------------
    def test_setup_env_log_dir_that_is_a_file(self):
        d = tempfile.mkdtemp(prefix="bitnet-setup-ld-")
        self.addCleanup(shutil.rmtree, d, True)
        os.makedirs(os.path.join(d, "src"))
        regular = os.path.join(d, "a-file")
        with open(regular, "w") as f:
            f.write("x")
        common = ["--source-dir", os.path.join(d, "src"), "--build-dir", os.path.join(d, "build"), "--no-model"]
        for log_dir, needle in ((regular, f"{regular} is not a directory"),
                                (os.path.join(regular, "sub"), f"{regular} (in {regular}/sub) is not a directory")):
            with self.subTest(log_dir=log_dir):
                r = run("setup_env.py", *common, "-ld", log_dir)
                self.expect(r, 2, "setup_env: error: -ld/--log-dir: " + needle)
                self.assertFalse(os.path.exists(os.path.join(d, "build")), "nothing may be created first")
        with open(regular) as f:
            self.assertEqual(f.read(), "x")

    def test_setup_env_build_dir_that_is_a_file(self):
        d = tempfile.mkdtemp(prefix="bitnet-setup-bd-")
        self.addCleanup(shutil.rmtree, d, True)
        regular = os.path.join(d, "a-file")
        with open(regular, "w") as f:
            f.write("x")
        r = run("setup_env.py", "--source-dir", d, "--build-dir", regular, "--clean", "--no-model")
        self.expect(r, 2, "setup_env: error: --build-dir: ")
        self.assertTrue(os.path.isfile(regular))


class PortCheck(unittest.TestCase):
    def test_port_problems_are_findings_not_exceptions(self):
        self.assertIn("between 1 and 65535", _port_problem("127.0.0.1", 99999))
        self.assertIn("cannot bind no-such-host.invalid:8080", _port_problem("no-such-host.invalid", 8080))
        if socket.has_ipv6:
            try:
                with socket.socket(socket.AF_INET6) as s:
                    s.bind(("::1", 0))
            except OSError:
                return
            self.assertEqual(_port_problem("::1", 0), "", "an IPv6 host is bound as IPv6")

    def test_a_report_without_its_fields_is_a_value_error(self):
        for bad in ([], {"ready": True}, {"ready": True, "checks": [{"name": "x"}]}, {"ready": 1, "checks": []}):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                RuntimeDiagnostics.from_dict(bad)


@unittest.skipUnless(os.access(os.path.join(real_bin_dir(), "bitnet"), os.X_OK),
                     "the engine is not built (scripts/setup.sh builds it before the tests)")
class RealBinary(unittest.TestCase):
    def test_diagnostics_bad_values_and_port_zero(self):
        r = run("run_inference.py", "--diagnostics", "-c", "-1", bin_dir=real_bin_dir())
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(r.returncode, 2, r.stderr)
        r = run("run_inference_server.py", "--diagnostics", "--port", "0", "--json", bin_dir=real_bin_dir())
        self.assertNotIn("Traceback", r.stderr)
        self.assertIn('"schema": "bitnet.doctor"', r.stdout)

    def test_server_diagnostics_report_the_kv_cache_per_slot(self):
        r = run("run_inference_server.py", "--diagnostics", "--port", "0", "--json", "-c", "1024", "-np", "2",
                bin_dir=real_bin_dir())
        self.assertNotIn("Traceback", r.stderr)
        memory = json.loads(r.stdout)["memory"]
        self.assertEqual((memory["parallel"], memory["n_ctx_slot"]), (2, 512))
        self.assertEqual(memory["kv_cache_bytes"], 2 * memory["kv_cache_bytes_per_slot"])
        r = run("run_inference_server.py", "--diagnostics", "--port", "0", "--json", "-c", "1024", "-np", "2", "-kvu",
                bin_dir=real_bin_dir())
        self.assertNotIn("Traceback", r.stderr)
        memory = json.loads(r.stdout)["memory"]
        self.assertEqual((memory["parallel"], memory["n_ctx_slot"], memory["kv_unified"]), (2, 1024, True))
        self.assertEqual(memory["kv_cache_bytes"], memory["kv_cache_bytes_per_slot"])



@unittest.skipUnless(os.access(os.path.join(real_bin_dir(), "bitnet"), os.X_OK),
                     "the engine is not built (scripts/setup.sh builds it before the tests)")
class ContextShiftThroughTheFrontEnd(unittest.TestCase):
    """run_inference.py --context-shift reaches `bitnet run`: a chat of twenty turns in a 64-token
    context is answered to the end; without the flag it stops at the full context with exit 1 and
    the message names the flag."""

    def chat(self, *flags):
        env = dict(os.environ, BITNET_BIN_DIR=real_bin_dir())
        env.pop("BITNET_BIN", None)
        turns = "Tell me more about the weather today, please.\n" * 20
        return subprocess.run([sys.executable, os.path.join(ROOT, "run_inference.py"), "-cnv", "-p", "Be brief.",
                               "-c", "64", "-n", "16", "-temp", "0", *flags], input=turns, capture_output=True,
                              text=True, env=env, timeout=300)

    def test_a_long_chat_in_a_tiny_context(self):
        shifted = self.chat("--context-shift", "--keep", "-1")
        self.assertNotIn("Traceback", shifted.stderr)
        self.assertEqual(shifted.returncode, 0, shifted.stderr[-2000:])
        plain = self.chat()
        self.assertNotIn("Traceback", plain.stderr)
        self.assertEqual(plain.returncode, 1, plain.stderr[-2000:])
        self.assertIn("--context-shift", plain.stderr)
        self.assertGreater(len(shifted.stdout), len(plain.stdout), "the shifted chat answered more turns")


if __name__ == "__main__":
    unittest.main()
