"""Helpers shared by the top-level scripts (run_inference.py, run_inference_server.py, utils/*)."""

from __future__ import annotations

import json
import os
import sys
from typing import Callable

from .config import ConfigError
from .provision import Provisioner, ProvisionError
from .runtime import REPO_ROOT, BitNetRuntime, CommandUnavailable, EngineError, format_argv


def fail(program: str, message: str, code: int) -> int:
    print(f"{program}: error: {message}", file=sys.stderr)
    return code


def ensure_built(runtime: BitNetRuntime, program: str) -> None:
    """Builds the engine when the binary is missing, so a script works as the first command on a
    fresh machine (setup_env.py does the same, with its cache)."""
    if runtime.binary_exists():
        return
    if os.environ.get("BITNET_BIN") or os.environ.get("BITNET_BIN_DIR"):
        raise CommandUnavailable(f"{runtime.binary} not found (set by BITNET_BIN/BITNET_BIN_DIR)")
    print(f"{program}: {runtime.binary} not built yet: building it (one time)", file=sys.stderr)
    prov = Provisioner(REPO_ROOT, os.path.dirname(runtime.bin_dir), log=lambda m: print(m, file=sys.stderr))
    state = prov.load_state()
    prov.record("deps", lambda: prov.check_dependencies(install=False))
    prov.record("build", lambda: prov.build(state))
    prov.save_state(state)


def print_dry_run(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['command']} --dry-run: nothing was started")
    if report.get("resolved"):
        print("resolved by the binary:")
        for k, v in report["resolved"].items():
            print(f"  {k:<18} {v if isinstance(v, str) else json.dumps(v)}")
    elif not report["binary_exists"]:
        print(f"  ({report['binary']} is not built yet: it would be built first)")
    if report.get("resolved_error"):
        print(f"  the binary rejected it: {report['resolved_error']}")
    print("would run:\n  " + format_argv(report["argv"]))
    if report.get("env"):  # secrets (the API key) travel in the environment, shown masked
        print("with the environment:\n  " + " ".join(f"{k}={v}" for k, v in report["env"].items()))


def run_script(program: str, runtime: BitNetRuntime, make_config: Callable, launch: Callable,
               dry_run: bool, as_json: bool, diagnose: Callable | None = None) -> int:
    """The flow every top-level script shares: diagnostics (when `diagnose` is given) or config
    validation, --dry-run, building the engine on first use, then `launch(config)`; failures become
    one-line errors and exit codes (guarded)."""

    def body() -> int:
        config = make_config()
        if diagnose is not None:
            # The same value checks as a run (a bad -c or --port is a usage error here too), but no
            # prompt is needed and a missing model is one of the report's findings.
            config.validate(require_model_file=False, for_diagnostics=True)
            report = diagnose()
            print(json.dumps(report.as_dict(), indent=2) if as_json else report.to_text())
            return 0 if report.ready else 1
        config.validate()
        if dry_run:
            print_dry_run(runtime.dry_run(config), as_json)
            return 0
        ensure_built(runtime, program)
        return launch(config).returncode

    return guarded(program, body)


def guarded(program: str, body: Callable[[], int]) -> int:
    """Runs a script body, turning expected failures into one-line errors and exit codes."""
    try:
        return body()
    except ConfigError as e:
        return fail(program, str(e), 2)
    except (CommandUnavailable, EngineError, ProvisionError) as e:
        return fail(program, str(e), 1)
    except OSError as e:  # the file system or the process table said no: say what, not where in the code
        what = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else (e.strerror or str(e))
        return fail(program, what, 1)
    except KeyboardInterrupt:
        return 130
