"""Thin, standard-library-only front end over the C++ `bitnet` binary.

The engine, its validation of run settings, diagnostics and telemetry live in C++ (libbitnet).
This package finds the binary, validates flags early with the same messages, assembles exact
argument lists (never a shell string), and supervises child processes.
"""

from .config import ConfigError, RuntimeConfig, ServerConfig, BenchConfig
from .runtime import BitNetRuntime, CommandUnavailable, EngineError, RuntimeDiagnostics
from .supervisor import RuntimeSupervisor, TaskResult
from .fleet import FleetResult, FleetSupervisor, Host, NoHostAvailable
from .httpfetch import FetchError, HTTPStatusError

__all__ = [
    "BenchConfig", "BitNetRuntime", "CommandUnavailable", "ConfigError", "EngineError", "FetchError",
    "FleetResult", "FleetSupervisor", "HTTPStatusError", "Host", "NoHostAvailable", "RuntimeConfig",
    "RuntimeDiagnostics", "RuntimeSupervisor", "ServerConfig", "TaskResult",
]
