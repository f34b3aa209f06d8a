"""Run, server and benchmark configurations: validation and exact argument lists.

The checks mirror src/runtime/run_config.cpp so a bad value is reported before anything is built
or started, with the same wording the binary would use.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

# How a missing default model comes back (the same words as src/runtime/diagnostics.h).
RESTORE_DEFAULT_MODEL = ("it ships with the repository: restore it with `git checkout -- models/`, "
                         "or retrain it with training/train.sh")

# The server reads its key from the environment, never from the command line (where any local user
# could read it in /proc/PID/cmdline). `bitnet serve` takes LLAMA_ARG_API_KEY and
# LLAMA_ARG_API_KEY_FILE before LLAMA_API_KEY, so a key given here clears those two in the child.
API_KEY_ENV = "LLAMA_API_KEY"
API_KEY_SHADOWING_ENV = ("LLAMA_ARG_API_KEY", "LLAMA_ARG_API_KEY_FILE")

MAX_THREADS = 1024
MAX_BATCH = 65536
MAX_CTX = 2147483647


class ConfigError(ValueError):
    """A bad configuration value; `field` is the flag as the user typed it."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name


def _int(name: str, flag: str, value, low: int, high: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(flag, f"{flag} ({name}) must be an integer (got {value!r})")
    if not low <= value <= high:
        raise ConfigError(flag, f"{flag} must be {what} (got {value})")


def _float(flag: str, value, low: float, high: float, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(flag, f"{flag} must be a finite number (got {value!r})")
    if not low <= value <= high:
        raise ConfigError(flag, f"{flag} must be {what} (got {value})")


def _model(model: Optional[str]) -> List[str]:
    return ["-m", model] if model else []


def _fmt(value: float) -> str:
    """Shortest text for a float that parses back to it (0.8, not 0.8000000000000000444)."""
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class RuntimeConfig:
    """Settings of one `bitnet run` (the llama-cli flags run_inference.py exposes)."""

    model: Optional[str] = None  # None: the default model (built on first use)
    prompt: Optional[str] = None
    n_predict: int = 128
    ctx_size: int = 2048
    threads: int = 0  # 0: automatic (hardware threads, BITNET_MAX_THREADS ceiling)
    temperature: float = 0.8
    batch_size: int = 512
    gpu_layers: int = 0
    conversation: bool = False
    seed: Optional[int] = None
    system_prompt: Optional[str] = None
    telemetry_out: Optional[str] = None
    cache_type_k: str = "f16"  # -ctk: f16 or q8_0
    cache_type_v: str = "f16"  # -ctv
    context_shift: bool = False  # a full context keeps `keep` tokens, drops half of the rest, goes on
    keep: int = 0  # --keep: tokens of the initial prompt that always stay (-1: all of it)
    extra_args: List[str] = field(default_factory=list)

    def validate(self, require_model_file: bool = True, for_diagnostics: bool = False) -> "RuntimeConfig":
        """Raises ConfigError for a bad value. for_diagnostics: only the values themselves, as
        `bitnet doctor` checks them (no prompt needed; the model is one of the report's findings)."""
        validate_common(None if for_diagnostics else self.model, self.threads, self.ctx_size, self.batch_size,
                        self.gpu_layers, require_model_file)
        validate_cache_types(self.cache_type_k, self.cache_type_v, self.gpu_layers)
        _int("n_predict", "-n", self.n_predict, -1, MAX_CTX, "-1 or ≥ 0")
        _int("keep", "--keep", self.keep, -1, MAX_CTX, "-1 (the whole prompt) or ≥ 0")
        if self.keep != 0 and not self.context_shift:
            raise ConfigError("--keep", "--keep only matters with --context-shift (what stays when the context is full)")
        _float("-temp", self.temperature, 0.0, 1e6, "≥ 0 (0: greedy)")
        if not self.conversation and not self.prompt and not for_diagnostics:
            raise ConfigError("-p", "no prompt: give -p TEXT (or -cnv)")
        if self.seed is not None:
            _int("seed", "-s", self.seed, 0, 2**64 - 1, "between 0 and 2^64-1")
        return self

    def args(self, binary: str) -> List[str]:
        """The exact `bitnet run` argument list (no -m: the binary's default model)."""
        a = [binary, "run"] + _model(self.model)
        if self.prompt:
            a += ["-p", self.prompt]
        a += ["-n", str(self.n_predict), "-c", str(self.ctx_size), "-t", str(self.threads),
              "-b", str(self.batch_size), "-ngl", str(self.gpu_layers), "--temp", _fmt(self.temperature)]
        if self.seed is not None:
            a += ["-s", str(self.seed)]
        if self.conversation:
            a.append("-cnv")
        if self.system_prompt:
            a += ["-sys", self.system_prompt]
        if self.context_shift:
            a.append("--context-shift")
            if self.keep:
                a += ["--keep", str(self.keep)]
        if self.telemetry_out:
            a += ["--telemetry-out", self.telemetry_out]
        return a + _cache_args(self.cache_type_k, self.cache_type_v) + list(self.extra_args)

    def env(self) -> Dict[str, Optional[str]]:
        """Environment changes the child needs (None: unset the variable); none for a run."""
        return {}

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# KV cache storage types (-ctk / -ctv), llama.cpp's names; q8_0 runs on the CPU only.
CACHE_TYPES = ("f16", "q8_0")


def validate_cache_types(cache_type_k: str, cache_type_v: str, gpu_layers: int = 0, lists: bool = False) -> None:
    """-ctk / -ctv: each f16 or q8_0 (lists: comma-separated lists of them, as `bitnet bench`)."""
    quantized = False
    for flag, value in (("-ctk", cache_type_k), ("-ctv", cache_type_v)):
        names = str(value).split(",") if lists else [value]
        for name in names:
            if name not in CACHE_TYPES:
                raise ConfigError(flag, f"{flag}: KV cache type {name!r} is not supported; accepted: "
                                        + ", ".join(CACHE_TYPES))
            quantized = quantized or name != "f16"
    if quantized and gpu_layers > 0:
        raise ConfigError("-ctk", "-ctk/-ctv q8_0 run on the CPU only: the GPU layers (-ngl) keep an f16 cache")


def _cache_args(cache_type_k: str, cache_type_v: str) -> List[str]:
    """The flags for non-default cache types (none for f16, so existing argument lists stay as they were)."""
    a: List[str] = []
    if cache_type_k != "f16":
        a += ["-ctk", cache_type_k]
    if cache_type_v != "f16":
        a += ["-ctv", cache_type_v]
    return a


def validate_common(model, threads, ctx_size, batch_size, gpu_layers, require_model_file=True) -> None:
    _int("threads", "-t", threads, 0, MAX_THREADS, "between 1 and 1024, or 0 for automatic")
    _int("ctx_size", "-c", ctx_size, 0, MAX_CTX, "positive and at most 2147483647, or 0 for the model's")
    _int("batch_size", "-b", batch_size, 1, MAX_BATCH, "between 1 and 65536")
    _int("gpu_layers", "-ngl", gpu_layers, 0, 100000, "≥ 0")
    if model is not None:
        if not isinstance(model, str) or not model:
            raise ConfigError("-m", f"-m must be a path (got {model!r})")
        if require_model_file and not os.path.exists(model):
            raise ConfigError("-m", f"model file not found: {model}")
        if os.path.isdir(model):
            raise ConfigError("-m", f"model path is a directory, not a GGUF file: {model}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServerConfig:
    """Settings of one `bitnet serve` (run_inference_server.py's flags)."""

    model: Optional[str] = None
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 0
    ctx_size: int = 2048
    n_predict: int = 4096
    temperature: float = 0.8
    batch_size: int = 512
    gpu_layers: int = 0
    parallel: int = 1
    cont_batching: bool = True
    kv_unified: bool = False  # -kvu: the slots share one KV cache of ctx_size positions (CPU only)
    context_shift: bool = False  # a full slot keeps the request's n_keep tokens, drops half of the rest
    api_key: Optional[str] = field(default=None, repr=False)  # travels in the environment (env())
    allow_public: bool = False  # bind beyond loopback without an API key
    prompt: Optional[str] = None  # system prompt primed into every slot
    telemetry_out: Optional[str] = None
    cache_type_k: str = "f16"  # -ctk: f16 or q8_0
    cache_type_v: str = "f16"  # -ctv
    extra_args: List[str] = field(default_factory=list)

    def validate(self, require_model_file: bool = True, for_diagnostics: bool = False) -> "ServerConfig":
        """Raises ConfigError for a bad value. for_diagnostics: the values themselves, without the
        model (one of the report's findings) or the rule about listening beyond loopback without a key."""
        validate_common(None if for_diagnostics else self.model, self.threads, self.ctx_size, self.batch_size,
                        self.gpu_layers, require_model_file)
        validate_cache_types(self.cache_type_k, self.cache_type_v, self.gpu_layers)
        _int("port", "--port", self.port, 0, 65535, "between 1 and 65535 (0: any free port)")
        _int("n_predict", "-n", self.n_predict, -1, MAX_CTX, "-1 or ≥ 0")
        _int("parallel", "-np", self.parallel, 1, 256, "between 1 and 256")
        _float("--temperature", self.temperature, 0.0, 1e6, "≥ 0")
        if self.ctx_size and self.batch_size > self.ctx_size:
            raise ConfigError("-b", f"-b {self.batch_size} exceeds the context size -c {self.ctx_size}")
        if self.ctx_size and self.ctx_size < self.parallel and not self.kv_unified:
            raise ConfigError("-np", f"-np {self.parallel} slots cannot share a context of {self.ctx_size}")
        if self.kv_unified and self.gpu_layers > 0:
            raise ConfigError("-kvu", "-kvu (one KV cache shared by the slots) runs on the CPU only: drop -ngl or -kvu")
        if not self.host:
            raise ConfigError("--host", "--host must not be empty")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("--api-key", "--api-key must be at least 8 characters")
        if not is_loopback(self.host) and not self.api_key and not self.allow_public and not for_diagnostics:
            raise ConfigError("--host", f"refusing to listen on {self.host} without --api-key: anyone who can "
                                        "reach this machine could use the model; give --api-key KEY, "
                                        "or --force-public if the network is trusted")
        return self

    def args(self, binary: str) -> List[str]:
        a = [binary, "serve"] + _model(self.model) + ["--host", self.host, "--port", str(self.port),
             "-c", str(self.ctx_size), "-t", str(self.threads), "-n", str(self.n_predict),
             "--temp", _fmt(self.temperature), "-b", str(self.batch_size), "-ngl", str(self.gpu_layers),
             "-np", str(self.parallel), "-cb" if self.cont_batching else "-nocb"]
        if self.kv_unified:
            a.append("-kvu")
        if self.context_shift:
            a.append("--context-shift")
        # No --api-key here: the key goes in the environment (env()), never on the command line.
        if self.prompt:
            a += ["-sys", self.prompt]
        if self.telemetry_out:
            a += ["--telemetry-out", self.telemetry_out]
        return a + _cache_args(self.cache_type_k, self.cache_type_v) + list(self.extra_args)

    def env(self) -> Dict[str, Optional[str]]:
        """Environment changes for the `bitnet serve` child (None: unset the variable): the API key
        as LLAMA_API_KEY, with the variables the binary would prefer to it cleared."""
        if not self.api_key:
            return {}
        changes: Dict[str, Optional[str]] = {name: None for name in API_KEY_SHADOWING_ENV}
        changes[API_KEY_ENV] = self.api_key
        return changes


@dataclass
class BenchConfig:
    """Settings of one `bitnet bench` (utils/e2e_benchmark.py's flags)."""

    model: Optional[str] = None
    n_token: int = 128
    n_prompt: int = 512
    threads: int = 2
    repetitions: int = 5
    output: str = "md"
    telemetry_out: Optional[str] = None
    n_depth: int = 0  # -d: tokens already in the cache before each test (llama-bench's --n-depth)
    cache_type_k: str = "f16"  # -ctk: f16, q8_0 or a comma list of them (each a test parameter)
    cache_type_v: str = "f16"  # -ctv

    def validate(self, require_model_file: bool = True, for_diagnostics: bool = False) -> "BenchConfig":
        validate_common(None if for_diagnostics else self.model, self.threads, 0, 1, 0, require_model_file)
        _int("n_token", "-n", self.n_token, 0, MAX_CTX, "≥ 0")
        _int("n_prompt", "-p", self.n_prompt, 0, MAX_CTX, "≥ 0")
        _int("repetitions", "-r", self.repetitions, 1, 1000, "between 1 and 1000")
        _int("n_depth", "-d", self.n_depth, 0, MAX_CTX, "≥ 0")
        validate_cache_types(self.cache_type_k, self.cache_type_v, lists=True)
        if self.n_token == 0 and self.n_prompt == 0:
            raise ConfigError("-n", "nothing to measure: -n and -p are both 0")
        if self.output not in ("md", "csv", "json", "jsonl"):
            raise ConfigError("-o", f"-o must be md, csv, json or jsonl (got {self.output!r})")
        return self

    def args(self, binary: str) -> List[str]:
        a = [binary, "bench"] + _model(self.model) + ["-n", str(self.n_token), "-p", str(self.n_prompt),
             "-t", str(self.threads), "-r", str(self.repetitions), "-o", self.output]
        if self.n_depth:
            a += ["-d", str(self.n_depth)]
        a += _cache_args(self.cache_type_k, self.cache_type_v)
        if self.telemetry_out:
            a += ["--telemetry-out", self.telemetry_out]
        return a

    def env(self) -> Dict[str, Optional[str]]:
        return {}
