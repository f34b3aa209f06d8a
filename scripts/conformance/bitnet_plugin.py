"""pytest plugin: run llama.cpp's server test suite (tools/server/tests) against bitnet.cpp.

Loaded by scripts/conformance/llama-server-suite.sh as `-p bitnet_plugin`, with this folder and
the suite folder on PYTHONPATH. The suite itself is never copied into this repository: the user
points the runner at a llama.cpp checkout. This plugin only changes, at run time:

* which model a preset uses: every generation preset (stories260K, stories15M-MoE, ...) gets the
  local GGUF given by --bitnet-model instead of a Hugging Face download (there is no internet);
  embedding presets (bert-bge-small) run with a generated embed-tiny-qwen3 model; the files in
  SMALL_VOCAB_FILES (test_ctx_shift.py), whose premises are token counts of stories260K's
  512-piece SentencePiece vocabulary, run with a generated model whose vocabulary is the LLaMA
  SentencePiece one cut to 512 pieces (gen-model --vocab-size 512); presets that
  need a model kind we do not ship (reranking, infill, vision, LoRA,
  draft, split GGUF, router) are skipped with the reason;
* ServerPreset.load_all() (the suite's pre-download step) does nothing;
* model-specific assertions are waived, from the explicit, small lists below, and every waiver
  is reported (terminal summary and the JSON-lines report);
* `from openai import OpenAI` resolves to a stub (only when the real package is missing) whose
  constructor skips the test: no fake client is provided.

* the gwen fork's copy of utils.py passes `--greedy` where llama.cpp's passes
  `--temp <temperature> --seed <seed>`: upstream's arguments are restored;
* the server's output goes to a log file per start (its tail is attached to failures).

Nothing else is touched: flags, requests and the other assertions are the suite's own.

Options:
  --bitnet-model FILE          local GGUF for generation presets
  --bitnet-report FILE.jsonl   one JSON object per test (outcome, failing assertion, last
                               response, server log tail, waivers, argv); summarize.py renders it
  --bitnet-drop-unknown-flags  diagnostic mode: flags the binary refuses (probed with its
                               --dry-run) are removed from the command line and recorded, so the
                               endpoint tests run anyway. Results in this mode are NOT conformance
                               results; the report marks them.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------------------------
# Model-specific assertion waivers. Keep these lists explicit and small.
# ---------------------------------------------------------------------------------------------

# 1. Regexes of match_regex() that describe the text the stories260K model (or the split
#    stories15M model) generates. When one of these does not match, the waiver is
#    recorded and match_regex returns True if the text is a non-empty string, so the rest of the
#    test still runs. Regexes that check a protocol feature (grammar, json_schema,
#    response_format: '"42"', 'a{5,5}', '"foooooo"', '[ -3000 ]', '(\{|John)+') are NOT here.
MODEL_TEXT_REGEXES = {
    "(going|bed)+",
    "(princesses|everyone|kids|Anna|forest)+",
    "(little|girl)+",
    "But she couldn't",
    "(Suddenly)+|\\{ \" Sarax.",
    "(Suddenly)+",
    "^ blue",
    "(Aside|she|felter|alonger)+",
    "Whillicter",
}

# 2. Parametrized token counts that depend on the stories260K tokenizer (and, for chat, on its
#    template). The parameter value is replaced by an int that compares equal to any non-negative
#    int (the mismatch is recorded as a waiver); a non-int (None, a string) still fails.
#    (test function, parameter) -> (predicate on the test's params or None, reason)
MODEL_COUNT_PARAMS = {
    ("test_completion", "n_prompt"): (None, "prompt token count of the stories260K tokenizer"),
    ("test_completion_stream", "n_prompt"): (None, "prompt token count of the stories260K tokenizer"),
    ("test_chat_completion", "n_prompt"): (None, "chat prompt token count of the stories260K tokenizer and template"),
    ("test_chat_completion_stream", "n_prompt"): (None, "chat prompt token count of the stories260K tokenizer and template"),
    # 1 + ceil(prompt tokens / n_batch) progress reports: the chat prompt is 129-192 tokens in
    # stories260K's tokenizer and template. With the cache reused (1 token evaluated) it is 2 for
    # every model, so that case is not waived.
    ("test_return_progress", "batch_count"): (
        lambda p: not p.get("reuse_cache"),
        "progress reports = 1 + ceil(chat prompt tokens / n_batch): the stories260K prompt length"),
}

# 2b. Token counts in responses that depend on the tokenizer, compared with a literal in the test
#     body: the field's value is replaced by an int that compares equal to any non-negative int
#     (the mismatch is recorded as a waiver), so the test's other assertions still run.
#     test function -> [(path of the field in the response body, reason)]
MODEL_RESPONSE_COUNTS = {
    "test_ctx_shift_enabled": [
        (("timings", "prompt_n"), "226 is SHORT_TEXT's length in stories260K tokens"),
    ],
}

# 3. Assertions on literals inside a test body that depend on the stories260K model. If the test
#    fails at a statement containing the snippet (and the optional check on the last response
#    body confirms that the premise is the model's, not the server's), the test is reported as
#    skipped (waived) with the failing values; its later assertions do not run.
#    test function -> [(snippet of the assertion's source, reason, check or None)]
#    check(body, model) returns a description of our value to waive, or None to keep the failure.


def _bos_check(body, model):
    toks = body.get("tokens") if isinstance(body, dict) else None
    if toks and model.get("bos_id") is not None and toks[0] == model["bos_id"]:
        return f"first token {toks[0]} is this model's BOS id"
    return None


    return None


def _usage_check(body, model):
    usage = body.get("usage") if isinstance(body, dict) else None
    if usage and usage.get("prompt_tokens") == usage.get("total_tokens") and usage.get("prompt_tokens", 0) > 0:
        return f"prompt_tokens {usage['prompt_tokens']} in this model's tokens (Qwen3 BPE + EOS)"
    return None


def _token_rows_check(body, model):
    try:
        rows = body[0]["embedding"]
    except (KeyError, IndexError, TypeError):
        return None
    if len(rows) >= 2:
        return f"{len(rows)} rows: 'hello hello hello' in this model's tokens (Qwen3 BPE + EOS)"
    return None


MODEL_LITERAL_ASSERTIONS = {
    "test_embedding_usage_single": [
        ("== n_tokens", "9 / 6 are bge-small's WordPiece token counts ([CLS] … [SEP])", _usage_check),
    ],
    "test_embedding_usage_multiple": [
        ("== 2 * 9", "9 is bge-small's WordPiece token count of the text", _usage_check),
    ],
    "test_embedding_pooling_none": [
        ("== 5", "5 is bge-small's token count of 'hello hello hello' ([CLS] + 3 + [SEP])", _token_rows_check),
    ],
    "test_chat_completion_cached_tokens": [
        ('["prompt_tokens"] == n_prompt', "77 is the chat prompt length in stories260K tokens", None),
        ('["cached_tokens"] == n_cache', "76/51/47 are cached-prefix lengths in stories260K tokens", None),
    ],
    "test_completion_prompt_cache": [
        ('["cache_n"] == n_prompt', "(40 + r) * 5 + 2 is the prompt length in stories260K tokens", None),
    ],
    "test_tokenize_with_bos": [
        ("== bosId", "1 is stories260K's BOS id", _bos_check),
    ],
}

# 4. Prompt texts in responses (llama-server's detokenized prompt, special tokens included) that
#    the suite compares with stories260K's rendering: "<s> " + TEXT, the BOS text of its
#    SentencePiece vocabulary and the space its prefix adds. Our value at these JSON paths is
#    wrapped so that it compares equal to exactly "<s> " + REST when it is this model's BOS text
#    + REST (the same REST, character for character); the waiver is recorded and the test goes
#    on. Any other difference still fails.
#    test function -> JSON paths in the response body
MODEL_PROMPT_TEXTS = {
    "test_completion_response_fields": [("prompt",)],
    "test_chat_template": [("__verbose", "prompt")],
    "test_chat_template_assistant_prefill": [("__verbose", "prompt")],
}
STORIES_BOS_TEXT = "<s> "


class ModelSpecificPrompt(str):
    """Our prompt text, BOS_TEXT + REST: also equal to stories260K's "<s> " + REST."""

    def __new__(cls, value: str, bos_text: str, path: str):
        obj = str.__new__(cls, value)
        obj._bos = bos_text
        obj._path = path
        return obj

    def __eq__(self, other):
        if str.__eq__(self, other):
            return True
        if not (isinstance(other, str) and self._bos and self.startswith(self._bos)
                and other.startswith(STORIES_BOS_TEXT)):
            return False
        if other[len(STORIES_BOS_TEXT):] != self[len(self._bos):]:
            return False
        with S.lock:
            _cur()["waivers"].append({
                "kind": "prompt-text",
                "what": f"{self._path} == {_excerpt(other, 60)}",
                "actual": _excerpt(str(self), 60),
                "reason": f"BOS text: stories260K's {STORIES_BOS_TEXT!r} (SentencePiece), this model's "
                          f"{self._bos!r}; the rest is identical",
            })
        return True

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = str.__hash__


