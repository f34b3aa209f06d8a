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
from typing import Dict, List, Optional

from .config import RESTORE_DEFAULT_MODEL, BenchConfig, RuntimeConfig, ServerConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL_NAME = "bitnet-kjv-13M-i2_s.gguf"  # trained, shipped in models/ (docs/default-model.md)
SCHEMA = "bitnet.doctor"
SCHEMA_VERSION = 1


class CommandUnavailable(RuntimeError):
    """The binary does not have the requested subcommand (or does not exist)."""


def default_bin_dir(repo_root: str = REPO_ROOT) -> str:
    return os.environ.get("BITNET_BIN_DIR") or os.path.join(repo_root, "build", "bin")


def default_model_path(repo_root: str = REPO_ROOT) -> str:
    return os.environ.get("BITNET_DEFAULT_MODEL") or os.path.join(repo_root, "models", DEFAULT_MODEL_NAME)


def redact(argv: List[str]) -> List[str]:
    """The argument list with secrets (the API key) masked, for display and logs."""
    out = list(argv)
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
        facts = {k: v for k, v in d.items() if k not in ("schema", "schema_version", "ready", "checks")}
        return cls(bool(d["ready"]), list(d["checks"]), facts)

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
            out = subprocess.run([self.binary, "--help"], capture_output=True, text=True, timeout=30).stdout
            body = out.split("commands:", 1)[-1]
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

    # ---- commands --------------------------------------------------------------------------
    def command(self, config) -> List[str]:
        """The exact argument list for a RuntimeConfig, ServerConfig or BenchConfig."""
        return config.args(self.binary)

    def _launch(self, name: str, config, capture: bool, env: Optional[dict], stdin=None):
        config.validate()
        self.require_command(name)
        argv = self.command(config)
        result = subprocess.run(argv, capture_output=capture, text=True, env=env, stdin=stdin)
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
        report = {"command": name, "dry_run": True, "argv": redact(argv), "config": _config_dict(config),
                  "binary": self.binary, "binary_exists": self.binary_exists(), "resolved": None}
        if self.binary_exists() and name in self.available_commands():
            r = subprocess.run(argv + ["--dry-run", "--json"], capture_output=True, text=True, timeout=60)
            if r.returncode == 0:
                report["resolved"] = json.loads(r.stdout).get("resolved")
            else:
                report["resolved_error"] = r.stderr.strip()
        elif self.binary_exists():
            report["resolved_error"] = f"this build has no '{name}' command yet"
        return report

    def diagnostics(self, model: Optional[str] = None, ctx_size: int = 0, threads: int = 0,
                    port: Optional[int] = None, host: str = "127.0.0.1") -> RuntimeDiagnostics:
        """`bitnet doctor --json`, or the same report assembled here when the binary is missing."""
        if not self.binary_exists():
            return self._fallback_diagnostics(model, port, host)
        argv = [self.binary, "doctor", "--json", "-c", str(ctx_size), "-t", str(threads), "--host", host]
        if model:
            argv += ["-m", model]
        if port is not None:
            argv += ["--port", str(port)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if r.returncode not in (0, 1):
            raise RuntimeError(f"bitnet doctor failed: {r.stderr.strip()}")
        return RuntimeDiagnostics.from_dict(json.loads(r.stdout))

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
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1" if host == "localhost" else host, port))
        return ""
    except OSError as e:
        return f"cannot bind {host}:{port}: {e.strerror}"


def format_argv(argv: List[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
