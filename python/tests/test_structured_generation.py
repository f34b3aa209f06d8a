"""Structured output end to end: `bitnet run -j SCHEMA` at temperature 1 must print JSON valid under
the schema every time — 10 schemas (nested objects, arrays with bounds, enums, numbers and integers
with bounds, strings with patterns and formats, anyOf / oneOf, $ref) × 20 seeds = 200 generations
per model — on the shipped default model (which has never seen JSON) and a random-weight model
with the 128k Llama-3 vocabulary. Validation is independent of our grammar code: python3-jsonschema
(Debian's /usr/bin/python3; scripts/setup.sh --asan installs it) plus regexes for the formats.
BITNET_STRUCTURED_MODEL=FILE runs the default-model test on another model and BITNET_STRUCTURED_SEEDS=N
takes N seeds per schema (docs/structured-output.md reports a 2B-4T run)."""

import json
import os
import re
import subprocess
import tempfile
import unittest

from helpers import ROOT

BIN = os.path.join(os.environ.get("BITNET_BIN_DIR") or os.path.join(ROOT, "build", "bin"), "bitnet")
DEFAULT_MODEL = os.path.join(ROOT, "models", "bitnet-kjv-13M-i2_s.gguf")
VALIDATOR_PYTHON = "/usr/bin/python3"
SEEDS = range(1, 1 + int(os.environ.get("BITNET_STRUCTURED_SEEDS", "20")))

SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                      "age": {"type": "integer", "minimum": 0, "maximum": 150}},
     "required": ["name", "age"]},
    {"type": "object", "properties": {"person": {"type": "object", "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 10},
        "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10},
                                                     "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                    "required": ["city", "zip"]}}, "required": ["name", "address"]}},
     "required": ["person"]},
    {"type": "array", "items": {"type": "integer", "minimum": -5, "maximum": 99}, "minItems": 1, "maxItems": 5},
    {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]},
                                      "ok": {"type": "boolean"}}, "required": ["color", "ok"]},
    {"type": "object", "properties": {"x": {"type": "number", "minimum": -10, "maximum": 10},
                                      "n": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 1000}},
     "required": ["x", "n"]},
    {"type": "string", "pattern": "^[A-Z][a-z]{2,8}-[0-9]{2}$"},
    {"anyOf": [{"type": "boolean"}, {"type": "null"}, {"type": "integer", "minimum": 0, "maximum": 9}]},
    {"$defs": {"item": {"type": "object", "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": 999},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3}},
        "required": ["id"]}},
     "type": "array", "items": {"$ref": "#/$defs/item"}, "maxItems": 3},
    {"type": "object", "properties": {"when": {"type": "string", "format": "date"},
                                      "id": {"type": "string", "format": "uuid"}}, "required": ["when", "id"]},
    {"oneOf": [{"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "integer", "minimum": 1, "maximum": 50}},
                "required": ["kind", "r"]},
               {"type": "object", "properties": {"kind": {"const": "square"}, "side": {"type": "integer", "minimum": 1, "maximum": 50}},
                "required": ["kind", "side"]}]},
]

# Runs under /usr/bin/python3: reads [schema, text] lines, prints one verdict per line.
VALIDATE = r"""
import json, re, sys
import jsonschema
DATE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
checker = jsonschema.FormatChecker()
checker.checks("date")(lambda s: not isinstance(s, str) or bool(DATE.match(s)))
checker.checks("uuid")(lambda s: not isinstance(s, str) or bool(UUID.match(s)))
for line in sys.stdin:
    schema, text = json.loads(line)
    try:
        value = json.loads(text)
        jsonschema.validate(value, schema, format_checker=checker)
        print("ok")
    except Exception as e:
        print("INVALID: " + str(e).split("\n")[0][:300])
"""


def generate(model, schema, seed):
    # A budget above the longest text each schema allows (bounded lengths; the whitespace the
    # grammars allow between tokens — a newline and up to 20 spaces — is what small models spend
    # most tokens on): every generation ends where the grammar does, never at the length limit.
    args = [BIN, "run", "-m", model, "-p", "JSON:", "-n", "3000", "-c", "4096", "--temp", "1", "-s", str(seed),
            "--no-display-prompt", "-t", "2", "-j", json.dumps(schema)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError(f"bitnet run -j exited {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout


def validate(pairs):
    if not os.path.exists(VALIDATOR_PYTHON):
        raise AssertionError(f"{VALIDATOR_PYTHON} is missing (Debian's python3 with python3-jsonschema)")
    r = subprocess.run([VALIDATOR_PYTHON, "-c", VALIDATE], input="".join(json.dumps(p) + "\n" for p in pairs),
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"the validator failed (apt-get install python3-jsonschema?): {r.stderr[-1500:]}")
    return r.stdout.splitlines()


class StructuredGeneration(unittest.TestCase):
    def check_model(self, model):
        pairs = [(schema, generate(model, schema, seed)) for schema in SCHEMAS for seed in SEEDS]
        verdicts = validate(pairs)
        self.assertEqual(len(verdicts), len(pairs))
        bad = [(i, pairs[i][1][:200], v) for i, v in enumerate(verdicts) if v != "ok"]
        self.assertEqual(bad, [], f"{len(bad)} of {len(pairs)} outputs invalid")
        # Not degenerate: the seeds give different valid values.
        self.assertGreater(len({text for _, text in pairs}), len(pairs) // 4)

    def test_default_model(self):
        self.check_model(os.environ.get("BITNET_STRUCTURED_MODEL") or DEFAULT_MODEL)

    def test_random_model_with_the_llama3_vocabulary(self):
        with tempfile.TemporaryDirectory(prefix="bitnet-structured-") as d:
            model = os.path.join(d, "tiny.gguf")
            subprocess.run([BIN, "gen-model", "--arch", "bitnet-b1.58", "--preset", "tiny", "--type", "i2_s",
                            "-o", model], check=True, capture_output=True, timeout=600)
            self.check_model(model)


if __name__ == "__main__":
    unittest.main()
