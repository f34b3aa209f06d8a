"""BitNetRuntime: locate the `bitnet` binary, check its commands, run, serve, diagnose, dry-run.

Every child process gets an argument list (never a shell). Where the binary lacks a command
(an older build without `serve` or `bench`), CommandUnavailable says so instead of a cryptic exit.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

from .config import RESTORE_DEFAULT_MODEL, BenchConfig, ConfigError, RuntimeConfig, ServerConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL_NAME = "bitnet-kjv-13M-i2_s.gguf"  # trained, shipped in models/ (docs/default-model.md)
SCHEMA = "bitnet.doctor"
SCHEMA_VERSION = 1


class CommandUnavailable(RuntimeError):
    """The binary does not have the requested subcommand (or does not exist)."""


class EngineError(RuntimeError):
    """The binary could not be started, or its answer is not what this front end expects (no
    report, not JSON, killed, timed out): the message says which, in one line."""


def default_bin_dir(repo_root: str = REPO_ROOT) -> str:
    return os.environ.get("BITNET_BIN_DIR") or os.path.join(repo_root, "build", "bin")


def default_model_path(repo_root: str = REPO_ROOT) -> str:
    return os.environ.get("BITNET_DEFAULT_MODEL") or os.path.join(repo_root, "models", DEFAULT_MODEL_NAME)


def child_env(changes: Mapping[str, Optional[str]], base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """`base` (default: this process's environment) with `changes` applied; None unsets a variable."""
    env = dict(os.environ if base is None else base)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def masked_env(changes: Mapping[str, Optional[str]]) -> Dict[str, str]:
    """The variables a child gets set, for display: their names, values masked (they are secrets)."""
    return {name: "****" for name, value in changes.items() if value is not None}


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit] + "…"


def redact(argv: List[str]) -> List[str]:
    """The argument list with secrets (the API key) masked, for display and logs."""
    out = ["--api-key=****" if a.startswith("--api-key=") else a for a in argv]
    for i, a in enumerate(out[:-1]):
        if a == "--api-key":
            out[i + 1] = "****"
    return out


@dataclass
class RuntimeDiagnostics:
    """The `bitnet doctor --json` report (schema bitnet.doctor, version 1)."""

    ready: bool
    checks: List[Dict[str, str]]
    facts: Dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "RuntimeDiagnostics":
        """Raises ValueError when `d` is not a bitnet.doctor report."""
        if not isinstance(d, dict) or not isinstance(d.get("ready"), bool) or not isinstance(d.get("checks"), list):
            raise ValueError("not a bitnet.doctor report (it needs \"ready\" and \"checks\")")
        checks = d["checks"]
        if not all(isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("status"), str)
                   and isinstance(c.get("detail", ""), str) for c in checks):
            raise ValueError("not a bitnet.doctor report (a check lacks its name, status or detail)")
        facts = {k: v for k, v in d.items() if k not in ("schema", "schema_version", "ready", "checks")}
        return cls(d["ready"], [dict(c, detail=c.get("detail", "")) for c in checks], facts)

    def as_dict(self) -> dict:
        d = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "ready": self.ready, "checks": self.checks}
        d.update(self.facts)
        return d

    def check(self, name: str) -> Optional[Dict[str, str]]:
        return next((c for c in self.checks if c["name"] == name), None)

    def failed(self) -> List[Dict[str, str]]:
        return [c for c in self.checks if c["status"] == "fail"]

    def to_text(self) -> str:
        lines = []
        for c in self.checks:
            tag = "FAIL" if c["status"] == "fail" else c["status"]
            lines.append(f"[{tag:<4}] {c['name']:<9} {c['detail']}")
            if c.get("hint"):
                lines.append(" " * 17 + "hint: " + c["hint"])
        lines.append("ready: every required check passed" if self.ready else "not ready: fix the FAIL lines above")
        return "\n".join(lines)


