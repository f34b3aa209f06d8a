"""OpenAI's official Node SDK (`openai` on npm, pinned in scripts/fetch_openai_sdk.sh) against the
real `bitnet serve`: client.embeddings.create for every `input` form, with the SDK's default
base64 encoding (decoded by the SDK), explicit float and base64, `dimensions`, and an error;
structured output (response_format json_schema) and tool calls, whole and streamed.

Needs the built engine (build/bin/bitnet or $BITNET_BIN_DIR; scripts/setup.sh) and Node; the SDK
is fetched from the npm registry on first use when data/npm does not hold it yet."""

import base64
import json
import math
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import unittest
import urllib.request

from helpers import ROOT, real_bin_dir

SDK_DIR = os.path.join(ROOT, "data", "npm", "node_modules", "openai")
MODEL = os.path.join(ROOT, "models", "bitnet-kjv-13M-i2_s.gguf")
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai_embeddings.cjs")
STRUCTURED_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai_structured.cjs")


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


class ServedModel(unittest.TestCase):
    """`bitnet serve` on the KJV model with SERVER_ARGS, for the test methods of a subclass."""
    SERVER_ARGS = []

    @classmethod
    def setUpClass(cls):
        binary = os.path.join(real_bin_dir(), "bitnet")
        if not os.access(binary, os.X_OK):
            raise AssertionError(f"{binary} is not built: run scripts/setup.sh first")
        if shutil.which("node") is None:
            raise AssertionError("node is not installed (scripts/setup.sh installs it)")
        subprocess.run([os.path.join(ROOT, "scripts", "fetch_openai_sdk.sh")], check=True)
        cls.log = tempfile.NamedTemporaryFile(prefix="bitnet-serve-", suffix=".log", delete=False)
        cls.server = subprocess.Popen([binary, "serve", "-m", MODEL, "--port", "0", "-t", "1", "-np", "4", "-c", "4096"]
                                      + cls.SERVER_ARGS,
                                      stdout=subprocess.DEVNULL, stderr=cls.log)
        deadline = time.time() + 60
        port = None
        while time.time() < deadline and port is None:
            with open(cls.log.name) as f:
                m = re.search(r"server listening on http://127\.0\.0\.1:(\d+)", f.read())
            port = int(m.group(1)) if m else None
            time.sleep(0.05)
        if port is None:
            cls.tearDownClass()
            raise AssertionError("the server did not start")
        cls.url = f"http://127.0.0.1:{port}"
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(cls.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()
        cls.server.wait()
        cls.log.close()
        os.unlink(cls.log.name)



class OpenAiNodeSdk(ServedModel):
    SERVER_ARGS = ["--embeddings", "--pooling", "mean"]

    def test_embeddings_create_every_input_form(self):
        r = subprocess.run(["node", SCRIPT, SDK_DIR, self.url + "/v1"], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        inputs = {"string": "The quick brown fox", "strings": ["first text", "second, longer text", "third"],
                  "tokens": [1, 2, 3, 4], "token_arrays": [[5, 6], [7, 8, 9]]}
        counts = {"string": 1, "strings": 3, "tokens": 1, "token_arrays": 2}
        for name, input in inputs.items():
            got = out[name]
            self.assertEqual(got["object"], "list")
            self.assertEqual(got["model"], "text-embedding-3-small")
            self.assertEqual(len(got["data"]), counts[name], name)
            # What the server sends as floats, straight over HTTP: the SDK's decoded base64 is equal.
            ref = post(self.url + "/v1/embeddings", {"input": input})
            self.assertEqual(got["usage"], ref["usage"])
            for i, d in enumerate(got["data"]):
                self.assertEqual(d["object"], "embedding")
                self.assertEqual(d["index"], i)
                self.assertEqual(len(d["embedding"]), len(ref["data"][i]["embedding"]))
                for a, b in zip(d["embedding"], ref["data"][i]["embedding"]):
                    self.assertAlmostEqual(a, b, delta=1e-6)
                self.assertAlmostEqual(math.sqrt(sum(x * x for x in d["embedding"])), 1.0, delta=1e-4)
        self.assertEqual(out["tokens"]["usage"]["prompt_tokens"], 4)
        self.assertEqual(out["token_arrays"]["usage"]["prompt_tokens"], 5)
        # encoding_format "float": plain lists.
        for a, b in zip(out["float"], out["strings"]["data"]):
            self.assertEqual(len(a), len(b["embedding"]))
            for x, y in zip(a, b["embedding"]):
                self.assertAlmostEqual(x, y, delta=1e-6)
        # encoding_format "base64" given by the caller: the SDK hands the string through.
        raw = base64.b64decode(out["base64_raw"])
        floats = struct.unpack("<%df" % (len(raw) // 4), raw)
        for x, y in zip(floats, out["string"]["data"][0]["embedding"]):
            self.assertAlmostEqual(x, y, delta=1e-6)
        self.assertEqual(len(out["dimensions"]), 8)
        self.assertAlmostEqual(math.sqrt(sum(x * x for x in out["dimensions"])), 1.0, delta=1e-4)
        self.assertEqual(out["error"]["status"], 400)
        self.assertEqual(out["error"]["type"], "invalid_request_error")
        self.assertIn("dimensions", out["error"]["message"])


def check_schema(test, text):
    """The reply of openai_structured.cjs's person schema."""
    v = json.loads(text)
    test.assertEqual(list(v.keys()), ["name", "age", "tags"])  # declaration order
    test.assertIsInstance(v["name"], str)
    test.assertLessEqual(len(v["name"]), 10)
    test.assertIsInstance(v["age"], int)
    test.assertTrue(0 <= v["age"] <= 120)
    test.assertLessEqual(len(v["tags"]), 3)
    test.assertTrue(set(v["tags"]) <= {"x", "y", "z"})


def check_call(test, call):
    test.assertEqual(call["type"], "function")
    test.assertTrue(call["id"].startswith("call_"))
    args = json.loads(call["function"]["arguments"])
    if call["function"]["name"] == "get_weather":
        test.assertEqual(set(args), {"city", "unit"})
        test.assertIsInstance(args["city"], str)
        test.assertIn(args["unit"], ("celsius", "fahrenheit"))
    else:
        test.assertEqual(call["function"]["name"], "add")
        test.assertEqual(set(args), {"a", "b"})
        test.assertTrue(all(isinstance(args[k], int) and -999 <= args[k] <= 999 for k in "ab"))


class OpenAiNodeSdkStructured(ServedModel):
    """The tiny KJV model writes no JSON by itself: the grammar is what makes these replies valid."""

    def test_response_format_and_tool_calls(self):
        r = subprocess.run(["node", STRUCTURED_SCRIPT, SDK_DIR, self.url + "/v1"], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        for reply in out["schema"]:
            self.assertEqual(reply["finish_reason"], "stop")
            check_schema(self, reply["content"])
        check_schema(self, out["stream"])
        for reply in out["tools"]:
            self.assertIsNone(reply["content"])
            self.assertEqual(reply["finish_reason"], "tool_calls")
            self.assertEqual(len(reply["tool_calls"]), 1)
            check_call(self, reply["tool_calls"][0])
        streamed = out["tool_stream"]
        self.assertEqual(streamed["finish_reason"], "tool_calls")
        self.assertEqual(len(streamed["message"]["tool_calls"]), 1)
        self.assertEqual(streamed["message"]["tool_calls"][0]["function"]["name"], "add")  # tool_choice named it
        check_call(self, streamed["message"]["tool_calls"][0])
        self.assertIn(out["next_turn"], ("stop", "length", "tool_calls"))
        self.assertEqual(out["error"]["status"], 400)
        self.assertEqual(out["error"]["type"], "invalid_request_error")
        self.assertIn("'format' \"ipv4\"", out["error"]["message"])


if __name__ == "__main__":
    unittest.main()