def _wrap_prompt_texts(body) -> None:
    paths = MODEL_PROMPT_TEXTS.get(_cur().get("func"), [])
    bos = S.model_meta.get("bos_text")
    for path in paths:
        parent, key = body, path[-1]
        for k in path[:-1]:
            parent = parent.get(k) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(parent.get(key), str) and bos:
            parent[key] = ModelSpecificPrompt(parent[key], bos, "/".join(path))


# 4. Test files whose premises are token counts of stories260K's small SentencePiece vocabulary (512
#    pieces), not of any text the model generates: test_ctx_shift.py's SHORT_TEXT (226 tokens) must
#    overflow a 256-token slot within 96 generated tokens, LONG_TEXT must not fit it, and "Hi how
#    are you" is 8 tokens. They run with a generated `bitnet` tiny model (random weights) whose
#    vocabulary is the LLaMA SentencePiece one cut to its first 512 pieces — `bitnet gen-model
#    --arch bitnet --preset tiny --vocab-size 512`: SHORT_TEXT 194 tokens, LONG_TEXT 261, "Hi how are
#    you" 8 — so those premises hold and the assertions resting on them are checked, not waived.
SMALL_VOCAB_FILES = {"test_ctx_shift.py"}


def read_gguf_bos(path: str) -> dict:
    """BOS id and text from a GGUF file's metadata (stdlib only); {} if unreadable."""
    import struct
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    fmt = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}
    out = {}
    try:
        with open(path, "rb") as fh:
            def rd(n):
                b = fh.read(n)
                if len(b) != n:
                    raise EOFError
                return b

            def rstr():
                (n,) = struct.unpack("<Q", rd(8))
                return rd(n).decode("utf-8", "replace")

            def rval(t, keep):
                if t == 8:
                    return rstr()
                if t == 9:
                    (et,) = struct.unpack("<I", rd(4))
                    (n,) = struct.unpack("<Q", rd(8))
                    if keep:
                        return [rval(et, True) for _ in range(n)]
                    if et in sizes:
                        fh.seek(sizes[et] * n, 1)
                    else:
                        for _ in range(n):
                            rval(et, False)
                    return None
                return struct.unpack(fmt[t], rd(sizes[t]))[0]

            if rd(4) != b"GGUF":
                return {}
            struct.unpack("<I", rd(4))
            _, n_kv = struct.unpack("<QQ", rd(16))
            tokens = None
            for _ in range(n_kv):
                key = rstr()
                (t,) = struct.unpack("<I", rd(4))
                keep = key in ("tokenizer.ggml.tokens", "tokenizer.ggml.bos_token_id")
                v = rval(t, keep)
                if key == "tokenizer.ggml.tokens":
                    tokens = v
                elif key == "tokenizer.ggml.bos_token_id":
                    out["bos_id"] = int(v)
            if tokens is not None and out.get("bos_id") is not None and out["bos_id"] < len(tokens):
                out["bos_text"] = tokens[out["bos_id"]]
    except Exception:
        return out
    return out


