"""BitNet-embedding models end to end: synthetic Hugging Face checkpoints (Qwen3 and Gemma 3, BitNet
and plain float "teacher" variants) are converted with `bitnet convert` (I2_S / F16), embedded with
`bitnet embed --token-ids`, and every pooled vector must match the PyTorch reference
(embedding_reference.py, run by Debian's /usr/bin/python3 with python3-torch) to cosine >= 0.9999,
for every pooling type and inputs of several lengths, some longer than the tiny Gemma 3's sliding
window of 8 (docs/embeddings-conversion.md)."""

import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

from helpers import ROOT

BIN = os.path.join(os.environ.get("BITNET_BIN_DIR") or os.path.join(ROOT, "build", "bin"), "bitnet")
TORCH_PYTHON = "/usr/bin/python3"  # Debian's, with python3-torch (scripts/setup.sh --asan installs it)
REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "embedding_reference.py")
POOLINGS = ["none", "mean", "cls", "last"]
MIN_COSINE = 0.9999


def inputs(vocab, seed):
    """Token ids of 1, 5, 13 and 23 tokens (the tiny Gemma 3 has a sliding window of 8)."""
    rng = random.Random(seed)
    return [[rng.randrange(vocab) for _ in range(n)] for n in (1, 5, 13, 23)]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na > 0 and nb > 0 else (1.0 if na == nb else 0.0)


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(args[:4])} ... exited {r.returncode}:\n{r.stderr[-3000:]}")
    return r.stdout


@unittest.skipUnless(os.path.exists(TORCH_PYTHON), "Debian's /usr/bin/python3 is not installed")
class EmbeddingsMatchReference(unittest.TestCase):
    CASES = [  # preset, variant, outtype, vocab size
        ("embed-tiny-qwen3", "bitnet", "i2_s", 151936),
        ("embed-tiny-qwen3", "plain", "f16", 151936),
        ("embed-tiny-gemma3", "bitnet", "i2_s", 262144),
        ("embed-tiny-gemma3", "plain", "f16", 262144),
    ]

    @classmethod
    def setUpClass(cls):
        for arch in ("qwen3", "gemma3"):
            if not os.path.exists(os.path.join(ROOT, "data", "tokenizers", arch, "tokenizer.json")):
                raise AssertionError(f"data/tokenizers/{arch} is missing: run scripts/fetch_tokenizers.sh")
        cls.tmp = tempfile.mkdtemp(prefix="bitnet-embed-ref-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def check(self, preset, variant, outtype, vocab):
        name = f"{preset}-{variant}"
        hf = os.path.join(self.tmp, name)
        gguf = hf + f"-{outtype}.gguf"
        run([BIN, "convert", "--write-synthetic", preset, "--synthetic-variant", variant, "--synthetic-pooling", "last",
             hf])
        run([BIN, "convert", hf, "-o", gguf, "--outtype", outtype])
        ids = inputs(vocab, seed=len(name))
        id_args = [a for s in ids for a in ("--ids", ",".join(map(str, s)))]
        ref = json.loads(run([TORCH_PYTHON, REFERENCE, hf, "--pooling", ",".join(POOLINGS), *id_args]))
        self.assertEqual(ref["bitnet"], variant == "bitnet")
        prompt_args = [a for s in ids for a in ("-p", ",".join(map(str, s)))]
        worst = 1.0
        for pooling in POOLINGS:
            out = json.loads(run([BIN, "embed", "-m", gguf, "--token-ids", *prompt_args, "--pooling", pooling,
                                  "--embd-output-format", "json"]))
            engine = [d["embedding"] for d in sorted(out["data"], key=lambda d: d["index"])]
            want = ref["data"][pooling]
            if pooling == "none":  # one entry per token, inputs in order
                want = [v for per_input in want for v in per_input]
            self.assertEqual(len(engine), len(want), f"{name} {pooling}: number of vectors")
            for k, (e, w) in enumerate(zip(engine, want)):
                c = cosine(e, w)
                worst = min(worst, c)
                self.assertGreaterEqual(c, MIN_COSINE, f"{name} pooling {pooling} vector {k}: cosine {c:.6f}")
        sys.stderr.write(f"\n  {name} ({outtype}): worst cosine {worst:.7f} over {len(POOLINGS)} poolings\n")
        self.check_text_input(gguf, preset)

    def check_text_input(self, gguf, preset):
        """Text goes through the real tokenizer with the embedding settings the converter wrote:
        Qwen3 appends <|endoftext|>, Gemma 3 adds <bos> and appends <eos>; the text's vector is
        the vector of exactly those ids."""
        text = "BitNet embeddings, tested."
        tok = json.loads(run([BIN, "tokenize", "-m", gguf, "-p", text, "--json"]))
        pieces, ids = tok["pieces"], tok["tokens"]
        if "qwen3" in preset:
            self.assertEqual((pieces[-1], ids[-1]), ("<|endoftext|>", 151643))
            self.assertNotIn("<|im_end|>", pieces)
        else:
            self.assertEqual((pieces[0], ids[0], pieces[-1], ids[-1]), ("<bos>", 2, "<eos>", 1))
        self.assertEqual("".join(pieces[1 if "gemma3" in preset else 0:-1]), text)
        by_text = json.loads(run([BIN, "embed", "-m", gguf, "-p", text, "--embd-output-format", "json"]))
        by_ids = json.loads(run([BIN, "embed", "-m", gguf, "--token-ids", "-p", ",".join(map(str, ids)),
                                 "--embd-output-format", "json"]))
        self.assertEqual(by_text["data"][0]["embedding"], by_ids["data"][0]["embedding"])

    def test_qwen3_bitnet_i2s(self):
        self.check(*self.CASES[0])

    def test_qwen3_plain_f16(self):
        self.check(*self.CASES[1])

    def test_gemma3_bitnet_i2s(self):
        self.check(*self.CASES[2])

    def test_gemma3_plain_f16(self):
        self.check(*self.CASES[3])


if __name__ == "__main__":
    unittest.main()
