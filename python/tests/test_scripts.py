"""The compatible scripts as a user runs them (real processes), against a fake `bitnet` that
prints the arguments it got, a missing binary, and (when built) the real one."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from helpers import ROOT, fake_bin_dir, real_bin_dir

from bitnet.runtime import BitNetRuntime, CommandUnavailable


def script(name, *args, bin_dir=None, env_extra=None):
    env = dict(os.environ)
    env.pop("BITNET_BIN", None)
    if bin_dir:
        env["BITNET_BIN_DIR"] = bin_dir
    env.update(env_extra or {})
    return subprocess.run([sys.executable, os.path.join(ROOT, name), *args], capture_output=True, text=True,
                          env=env, timeout=120)


class RunInferenceScript(unittest.TestCase):
    def setUp(self):
        self.bin = fake_bin_dir()

    def test_flags_become_the_exact_argument_list(self):
        r = script("run_inference.py", "-p", "Hi there", "-n", "8", "-t", "2", "-c", "256", "-temp", "0",
                   "-b", "64", "-ngl", "0", "--telemetry-out", "t.jsonl", bin_dir=self.bin)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), ["run", "-p", "Hi there", "-n", "8", "-c", "256", "-t", "2", "-b",
                                                "64", "-ngl", "0", "--temp", "0", "--telemetry-out", "t.jsonl"])

    def test_conversation_takes_p_as_system_prompt(self):
        r = script("run_inference.py", "-cnv", "-p", "You are helpful.", bin_dir=self.bin)
        args = json.loads(r.stdout)
        self.assertIn("-cnv", args)
        self.assertEqual(args[args.index("-sys") + 1], "You are helpful.")
        self.assertNotIn("-p", args)

    def test_bad_values_exit_2_with_one_line(self):
        for flags, needle in [(["-p", "x", "-t", "-2"], "-t must be between"),
                              (["-p", "x", "-b", "0"], "-b must be between 1 and 65536"),
                              (["-p", "x", "-m", "/nonexistent.gguf"], "model file not found"),
                              (["-n", "4"], "no prompt")]:
            r = script("run_inference.py", *flags, bin_dir=self.bin)
            self.assertEqual(r.returncode, 2, flags)
            self.assertIn(needle, r.stderr)
            self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        r = script("run_inference.py", "-p", "x", "-n", "abc", bin_dir=self.bin)
        self.assertEqual(r.returncode, 2)
        self.assertIn("invalid int value", r.stderr)

    def test_dry_run_shows_resolution_and_command_without_running(self):
        r = script("run_inference.py", "-p", "two words", "--dry-run", bin_dir=self.bin)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("threads            3", r.stdout)  # the binary's resolution
        self.assertIn("'two words'", r.stdout)
        j = json.loads(script("run_inference.py", "-p", "x", "--dry-run", "--json", bin_dir=self.bin).stdout)
        self.assertEqual(j["argv"][1:3], ["run", "-p"])
        self.assertEqual(j["resolved"]["ctx_size"], 2048)

    def test_missing_binary_named_by_env_is_a_clear_error(self):
        r = script("run_inference.py", "-p", "x", bin_dir="/nonexistent/bin")
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent/bin/bitnet not found", r.stderr)

    def test_diagnostics_without_binary_keeps_the_schema(self):
        r = script("run_inference.py", "--diagnostics", "--json", bin_dir="/nonexistent/bin")
        self.assertEqual(r.returncode, 1)
        d = json.loads(r.stdout)
        self.assertEqual((d["schema"], d["schema_version"], d["ready"]), ("bitnet.doctor", 1, False))
        binaries = next(c for c in d["checks"] if c["name"] == "binaries")
        self.assertEqual(binaries["status"], "fail")
        self.assertIn("setup_env.py", binaries["hint"])


class ServerScript(unittest.TestCase):
    def test_guard_rails(self):
        bin_dir = fake_bin_dir(("run", "serve"))
        r = script("run_inference_server.py", "--host", "0.0.0.0", bin_dir=bin_dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("refusing to listen on 0.0.0.0 without --api-key", r.stderr)
        r = script("run_inference_server.py", "-b", "4096", "-c", "2048", bin_dir=bin_dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("-b 4096 exceeds the context size", r.stderr)
        r = script("run_inference_server.py", "--host", "0.0.0.0", "--force-public", "--port", "9001", bin_dir=bin_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        args = json.loads(r.stdout)
        self.assertEqual(args[:5], ["serve", "--host", "0.0.0.0", "--port", "9001"])

    def test_api_key_is_passed_but_never_displayed(self):
        bin_dir = fake_bin_dir(("run", "serve"))
        env = {"BITNET_API_KEY": "topsecret-key"}
        r = script("run_inference_server.py", "--host", "0.0.0.0", bin_dir=bin_dir, env_extra=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("topsecret-key", r.stdout, "the key travels in the environment (test_api_key.py)")
        dry = script("run_inference_server.py", "--host", "0.0.0.0", "--dry-run", "--json", bin_dir=bin_dir,
                     env_extra=env)
        self.assertNotIn("topsecret-key", dry.stdout)
        self.assertIn("****", dry.stdout)

    def test_binary_without_serve_gives_a_clear_error(self):
        r = script("run_inference_server.py", bin_dir=fake_bin_dir(("run",)))
        self.assertEqual(r.returncode, 1)
        self.assertIn("this build of bitnet has no 'serve' command", r.stderr)


class UtilScripts(unittest.TestCase):
    def test_benchmark_flags_and_missing_bench(self):
        r = script("utils/e2e_benchmark.py", "-m", __file__, "-n", "16", "-p", "32", "-t", "1",
                   bin_dir=fake_bin_dir(("run", "bench")))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), ["bench", "-m", __file__, "-n", "16", "-p", "32", "-t", "1",
                                                "-r", "5", "-o", "md"])
        r = script("utils/e2e_benchmark.py", "-m", __file__, "-n", "16", "-p", "0", "-d", "2048",
                   bin_dir=fake_bin_dir(("run", "bench")))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)[-2:], ["-d", "2048"])
        r = script("utils/e2e_benchmark.py", bin_dir=fake_bin_dir(("run",)))
        self.assertEqual(r.returncode, 1)
        self.assertIn("no 'bench' command", r.stderr)

    def test_generate_dummy_model_maps_flags(self):
        r = script("utils/generate-dummy-bitnet-model.py", "models/x", "--outfile", "o.gguf", "--outtype", "tl1",
                   "--model-size", "3B", bin_dir=fake_bin_dir())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), ["gen-model", "--arch", "bitnet-b1.58", "--preset", "3B",
                                                "--type", "tl1", "--seed", "42", "-o", "o.gguf"])
        r = script("utils/generate-dummy-bitnet-model.py", "--outfile", "o.gguf", "--model-size", "99B",
                   bin_dir=fake_bin_dir())
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown --model-size '99B'", r.stderr)

    def test_convert_helper(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        r = script("utils/convert-helper-bitnet.py", d, bin_dir=fake_bin_dir())
        self.assertEqual(r.returncode, 2)
        self.assertIn("no config.json", r.stderr)
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write("{}")
        r = script("utils/convert-helper-bitnet.py", d, bin_dir=fake_bin_dir())
        self.assertEqual(r.returncode, 1)
        self.assertIn("no 'convert' command", r.stderr)
        r = script("utils/convert-helper-bitnet.py", d, bin_dir=fake_bin_dir(("run", "convert")))
        self.assertEqual(json.loads(r.stdout), ["convert", d, "-o", os.path.join(d, "ggml-model-i2s-bitnet.gguf"),
                                                "--outtype", "i2_s"])


@unittest.skipUnless(os.access(os.path.join(real_bin_dir(), "bitnet"), os.X_OK),
                     "the engine is not built (scripts/setup.sh builds it before the tests)")
class RealBinary(unittest.TestCase):
    def test_diagnostics_report_a_missing_model(self):
        rt = BitNetRuntime(bin_dir=real_bin_dir())
        d = rt.diagnostics(model="/nonexistent/model.gguf")
        self.assertFalse(d.ready)
        self.assertEqual(d.check("model")["status"], "fail")
        self.assertEqual(d.as_dict()["schema"], "bitnet.doctor")
        self.assertIn("cpu", d.as_dict())
        self.assertIn("[FAIL] model", d.to_text())

    def test_help_lists_run_and_doctor(self):
        rt = BitNetRuntime(bin_dir=real_bin_dir())
        self.assertIn("run", rt.available_commands())
        self.assertIn("doctor", rt.available_commands())
        with self.assertRaises(CommandUnavailable):
            rt.require_command("frobnicate")


if __name__ == "__main__":
    unittest.main()