# ---------------------------------------------------------------------------------------------
# Presets: which model kind each Hugging Face source is.
# ---------------------------------------------------------------------------------------------

GENERATION_REPOS = {
    "ggml-org/test-model-stories260K",
    "ggml-org/stories15M_MOE",}

# llama-server flags that take a value (as utils.py passes them); used by the diagnostic mode to
# drop a refused flag together with its value.
VALUE_FLAGS = {
    "--host", "--port", "--temp", "--seed", "--model", "-m", "--model-url", "--model-draft",
    "--hf-repo", "--hf-file", "--models-dir", "--models-max", "--batch-size", "--ubatch-size",
    "--threads", "--n-gpu-layers", "--draft", "--pooling", "--alias", "--tags", "--ctx-size",
    "--parallel", "-ctk", "-ctv", "-fa", "--n-predict", "--slot-save-path", "--grp-attn-n",
    "--grp-attn-w", "--lora", "--api-key", "--draft-max", "--draft-min", "--reasoning-format",
    "--reasoning", "--chat-template", "--chat-template-file", "--mmproj-url", "--media-path",
    "--sleep-idle-seconds",
}


def _is_embedding_preset(server) -> bool:
    """bert-bge-small and the tests that turn embeddings on: run with the generated qwen3
    embedding model (embed-tiny-qwen3; real Qwen3 tokenizer, so token counts differ from BERT's)."""
    hf_file = getattr(server, "model_hf_file", None) or ""
    return ("bert" in hf_file or getattr(server, "server_embeddings", False)
            or bool(getattr(server, "pooling", None)))


