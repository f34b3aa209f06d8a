#!/usr/bin/env python3
"""Set up bitnet.cpp: check the toolchain, build the engine (only when sources changed), prepare a
model. Standard library only; safe to re-run: a second run with nothing changed does no work.

  python setup_env.py                         # build; the trained default model ships in models/
  python setup_env.py --preset 2B-4T          # also generate a random-weight benchmark model
  python setup_env.py -md models/MyModel -q i2_s   # convert a HF checkpoint / quantize a GGUF in it
  python setup_env.py --clean                 # rebuild from scratch
"""

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(ROOT, "python"))

from bitnet.provision import Provisioner, ProvisionError, write_log  # noqa: E402
from bitnet.runtime import default_model_path  # noqa: E402

QUANT_TYPES = ["i2_s", "tl1", "tl2", "tq1_0", "tq2_0"]
# A preset becomes part of a file name in models/: one plain name (the binary knows which exist).
PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def not_a_directory(path: str) -> "str | None":
    """Why `path` cannot be (or become) a directory, or None: it, or the nearest existing folder
    above it, is something else (a regular file, say)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
    if os.path.isdir(probe):
        return None
    return f"{path} is not a directory" if probe == os.path.abspath(path) else f"{probe} (in {path}) is not a directory"


def preset_model_path(source_dir: str, preset: str, quant: str) -> str:
    return os.path.join(source_dir, "models", f"dummy-bitnet-b1.58-{preset}-{quant}.gguf")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Set up the environment for running BitNet inference")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--cpu", action="store_true", help="build the CPU engine (default)")
    dev.add_argument("--gpu", action="store_true", help="GPU build: the CUDA backend, when a CUDA toolkit is installed")
    p.add_argument("--clean", action="store_true", help="remove the build directory first")
    p.add_argument("-hr", "--hf-repo", help="Hugging Face repo (offline: give its local copy with -md)")
    p.add_argument("-md", "--model-dir", help="directory with a HF checkpoint or an f32/f16 GGUF to quantize")
    p.add_argument("-ld", "--log-dir", default=None, help="append step records to LOG_DIR/setup_env.jsonl")
    p.add_argument("-q", "--quant-type", choices=QUANT_TYPES, default="i2_s", help="weight type (default i2_s)")
    p.add_argument("--quant-embd", action="store_true", help="store embeddings as f16")
    p.add_argument("-p", "--use-pretuned", action="store_true", help="accepted for compatibility (no effect)")
    p.add_argument("--preset", default=None,
                   help="also generate a random-weight model of this shape for benchmarks "
                        "(tiny, 125M, large, 2B-4T, 3B, 8B): models/dummy-bitnet-b1.58-PRESET-TYPE.gguf")
    p.add_argument("--no-model", action="store_true", help="build only; prepare no model")
    p.add_argument("--install-deps", action="store_true", help="apt-get install missing packages")
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build"), help=argparse.SUPPRESS)
    p.add_argument("--source-dir", default=ROOT, help=argparse.SUPPRESS)
    p.add_argument("-j", "--jobs", type=int, default=max(1, os.cpu_count() or 1), help="build jobs")
    args = p.parse_args(argv)
    # Every value, paths included, is checked here: before anything is created or built.
    problem = usage_problem(args)
    if problem:
        print(f"setup_env: error: {problem}", file=sys.stderr)
        sys.exit(2)
    return args


def usage_problem(args) -> "str | None":
    if args.jobs < 1:
        return f"-j must be ≥ 1 (got {args.jobs})"
    if not os.path.isdir(args.source_dir):
        return f"--source-dir {args.source_dir} is not a directory"
    for flag, path in (("--build-dir", args.build_dir), ("-ld/--log-dir", args.log_dir)):
        problem = path is not None and not_a_directory(path)
        if problem:
            return f"{flag}: {problem}"
    if args.preset is not None and (not PRESET_NAME.fullmatch(args.preset) or ".." in args.preset):
        return (f"--preset must be a preset name such as tiny, 125M, large, 2B-4T, 3B or 8B (letters, digits, "
                f"'.', '_', '-'; got {args.preset!r})")
    if args.model_dir and not os.path.isdir(args.model_dir):
        return f"--model-dir {args.model_dir} is not a directory"
    if args.hf_repo and not args.model_dir:
        return ("--hf-repo needs network access this tool does not use: download the checkpoint and pass "
                "its directory with -md")
    return None


def gpu_note() -> "tuple[str, str]":
    """The CUDA backend is built when CMake finds nvcc (cmake/cuda.cmake looks in the same places)."""
    import shutil
    nvcc = os.environ.get("CUDACXX") or shutil.which("nvcc") or \
        ("/usr/local/cuda/bin/nvcc" if os.access("/usr/local/cuda/bin/nvcc", os.X_OK) else None)
    if nvcc:
        return "ok", f"CUDA toolkit found ({nvcc}): the build includes the CUDA backend (-ngl; gpu/README.md)"
    return "skipped", ("no CUDA toolkit (nvcc) found: building the CPU engine only; install the CUDA toolkit "
                       "for the GPU backend (-ngl; gpu/README.md)")


def record_steps(log_dir, prov: Provisioner, state) -> bool:
    """Appends the steps to LOG_DIR/setup_env.jsonl and saves the state; False (said on stderr) when
    the file system refuses."""
    try:
        write_log(log_dir, prov.steps)
        if state is not None:
            prov.save_state(state)  # the steps of this run, and the fingerprint of a good build
        return True
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        print(f"setup_env: error: cannot record the steps: {e.strerror or e}{where}", file=sys.stderr)
        return False


def main(argv=None) -> int:
    args = parse_args(argv)
    prov = Provisioner(os.path.abspath(args.source_dir), os.path.abspath(args.build_dir), jobs=args.jobs)
    state = None
    try:
        if args.clean:
            prov.record("clean", prov.clean)
        if args.gpu:
            prov.record("gpu", gpu_note)
        prov.record("deps", lambda: prov.check_dependencies(args.install_deps))
        state = prov.load_state()
        state.pop("steps", None)
        prov.record("build", lambda: prov.build(state))
        if args.model_dir:
            prov.record("model", lambda: prov.convert_or_quantize(args.model_dir, args.quant_type, args.quant_embd))
        elif args.preset:
            out = preset_model_path(args.source_dir, args.preset, args.quant_type)
            prov.record("model", lambda: prov.generate(out, args.preset, args.quant_type))
        elif not args.no_model:
            prov.record("model", lambda: prov.check_default_model(default_model_path()))
    except ProvisionError as e:
        print(f"setup_env: error: {e}", file=sys.stderr)
        return 1
    finally:
        recorded = record_steps(args.log_dir, prov, state)
    if not recorded:
        return 1
    total = sum(s.duration_s for s in prov.steps)
    did = [s.name for s in prov.steps if s.status == "done"]
    print(f"setup_env: finished in {total:.2f}s; " + (f"did: {', '.join(did)}" if did else "nothing to do"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
