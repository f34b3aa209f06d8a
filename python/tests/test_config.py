"""Every configuration guard, and the exact argument lists each configuration assembles."""

import unittest

import helpers
from bitnet.config import BenchConfig, ConfigError, RuntimeConfig, ServerConfig, is_loopback


def error(config) -> str:
    try:
        config.validate()
    except ConfigError as e:
        return f"{e.field}: {e}"
    return ""


class RunConfigGuards(unittest.TestCase):
    def test_defaults_with_prompt_are_valid(self):
        self.assertEqual(error(RuntimeConfig(prompt="hi")), "")

    def test_each_bad_value_has_its_own_message(self):
        cases = [
            (dict(threads=-1), "-t: -t must be between 1 and 1024, or 0 for automatic (got -1)"),
            (dict(threads=2000), "(got 2000)"),
            (dict(threads=1.5), "-t (threads) must be an integer (got 1.5)"),
            (dict(threads=True), "must be an integer (got True)"),
            (dict(ctx_size=-1), "-c: -c must be positive"),
            (dict(ctx_size=2**31), "at most 2147483647"),
            (dict(batch_size=0), "-b: -b must be between 1 and 65536 (got 0)"),
            (dict(batch_size=65537), "(got 65537)"),
            (dict(gpu_layers=-1), "-ngl: -ngl must be ≥ 0 (got -1)"),
            (dict(n_predict=-2), "-n: -n must be -1 or ≥ 0 (got -2)"),
            (dict(temperature=-0.5), "-temp: -temp must be ≥ 0"),
            (dict(temperature=float("nan")), "-temp must be a finite number"),
            (dict(seed=-1), "-s: -s must be between 0 and 2^64-1"),
            (dict(model="/nonexistent/model.gguf"), "-m: model file not found: /nonexistent/model.gguf"),
            (dict(model="/tmp"), "model path is a directory"),
            (dict(model=""), "-m must be a path"),
            (dict(prompt=None), "-p: no prompt"),
        ]
        for changes, needle in cases:
            fields = dict(prompt="hi")
            fields.update(changes)
            with self.subTest(changes=changes):
                self.assertIn(needle, error(RuntimeConfig(**fields)))

    def test_conversation_needs_no_prompt(self):
        self.assertEqual(error(RuntimeConfig(conversation=True)), "")

    def test_missing_model_file_may_be_allowed_for_dry_runs(self):
        RuntimeConfig(model="/nonexistent/m.gguf", prompt="x").validate(require_model_file=False)


class ServerConfigGuards(unittest.TestCase):
    def test_loopback_is_allowed_without_key(self):
        for host in ("127.0.0.1", "localhost", "::1", "127.1.2.3"):
            self.assertEqual(error(ServerConfig(host=host)), "", host)
        self.assertFalse(is_loopback("0.0.0.0"))
        self.assertFalse(is_loopback("example.com"))

    def test_public_bind_needs_key_or_force(self):
        self.assertIn("refusing to listen on 0.0.0.0 without --api-key", error(ServerConfig(host="0.0.0.0")))
        self.assertEqual(error(ServerConfig(host="0.0.0.0", api_key="k" * 16)), "")
        self.assertEqual(error(ServerConfig(host="0.0.0.0", allow_public=True)), "")

    def test_each_bad_value_has_its_own_message(self):
        cases = [
            (dict(port=70000), "--port: --port must be between 1 and 65535"),
            (dict(port=-1), "(got -1)"),
            (dict(batch_size=0), "-b: -b must be between 1 and 65536"),
            (dict(batch_size=4096, ctx_size=2048), "-b: -b 4096 exceeds the context size -c 2048"),
            (dict(parallel=0), "-np: -np must be between 1 and 256"),
            (dict(parallel=8, ctx_size=4, batch_size=4), "-np 8 slots cannot share a context of 4"),
            (dict(api_key="short"), "--api-key must be at least 8 characters"),
            (dict(host=""), "--host must not be empty"),
            (dict(temperature=-1.0), "--temperature must be ≥ 0"),
            (dict(threads=-3), "-t must be between"),
        ]
        for changes, needle in cases:
            with self.subTest(changes=changes):
                self.assertIn(needle, error(ServerConfig(**changes)))


class BenchConfigGuards(unittest.TestCase):
    def test_guards(self):
        self.assertEqual(error(BenchConfig()), "")
        self.assertIn("nothing to measure", error(BenchConfig(n_token=0, n_prompt=0)))
        self.assertIn("-r must be between 1 and 1000", error(BenchConfig(repetitions=0)))
        self.assertIn("-o must be md, csv, json or jsonl", error(BenchConfig(output="xml")))
        self.assertIn("-p must be ≥ 0", error(BenchConfig(n_prompt=-1)))