class BitNetRuntime:
    def __init__(self, bin_dir: Optional[str] = None, repo_root: str = REPO_ROOT):
        self.repo_root = repo_root
        self.bin_dir = bin_dir or default_bin_dir(repo_root)
        self._commands: Optional[List[str]] = None

    # ---- the binary ----------------------------------------------------------------------
    @property
    def binary(self) -> str:
        return os.environ.get("BITNET_BIN") or os.path.join(self.bin_dir, "bitnet")

    def binary_exists(self) -> bool:
        return os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)

    def available_commands(self) -> List[str]:
        """Subcommands listed by `bitnet --help` (empty when the binary is missing)."""
        if self._commands is None:
            if not self.binary_exists():
                return []
            r = self._call([self.binary, "--help"], timeout=30)
            if r.returncode != 0 or "commands:" not in r.stdout:
                raise EngineError(f"{self.binary} does not look like the bitnet binary: `--help` exited "
                                  f"{r.returncode} without a command list"
                                  + (f" ({_one_line(r.stderr)})" if r.stderr.strip() else ""))
            body = r.stdout.split("commands:", 1)[-1]
            self._commands = re.findall(r"^  (\S+)\s", body, flags=re.M)
        return self._commands

    def require_command(self, name: str) -> None:
        if not self.binary_exists():
            raise CommandUnavailable(f"{self.binary} not found: build it with `python setup_env.py`")
        have = self.available_commands()
        if name not in have:
            raise CommandUnavailable(
                f"this build of bitnet has no '{name}' command (it has: {', '.join(have)}); "
                f"update the sources and re-run `python setup_env.py`")

    def model_path(self, model: Optional[str]) -> str:
        return model or default_model_path(self.repo_root)

    def _call(self, argv: List[str], timeout: float, env: Optional[Dict[str, str]] = None):
        """Runs the binary with output captured; failing to start it or a timeout is an EngineError."""
        try:
            return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout,
                                  env=env, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise EngineError(f"`{format_argv(redact(argv[:2]))}` did not finish within {timeout:g} s") from None
        except OSError as e:
            raise EngineError(f"cannot run {argv[0]}: {e.strerror or e}") from None

    # ---- commands --------------------------------------------------------------------------
    def command(self, config) -> List[str]:
        """The exact argument list for a RuntimeConfig, ServerConfig or BenchConfig (never a secret:
        those travel in the environment, see environment())."""
        return config.args(self.binary)

    def environment(self, config, env: Optional[Mapping[str, str]] = None) -> Optional[Dict[str, str]]:
        """The child's whole environment: `env` (default: this process's) with the configuration's
        changes (a server's API key); None when nothing changes (the child inherits)."""
        changes = config.env() if hasattr(config, "env") else {}
        if not changes and env is None:
            return None
        return child_env(changes, env)

    def _launch(self, name: str, config, capture: bool, env: Optional[dict], stdin=None):
        config.validate()
        self.require_command(name)
        argv = self.command(config)
        try:
            result = subprocess.run(argv, capture_output=capture, text=True, env=self.environment(config, env),
                                    stdin=stdin)
        except OSError as e:
            raise EngineError(f"cannot run {argv[0]}: {e.strerror or e}") from None
        if capture and result.returncode == 2 and "unknown command" in (result.stderr or ""):
            raise CommandUnavailable(result.stderr.strip())
        return result

    def run_inference(self, config: RuntimeConfig, capture: bool = False, env: Optional[dict] = None):
        """Runs `bitnet run`; returns the CompletedProcess (text captured when capture=True)."""
        return self._launch("run", config, capture, env)

    def run_server(self, config: ServerConfig, capture: bool = False, env: Optional[dict] = None):
        """Runs `bitnet serve` in the foreground until it exits (Ctrl-C stops it)."""
        return self._launch("serve", config, capture, env)

    def run_bench(self, config: BenchConfig, capture: bool = False, env: Optional[dict] = None):
        return self._launch("bench", config, capture, env)

    def dry_run(self, config, command: Optional[str] = None) -> dict:
        """What would run, without running it: the configuration and the exact argument list; with
        the binary's own resolution (threads, context) when it is built and knows the command."""
        config.validate(require_model_file=config.model is not None)
        argv = self.command(config)
        name = command or argv[1]
        changes = config.env() if hasattr(config, "env") else {}
        report = {"command": name, "dry_run": True, "argv": redact(argv), "env": masked_env(changes),
                  "config": _config_dict(config), "binary": self.binary, "binary_exists": self.binary_exists(),
                  "resolved": None}
        if not self.binary_exists():
            return report
        try:
            if name not in self.available_commands():
                report["resolved_error"] = f"this build has no '{name}' command yet"
                return report
            r = self._call(argv + ["--dry-run", "--json"], timeout=60, env=self.environment(config))
        except EngineError as e:
            report["resolved_error"] = str(e)
            return report
        if r.returncode != 0:
            report["resolved_error"] = r.stderr.strip() or f"exit status {r.returncode}"
            return report
        try:
            resolved = json.loads(r.stdout)
            report["resolved"] = resolved.get("resolved") if isinstance(resolved, dict) else None
        except ValueError:
            report["resolved_error"] = f"the binary's --dry-run --json output is not JSON: {_one_line(r.stdout, 120)!r}"
        return report

    def diagnostics(self, model: Optional[str] = None, ctx_size: int = 0, threads: int = 0,
                    port: Optional[int] = None, host: str = "127.0.0.1", parallel: int = 1,
                    kv_unified: bool = False) -> RuntimeDiagnostics:
        """`bitnet doctor --json`, or the same report assembled here when the binary is missing.
        `parallel`: the server's slots (-np), for the KV cache per slot and in total; `kv_unified`:
        the slots share one cache of ctx_size positions (-kvu)."""
        if not self.binary_exists():
            return self._fallback_diagnostics(model, port, host)
        argv = [self.binary, "doctor", "--json", "-c", str(ctx_size), "-t", str(threads), "--host", host]
        if model:
            argv += ["-m", model]
        if port is not None:
            argv += ["--port", str(port)]
        if parallel != 1:
            argv += ["-np", str(parallel)]
        if kv_unified:
            argv.append("-kvu")
        r = self._call(argv, timeout=120)
        if r.returncode == 2:  # the binary's usage error: a bad value, worded by the binary
            message = re.sub(r"^error: ", "", _one_line(r.stderr)) or "bitnet doctor rejected its arguments"
            raise ConfigError("doctor", message)
        if r.returncode not in (0, 1):
            why = f"killed by signal {-r.returncode}" if r.returncode < 0 else f"exit status {r.returncode}"
            raise EngineError(f"`{self.binary} doctor` failed ({why})"
                              + (f": {_one_line(r.stderr)}" if r.stderr.strip() else ""))
        try:
            return RuntimeDiagnostics.from_dict(json.loads(r.stdout))
        except ValueError as e:  # json.JSONDecodeError is one
            got = _one_line(r.stdout, 80)
            raise EngineError(f"`{self.binary} doctor --json` (exit status {r.returncode}) printed no report: "
                              + (f"{e}; it printed {got!r}" if got else "its output was empty")) from None

    def _fallback_diagnostics(self, model: Optional[str], port: Optional[int], host: str) -> RuntimeDiagnostics:
        checks = [{"name": "binaries", "status": "fail", "detail": f"not found: {self.binary}",
                   "hint": "build them with `python setup_env.py` (or scripts/setup.sh); if they live "
                           "elsewhere, point BITNET_BIN_DIR at that directory"}]
        path = self.model_path(model)
        facts: Dict[str, object] = {"binaries": {"dir": self.bin_dir, "status": {"bitnet": f"not found: {self.binary}"}},
                                    "model": {"path": path, "default": model is None, "exists": os.path.isfile(path)}}
        if not os.path.isfile(path):
            checks.append({"name": "model", "status": "fail",
                           "detail": ("default model missing: " if model is None else "model file not found: ") + path,
                           "hint": RESTORE_DEFAULT_MODEL if model is None else
                                   "check the -m path; omit -m to use the shipped default model"})
        busy = _port_problem(host, port if port is not None else 8080)
        facts["server"] = {"host": host, "port": port if port is not None else 8080, "available": not busy}
        if busy:
            checks.append({"name": "port", "status": "fail" if port is not None else "warn", "detail": busy,
                           "hint": "choose another --port, or stop the process listening on it"})
        return RuntimeDiagnostics(not any(c["status"] == "fail" for c in checks), checks, facts)


def _config_dict(config) -> dict:
    d = dict(config.__dict__)
    if d.get("api_key"):
        d["api_key"] = "****"
    return d


def _port_problem(host: str, port: int) -> str:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        return f"cannot bind {host}:{port}: the port must be between 1 and 65535"
    try:
        family, _, _, _, address = socket.getaddrinfo("127.0.0.1" if host == "localhost" else host, port,
                                                      type=socket.SOCK_STREAM)[0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(address)
        return ""
    except (OSError, UnicodeError) as e:
        return f"cannot bind {host}:{port}: {getattr(e, 'strerror', None) or e}"


def format_argv(argv: List[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