def _generated_model(file_name: str, gen_args: list, what: str) -> str:
    """Generates a model once per session with the `bitnet` next to the server binary
    (`bitnet gen-model GEN_ARGS -o LOGDIR/FILE_NAME`); `what` names it in skip/fail messages."""
    if file_name in S.generated_models:
        return S.generated_models[file_name]
    tool = os.path.join(os.path.dirname(S.bin or ""), "bitnet")
    if not os.access(tool, os.X_OK):
        pytest.skip(f"{what} needs {tool} (bitnet gen-model) next to the server binary")
    path = os.path.join(S.logdir, file_name)
    proc = subprocess.run([tool, "gen-model", *gen_args, "-o", path], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"bitnet gen-model {' '.join(gen_args)} failed: {proc.stderr[-500:]}")
    S.generated_models[file_name] = path
    return path


def _embedding_model() -> str:
    """embed-tiny-qwen3: a real Qwen3 tokenizer, last pooling."""
    return _generated_model("embed-tiny-qwen3.gguf", ["--preset", "embed-tiny-qwen3"], "an embedding model")


def _small_vocab_model() -> str:
    """The 512-piece SentencePiece model (SMALL_VOCAB_FILES)."""
    return _generated_model("bitnet-tiny-spm512.gguf",
                            ["--arch", "bitnet", "--preset", "tiny", "--vocab-size", "512"],
                            "a 512-piece vocabulary model")


def _classify(server) -> str | None:
    """Returns a skip reason, or None when the preset is a plain generation model."""
    if getattr(server, "server_reranking", False):
        return "needs a reranking model (jina-reranker); none is shipped (no internet)"
    if getattr(server, "mmproj_url", None):
        return "needs a vision model with an mmproj; none is shipped (no internet)"
    if getattr(server, "lora_files", None):
        return "needs LoRA adapters for stories15M; none are shipped (no internet)"
    if getattr(server, "model_draft", None):
        return "needs a draft model (speculative decoding); none is shipped (no internet)"
    if getattr(server, "models_dir", None):
        return "router mode (--models-dir) is out of scope"
    if getattr(server, "model_url", None):
        return f"needs a model from a URL ({server.model_url}); no internet"
    repo = getattr(server, "model_hf_repo", None)
    hf_file = getattr(server, "model_hf_file", None) or ""
    if getattr(server, "model_file", None) and not repo:
        return None
    if repo is None and not hf_file:
        return "router mode (server without a model) is out of scope"
    if "infill" in repo:
        return "needs an infill (FIM) model; none is shipped (no internet)"
    if "gemma3" in repo:
        return "needs a vision model (tinygemma3 + mmproj); none is shipped (no internet)"
    if "reranker" in hf_file:
        return f"needs a reranking model ({hf_file}); none is shipped (no internet)"
    if _is_embedding_preset(server):
        return None
    if "split" in hf_file:
        return "needs a GGUF split into several files (stories15M-q8_0-0000N-of-00003); none is shipped (no internet)"
    if repo in GENERATION_REPOS or (repo == "ggml-org/models" and "tinyllamas/" in hf_file):
        return None
    return f"needs {repo} {hf_file} from Hugging Face (no internet); not mapped to a local model"