class CommandAssembly(unittest.TestCase):
    def test_run_arguments_are_exact(self):
        c = RuntimeConfig(model="m.gguf", prompt="Hello world", n_predict=16, ctx_size=512, threads=4,
                          temperature=0.7, seed=3, telemetry_out="t.jsonl")
        self.assertEqual(c.args("/bin/bitnet"), [
            "/bin/bitnet", "run", "-m", "m.gguf", "-p", "Hello world", "-n", "16", "-c", "512", "-t", "4",
            "-b", "512", "-ngl", "0", "--temp", "0.7", "-s", "3", "--telemetry-out", "t.jsonl"])

    def test_default_model_omits_m_and_conversation_uses_system_prompt(self):
        c = RuntimeConfig(conversation=True, system_prompt="Be brief.", temperature=0)
        self.assertEqual(c.args("b"), ["b", "run", "-n", "128", "-c", "2048", "-t", "0", "-b", "512",
                                       "-ngl", "0", "--temp", "0", "-cnv", "-sys", "Be brief."])

    def test_prompt_with_shell_characters_stays_one_argument(self):
        c = RuntimeConfig(prompt="$(rm -rf /); echo 'x' | cat")
        a = c.args("b")
        self.assertEqual(a[a.index("-p") + 1], "$(rm -rf /); echo 'x' | cat")

    def test_server_arguments_are_exact(self):
        c = ServerConfig(model="m.gguf", host="0.0.0.0", port=9000, api_key="secretkey", parallel=2,
                         cont_batching=False)
        self.assertEqual(c.args("b"), [
            "b", "serve", "-m", "m.gguf", "--host", "0.0.0.0", "--port", "9000", "-c", "2048", "-t", "0",
            "-n", "4096", "--temp", "0.8", "-b", "512", "-ngl", "0", "-np", "2", "-nocb"])
        self.assertEqual(c.env()["LLAMA_API_KEY"], "secretkey")  # the key: in the environment only

    def test_bench_arguments_are_exact(self):
        self.assertEqual(BenchConfig(model="m.gguf", n_token=32, n_prompt=64, threads=2, repetitions=3).args("b"),
                         ["b", "bench", "-m", "m.gguf", "-n", "32", "-p", "64", "-t", "2", "-r", "3", "-o", "md"])
        self.assertEqual(BenchConfig(model="m.gguf", n_depth=4096).args("b")[-2:], ["-d", "4096"])
        with self.assertRaises(ConfigError):
            BenchConfig(model="m.gguf", n_depth=-1).validate(require_model_file=False)


if __name__ == "__main__":
    unittest.main()


