"""training/: the tokenizer the trainer learns is the one the engine runs, and training is
deterministic and resumable (docs/default-model.md)."""

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

from helpers import ROOT

sys.path.insert(0, os.path.join(ROOT, "training"))
import bpe  # noqa: E402  (standard library only, like corpus.py)
from safetensors_writer import write_f32_safetensors  # noqa: E402

BIN = os.path.join(os.environ.get("BITNET_BIN_DIR") or os.path.join(ROOT, "build", "bin"), "bitnet")
HELD_OUT = os.path.join(ROOT, "models", "bitnet-kjv-heldout.txt")
TORCH_PYTHON = "/usr/bin/python3"  # Debian's, with python3-torch (scripts/setup.sh --asan installs it)


def write_random_checkpoint(d, vocab, merges, dim=32, ffn=64):
    """A one-layer BitNetForCausalLM with random f32 weights: enough for `bitnet convert`."""
    bpe.write_tokenizer_files(d, vocab, merges)
    cfg = {"architectures": ["BitNetForCausalLM"], "hidden_act": "relu2", "hidden_size": dim,
           "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
           "intermediate_size": ffn, "vocab_size": len(vocab), "max_position_embeddings": 64,
           "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
           "bos_token_id": vocab.index(bpe.BOS), "eos_token_id": vocab.index(bpe.EOS)}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    p = "model.layers.0."
    shapes = {"model.embed_tokens.weight": [len(vocab), dim], "model.norm.weight": [dim],
              p + "input_layernorm.weight": [dim], p + "post_attention_layernorm.weight": [dim],
              p + "self_attn.attn_sub_norm.weight": [dim], p + "mlp.ffn_sub_norm.weight": [ffn],
              p + "mlp.gate_proj.weight": [ffn, dim], p + "mlp.up_proj.weight": [ffn, dim],
              p + "mlp.down_proj.weight": [dim, ffn]}
    for n in "qkvo":
        shapes[p + f"self_attn.{n}_proj.weight"] = [dim, dim]
    rng = random.Random(7)
    tensors = {}
    for name, shape in shapes.items():
        n = 1
        for s in shape:
            n *= s
        tensors[name] = (shape, struct.pack(f"<{n}f", *(rng.gauss(0, 0.05) for _ in range(n))))
    write_f32_safetensors(os.path.join(d, "model.safetensors"), tensors)


class TokenizerAgreement(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bitnet-train-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_trained_bpe_matches_engine(self):
        with open(HELD_OUT) as f:
            text = f.read()
        train, probe = text[:60000], text[60000:64000] + "\n  Numbers 1234567, it's 'quoted' -- odd  spacing!\n"
        vocab, merges = bpe.train(train, 900)
        self.assertEqual(len(vocab), 900)
        self.assertEqual(len(set(vocab)), 900, "every token text is distinct")
        write_random_checkpoint(self.tmp, vocab, merges)
        gguf = os.path.join(self.tmp, "m.gguf")
        subprocess.run([BIN, "convert", self.tmp, "-o", gguf], check=True, capture_output=True)
        r = subprocess.run([BIN, "tokenize", "-m", gguf, "-p", probe, "--json"], check=True,
                           capture_output=True, text=True)
        engine = json.loads(r.stdout)
        ids = engine["tokens"]
        ours = bpe.Encoder(vocab, merges).encode(probe, bos=True)
        self.assertGreater(len(ours), 500)
        self.assertEqual(ids, ours)
        self.assertEqual(bpe.Encoder(vocab, merges).decode(ours), probe)

    def test_non_ascii_text_is_refused(self):
        with self.assertRaisesRegex(ValueError, "ASCII"):
            bpe.pretokenize("caf\u00e9")


@unittest.skipUnless(os.path.exists(TORCH_PYTHON), "Debian's /usr/bin/python3 is not installed")
class TrainingRuns(unittest.TestCase):
    """A tiny configuration of the real trainer: an interrupted run resumed with --resume ends with
    exactly the weights of an uninterrupted one."""

    ARGS = ["--vocab", "600", "--dim", "32", "--layers", "1", "--heads", "2", "--kv-heads", "1", "--ffn", "64",
            "--ctx", "32", "--batch", "2", "--steps", "6", "--warmup", "2", "--eval-every", "3",
            "--save-every", "2", "--threads", "1", "--no-convert"]

    def train(self, out, *extra):
        return subprocess.run([TORCH_PYTHON, os.path.join(ROOT, "training", "train.py"), "--out", out,
                               *self.ARGS, *extra], capture_output=True, text=True, timeout=600)

    def test_resume_reproduces_an_uninterrupted_run(self):
        tmp = tempfile.mkdtemp(prefix="bitnet-train-run-")
        self.addCleanup(shutil.rmtree, tmp, True)
        a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        r = self.train(a)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertIn("held-out perplexity", r.stderr)
        r = self.train(b, "--stop-after", "3")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertIn("continue with --resume", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(b, "hf", "model.safetensors")))
        r = self.train(b, "--resume")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertIn("resumed at step 3", r.stderr)
        with open(os.path.join(a, "hf", "model.safetensors"), "rb") as fa, \
                open(os.path.join(b, "hf", "model.safetensors"), "rb") as fb:
            self.assertEqual(fa.read(), fb.read())
        with open(os.path.join(a, "metrics.json")) as f:
            self.assertGreater(json.load(f)["heldout_ppl_f32"], 1.0)

    def test_resume_with_other_settings_is_refused(self):
        tmp = tempfile.mkdtemp(prefix="bitnet-train-run-")
        self.addCleanup(shutil.rmtree, tmp, True)
        self.assertEqual(self.train(tmp, "--stop-after", "2").returncode, 0)
        r = self.train(tmp, "--resume", "--seed", "99")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("different settings", r.stderr)


if __name__ == "__main__":
    unittest.main()