# ---------------------------------------------------------------------------------------------
# Per-test state
# ---------------------------------------------------------------------------------------------

class _State:
    def __init__(self):
        self.config = None
        self.model = None
        self.drop_unknown = False
        self.report_path = None
        self.bin = None
        self.logdir = None
        self.records = []
        self.current = None  # dict for the running test
        self.lock = threading.Lock()
        self.dryrun_cache = {}
        self.model_meta = {}
        self.generated_models = {}  # file name -> path (_generated_model)


S = _State()


def _cur() -> dict:
    if S.current is None:
        S.current = {"waivers": [], "responses": [], "starts": []}
    return S.current


def _excerpt(value, n=300) -> str:
    try:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    except Exception:
        text = repr(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= n else text[:n] + "..."


class ModelSpecificInt(int):
    """A number that depends on the stories260K tokenizer: equal to any non-negative int, recording
    a mismatch as a waiver. `ours`: the value is our server's (a response count compared with the
    suite's literal); else it is the suite's (a test parameter compared with our result)."""

    def __new__(cls, value: int, name: str, reason: str, ours: bool = False):
        obj = int.__new__(cls, value)
        obj._name = name
        obj._reason = reason
        obj._ours = ours
        return obj

    def __eq__(self, other):
        if isinstance(other, bool) or not isinstance(other, int):
            return False
        if int(other) == int(self):
            return True
        if other < 0:
            return False
        expected, actual = (int(other), int(self)) if self._ours else (int(self), int(other))
        with S.lock:
            _cur()["waivers"].append({
                "kind": "token-count",
                "what": f"{self._name} == {expected}",
                "actual": actual,
                "reason": self._reason,
            })
        return True

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = int.__hash__


def _waive_response_counts(body) -> None:
    for path, reason in MODEL_RESPONSE_COUNTS.get(_cur().get("func", ""), []):
        node = body
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        value = node.get(path[-1]) if isinstance(node, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            node[path[-1]] = ModelSpecificInt(value, "/".join(path), reason, ours=True)


# ---------------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------------

# How the binary refuses a flag: "error: unknown argument: --x" or "error: --x is not supported".
REFUSED_FLAG_RE = re.compile(
    r"unknown (?:argument|option|flag):?\s+'?(-[^\s']+)'?|(?:^|\s)(-{1,2}[A-Za-z][\w-]*) is not supported",
    re.M)


def _probe_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    """Diagnostic mode: drop the flags the binary refuses. Returns (argv, dropped)."""
    key = tuple(argv)
    if key in S.dryrun_cache:
        return S.dryrun_cache[key]
    args = list(argv)
    dropped = []
    for _ in range(64):
        try:
            p = subprocess.run(args + ["--dry-run"], capture_output=True, text=True, timeout=30)
        except Exception:
            break
        m = REFUSED_FLAG_RE.search(p.stderr + p.stdout)
        if p.returncode == 0 or not m:
            break
        flag = m.group(1) or m.group(2)
        if flag not in args:
            break
        i = args.index(flag)
        n = 2 if flag in VALUE_FLAGS and i + 1 < len(args) else 1
        dropped.append(" ".join(args[i:i + n]))
        del args[i:i + n]
    S.dryrun_cache[key] = (args, dropped)
    return args, dropped


class _SubprocessShim:
    """Replaces `subprocess` inside utils.py only: rewrites the server's argv and sends its
    output to a log file that is attached to failing tests."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def Popen(self, args, *a, **kw):
        args = [str(x) for x in args]
        server = _cur().get("_server")
        # The gwen snapshot of the suite passes a fork-only `--greedy` where llama.cpp's
        # utils.py passes `--temp <temperature> --seed <seed>`; restore upstream's arguments.
        if "--greedy" in args and "--temp" not in args and server is not None:
            i = args.index("--greedy")
            args[i:i + 1] = ["--temp", str(server.temperature), "--seed", str(server.seed)]
            _cur().setdefault("notes", []).append("--greedy (gwen fork) replaced by upstream's --temp/--seed")
        # The binary's --dry-run names the flags it refuses; record all of them (a real start
        # only reports the first), and drop them in the diagnostic mode.
        accepted, refused = _probe_flags(args)
        dropped = []
        if S.drop_unknown:
            args, dropped = accepted, refused
        n = len(_cur()["starts"])
        log = os.path.join(S.logdir, f"server-{os.getpid()}-{id(S.current)}-{n}.log")
        fh = open(log, "wb")
        kw["stdout"] = fh
        kw["stderr"] = subprocess.STDOUT
        _cur()["starts"].append({"argv": args, "refused": refused, "dropped": dropped, "log": log})
        print("bitnet-conformance: server argv:", " ".join(args))
        if dropped:
            print("bitnet-conformance: dropped refused flags:", ", ".join(dropped))
        try:
            return self._real.Popen(args, *a, **kw)
        finally:
            fh.close()


def _install_patches(utils) -> None:
    utils.subprocess = _SubprocessShim(subprocess)

    # ServerPreset.load_all: the pre-download step; nothing to download.
    utils.ServerPreset.load_all = staticmethod(lambda: None)

    orig_start = utils.ServerProcess.start

    def start(self, *args, **kwargs):
        reason = _classify(self)
        if reason is not None:
            pytest.skip(reason)
        tpl = getattr(self, "chat_template_file", None)
        if tpl and not os.path.exists(tpl):
            pytest.skip(f"the suite checkout has no {tpl} (llama.cpp's models/templates)")
        if _is_embedding_preset(self):
            self.model_file = _embedding_model()
        elif _cur().get("file") in SMALL_VOCAB_FILES:
            self.model_file = _small_vocab_model()
            _cur().setdefault("notes", []).append("runs on the 512-piece SentencePiece model (SMALL_VOCAB_FILES)")
        elif not getattr(self, "model_file", None) or getattr(self, "model_hf_repo", None):
            self.model_file = S.model
        self.model_hf_repo = None
        self.model_hf_file = None
        if S.bin:
            self.server_path = self.server_path or S.bin
        _cur()["_server"] = self
        return orig_start(self, *args, **kwargs)

    utils.ServerProcess.start = start

    orig_make_request = utils.ServerProcess.make_request

    def make_request(self, method, path, data=None, headers=None, timeout=None):
        try:
            res = orig_make_request(self, method, path, data, headers, timeout)
        except Exception as e:
            with S.lock:
                _cur()["responses"].append({"req": f"{method} {path}", "error": _excerpt(repr(e), 200)})
            raise
        _wrap_prompt_texts(res.body)
        _waive_response_counts(res.body)
        with S.lock:
            _cur()["_last_body"] = res.body
            _cur()["responses"].append({
                "req": f"{method} {path}",
                "status": res.status_code,
                "body": _excerpt(res.body),
            })
        return res

    utils.ServerProcess.make_request = make_request

    orig_stream = utils.ServerProcess.make_stream_request

    def make_stream_request(self, method, path, data=None, headers=None):
        rec = {"req": f"{method} {path} (stream)", "status": None, "events": 0, "last_event": None}
        with S.lock:
            _cur()["responses"].append(rec)
        try:
            for ev in orig_stream(self, method, path, data, headers):
                rec["status"] = 200
                rec["events"] += 1
                if rec["events"] == 1:
                    rec["first_event"] = _excerpt(ev)
                rec["last_event"] = _excerpt(ev)
                yield ev
        except utils.ServerError as e:
            rec["status"] = e.code
            rec["body"] = _excerpt(e.body)
            raise
        except Exception as e:
            rec["error"] = _excerpt(repr(e), 200)
            raise

    utils.ServerProcess.make_stream_request = make_stream_request

    orig_match = utils.match_regex

    def match_regex(regex, text):
        ok = orig_match(regex, text)
        if ok or regex not in MODEL_TEXT_REGEXES:
            return ok
        if not isinstance(text, str) or not text:
            return False
        with S.lock:
            _cur()["waivers"].append({
                "kind": "model-text",
                "what": f"match_regex({regex!r})",
                "actual": _excerpt(text, 120),
                "reason": "text generated by the stories260K model",
            })
        return True

    utils.match_regex = match_regex


# ---------------------------------------------------------------------------------------------
# pytest hooks
# ---------------------------------------------------------------------------------------------

def pytest_addoption(parser):
    g = parser.getgroup("bitnet", "bitnet.cpp conformance run")
    g.addoption("--bitnet-model", default=os.environ.get("BITNET_CONFORMANCE_MODEL"),
                help="local GGUF for the suite's generation presets")
    g.addoption("--bitnet-report", default=os.environ.get("BITNET_CONFORMANCE_REPORT"),
                help="write one JSON object per test to this file")
    g.addoption("--bitnet-drop-unknown-flags", action="store_true",
                default=os.environ.get("BITNET_CONFORMANCE_DROP_UNKNOWN_FLAGS") == "1",
                help="diagnostic: remove flags the binary refuses (not a conformance result)")


def pytest_configure(config):
    S.config = config
    model = config.getoption("--bitnet-model")
    if not model:
        root = os.path.dirname(os.path.dirname(HERE))
        model = os.path.join(root, "models", "bitnet-kjv-13M-i2_s.gguf")
    S.model = os.path.abspath(model)
    if not os.path.exists(S.model):
        raise pytest.UsageError(f"bitnet conformance: model not found: {S.model}")
    S.model_meta = read_gguf_bos(S.model)
    S.drop_unknown = bool(config.getoption("--bitnet-drop-unknown-flags"))
    S.report_path = config.getoption("--bitnet-report")
    S.bin = os.environ.get("LLAMA_SERVER_BIN_PATH")
    S.logdir = tempfile.mkdtemp(prefix="bitnet-conformance-")

    try:
        import openai  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.join(HERE, "stubs"))
    try:
        import utils
    except ImportError as e:
        raise pytest.UsageError(
            f"bitnet conformance: cannot import the suite's utils.py ({e}); "
            "run from a llama.cpp checkout's tools/server/tests with it on PYTHONPATH")
    if not hasattr(utils, "ServerProcess") or not hasattr(utils, "ServerPreset"):
        raise pytest.UsageError("bitnet conformance: utils.py has no ServerProcess/ServerPreset")
    _install_patches(utils)


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        cs = getattr(item, "callspec", None)
        if cs is None:
            continue
        fname = item.originalname or item.name
        for (func, param), (pred, reason) in MODEL_COUNT_PARAMS.items():
            if func != fname or param not in cs.params:
                continue
            if pred is not None and not pred(cs.params):
                continue
            v = cs.params[param]
            if isinstance(v, int) and not isinstance(v, bool):
                cs.params[param] = ModelSpecificInt(v, param, reason)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    S.current = {"waivers": [], "responses": [], "starts": [], "file": os.path.basename(str(item.path)),
                 "func": item.originalname or item.name}


def _failing_statement(excinfo, item) -> tuple[str, str]:
    """(file:line, source) of the innermost frame inside the suite (test module or utils.py)."""
    suite_dir = str(item.config.rootpath)
    loc, src = "", ""
    try:
        for entry in excinfo.traceback:
            path = str(entry.path)
            if path.startswith(suite_dir) and "/_pytest/" not in path:
                loc = f"{os.path.relpath(path, suite_dir)}:{entry.lineno + 1}"
                try:
                    src = str(entry.statement).strip()
                except Exception:
                    src = ""
    except Exception:
        pass
    return loc, src


def _server_log_tail(n=6) -> list[str]:
    starts = (S.current or {}).get("starts") or []
    if not starts:
        return []
    try:
        with open(starts[-1]["log"], "rb") as fh:
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return [l for l in lines if l.strip()][-n:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    cur = S.current or {}
    if call.excinfo is not None and rep.failed and call.when == "call":
        loc, src = _failing_statement(call.excinfo, item)
        fname = item.originalname or item.name
        for snippet, reason, check in MODEL_LITERAL_ASSERTIONS.get(fname, []):
            if snippet in src and call.excinfo.errisinstance(AssertionError):
                msg = str(call.excinfo.value).splitlines()
                got = next((l.strip() for l in msg if l.strip().startswith("assert ")), "")
                if check is not None:
                    ours = check(cur.get("_last_body"), S.model_meta)
                    if ours is None:
                        continue
                    got = f"{got} ({ours})" if got else ours
                cur.setdefault("waivers", []).append({
                    "kind": "token-literal", "what": src, "actual": got, "reason": reason})
                rep.outcome = "skipped"
                rep.longrepr = (str(item.path), item.location[1] or 0,
                                f"Skipped: model-specific assertion waived ({reason}): {src} -> {got}")
                cur["waived_stop"] = True
                break
    if rep.when == "call" or (rep.when == "setup" and not rep.passed):
        _record(item, rep, call)


def _record(item, rep, call):
    cur = S.current or {}
    rec = {
        "nodeid": item.nodeid,
        "file": os.path.basename(str(item.path)),
        "outcome": rep.outcome if not (rep.when == "setup" and rep.failed) else "error",
        "when": rep.when,
        "duration_s": round(getattr(rep, "duration", 0.0), 3),
        "waivers": cur.get("waivers", []),
        "notes": cur.get("notes", []),
        "argv": cur["starts"][-1]["argv"] if cur.get("starts") else None,
        "refused_flags": sorted({d for s in cur.get("starts", []) for d in s["refused"]}),
        "dropped_flags": sorted({d for s in cur.get("starts", []) for d in s["dropped"]}),
        "drop_unknown_flags_mode": S.drop_unknown,
    }
    if rep.skipped:
        lr = rep.longrepr
        rec["skip_reason"] = (lr[2] if isinstance(lr, tuple) else str(lr)).replace("Skipped: ", "", 1)
    if rep.failed and call.excinfo is not None:
        loc, src = _failing_statement(call.excinfo, item)
        rec["location"] = loc
        rec["statement"] = src
        rec["exception"] = call.excinfo.typename
        rec["message"] = _excerpt(str(call.excinfo.value), 600)
        rec["last_responses"] = cur.get("responses", [])[-2:]
        rec["server_log_tail"] = _server_log_tail()
    S.records.append(rec)


def pytest_sessionfinish(session, exitstatus):
    if S.report_path:
        with open(S.report_path, "w", encoding="utf-8") as fh:
            meta = {
                "meta": True,
                "date": datetime.datetime.now().isoformat(timespec="seconds"),
                "model": S.model,
                "bin": S.bin,
                "drop_unknown_flags_mode": S.drop_unknown,
                "suite": str(session.config.rootpath),
            }
            fh.write(json.dumps(meta) + "\n")
            for r in S.records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    waived = [r for r in S.records if r["waivers"]]
    tr.section("bitnet conformance: model-specific waivers")
    if not waived:
        tr.write_line("none")
    for r in waived:
        for w in r["waivers"]:
            tr.write_line(f"{r['nodeid']} [{r['outcome']}] {w['kind']}: {w['what']} "
                          f"(got {w['actual']}) - {w['reason']}")
    if S.drop_unknown:
        tr.section("bitnet conformance: DIAGNOSTIC MODE (refused flags dropped)")
        flags = {}
        for r in S.records:
            for d in r["dropped_flags"]:
                flags[d.split()[0]] = flags.get(d.split()[0], 0) + 1
        for f, n in sorted(flags.items(), key=lambda kv: -kv[1]):
            tr.write_line(f"{f}: dropped in {n} tests")
    if S.report_path:
        tr.write_line(f"bitnet conformance report: {S.report_path}")