def load_script(relpath):
    """Imports a top-level script (names may contain dashes) as a module."""
    import importlib.util
    import os
    path = os.path.join(helpers.ROOT, relpath)
    spec = importlib.util.spec_from_file_location(os.path.basename(relpath).replace("-", "_")[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CacheTypes(unittest.TestCase):
    """-ctk / -ctv (llama.cpp's KV cache types): f16 (default, no flag passed) or q8_0."""

    def test_guards(self):
        self.assertEqual(error(RuntimeConfig(prompt="hi", cache_type_k="q8_0", cache_type_v="q8_0")), "")
        self.assertEqual(error(RuntimeConfig(prompt="hi", cache_type_k="q4_0")),
                         "-ctk: -ctk: KV cache type 'q4_0' is not supported; accepted: f16, q8_0")
        self.assertIn("CPU only", error(ServerConfig(cache_type_v="q8_0", gpu_layers=1)))
        self.assertEqual(error(BenchConfig(cache_type_k="f16,q8_0")), "")
        self.assertIn("accepted: f16, q8_0", error(BenchConfig(cache_type_v="q8_0,bf16")))

    def test_arguments(self):
        self.assertNotIn("-ctk", RuntimeConfig(prompt="hi").args("b"))
        self.assertEqual(RuntimeConfig(prompt="hi", cache_type_k="q8_0").args("b")[-2:], ["-ctk", "q8_0"])
        self.assertEqual(ServerConfig(cache_type_k="q8_0", cache_type_v="q8_0").args("b")[-4:],
                         ["-ctk", "q8_0", "-ctv", "q8_0"])
        self.assertEqual(BenchConfig(cache_type_k="f16,q8_0").args("b")[-2:], ["-ctk", "f16,q8_0"])

    def test_scripts_take_the_flags(self):
        for script, argv in (("run_inference.py", ["-p", "x", "-ctk", "q8_0", "--cache-type-v", "q8_0"]),
                             ("run_inference_server.py", ["-ctk", "q8_0", "--cache-type-v", "q8_0"])):
            m = load_script(script)
            c = m.config_from(m.build_parser().parse_args(argv))
            self.assertEqual((c.cache_type_k, c.cache_type_v), ("q8_0", "q8_0"))


class KvUnified(unittest.TestCase):
    """-kvu (llama-server's --kv-unified): passed only when set; CPU only."""

    def test_flag(self):
        self.assertNotIn("-kvu", ServerConfig().args("b"))
        self.assertIn("-kvu", ServerConfig(kv_unified=True).args("b"))
        self.assertIn("CPU only", error(ServerConfig(kv_unified=True, gpu_layers=1)))
        self.assertEqual(error(ServerConfig(kv_unified=True, ctx_size=16, batch_size=16, parallel=32)), "")
        m = load_script("run_inference_server.py")
        self.assertTrue(m.config_from(m.build_parser().parse_args(["-kvu"])).kv_unified)
        self.assertFalse(m.config_from(m.build_parser().parse_args([])).kv_unified)


class ContextShift(unittest.TestCase):
    """--context-shift (run and serve) and --keep (run): passed only when set."""

    def test_flags(self):
        self.assertNotIn("--context-shift", RuntimeConfig(prompt="hi").args("b"))
        a = RuntimeConfig(prompt="hi", context_shift=True, keep=-1).args("b")
        self.assertEqual(a[a.index("--context-shift"):a.index("--context-shift") + 3], ["--context-shift", "--keep", "-1"])
        self.assertNotIn("--keep", RuntimeConfig(prompt="hi", context_shift=True).args("b"))
        self.assertIn("only matters with --context-shift", error(RuntimeConfig(prompt="hi", keep=4)))
        self.assertIn("-1 (the whole prompt)", error(RuntimeConfig(prompt="hi", context_shift=True, keep=-2)))
        self.assertNotIn("--context-shift", ServerConfig().args("b"))
        self.assertIn("--context-shift", ServerConfig(context_shift=True).args("b"))
        m = load_script("run_inference.py")
        c = m.config_from(m.build_parser().parse_args(["-p", "x", "--context-shift", "--keep", "5"]))
        self.assertEqual((c.context_shift, c.keep), (True, 5))
        m = load_script("run_inference_server.py")
        self.assertTrue(m.config_from(m.build_parser().parse_args(["--context-shift"])).context_shift)
        self.assertFalse(m.config_from(m.build_parser().parse_args([])).context_shift)


class ArgumentParsing(unittest.TestCase):
    def test_run_inference_accepts_bitnet_cpp_flags(self):
        m = load_script("run_inference.py")
        a = m.build_parser().parse_args(["-m", "x.gguf", "-n", "5", "-p", "hi", "-t", "3", "-c", "100",
                                         "-temp", "0.2", "-b", "16", "-ngl", "0", "--telemetry-out", "t"])
        c = m.config_from(a)
        self.assertEqual((c.model, c.n_predict, c.prompt, c.threads, c.ctx_size, c.temperature, c.batch_size,
                          c.telemetry_out), ("x.gguf", 5, "hi", 3, 100, 0.2, 16, "t"))
        d = m.config_from(m.build_parser().parse_args(["-p", "sys", "-cnv"]))
        self.assertEqual((d.conversation, d.prompt, d.system_prompt), (True, None, "sys"))
        defaults = m.config_from(m.build_parser().parse_args(["-p", "x"]))
        self.assertEqual((defaults.n_predict, defaults.ctx_size, defaults.temperature, defaults.threads),
                         (128, 2048, 0.8, 0))

    def test_server_flags(self):
        m = load_script("run_inference_server.py")
        a = m.build_parser().parse_args(["--host", "0.0.0.0", "--port", "9", "--temperature", "0.1",
                                         "--api-key", "k" * 10, "-nocb", "-np", "2"])
        c = m.config_from(a)
        self.assertEqual((c.host, c.port, c.temperature, c.api_key, c.cont_batching, c.parallel),
                         ("0.0.0.0", 9, 0.1, "k" * 10, False, 2))
        c.validate()

    def test_setup_env_flags(self):
        m = load_script("setup_env.py")
        a = m.parse_args(["--clean", "--gpu", "-q", "tl2", "--no-model", "-j", "1"])
        self.assertEqual((a.clean, a.gpu, a.quant_type, a.no_model, a.jobs), (True, True, "tl2", True, 1))
        with self.assertRaises(SystemExit):
            m.parse_args(["--cpu", "--gpu"])
        with self.assertRaises(SystemExit):
            m.parse_args(["-q", "q4_0"])
