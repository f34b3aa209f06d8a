"""Provisioning behind setup_env.py: check the toolchain and Debian packages, configure and build
the engine only when something changed, prepare a model. Each step is recorded with its outcome
and duration in <build>/setup_env.json, which is also the cache that makes re-runs free.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from .config import RESTORE_DEFAULT_MODEL

SOURCE_PARTS = ("CMakeLists.txt", "cmake", "src", "tools", "include")
STATE_FILE = "setup_env.json"


class ProvisionError(RuntimeError):
    pass


@dataclass
class Step:
    name: str
    status: str  # done (work was done), ok (check passed), skipped (nothing to do), failed
    detail: str
    duration_s: float


@dataclass
class Provisioner:
    source_dir: str
    build_dir: str
    build_type: str = "Release"
    jobs: int = max(1, os.cpu_count() or 1)
    target: str = "bitnet_cli"
    log: Callable[[str], None] = print
    steps: List[Step] = field(default_factory=list)

    # ---- bookkeeping ---------------------------------------------------------------------
    @property
    def state_path(self) -> str:
        return os.path.join(self.build_dir, STATE_FILE)

    @property
    def binary(self) -> str:
        return os.path.join(self.build_dir, "bin", "bitnet")

    def load_state(self) -> dict:
        try:
            with open(self.state_path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def save_state(self, state: dict) -> None:
        os.makedirs(self.build_dir, exist_ok=True)
        state["steps"] = [s.__dict__ for s in self.steps]
        tmp = self.state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2)
        os.replace(tmp, self.state_path)

    def record(self, name: str, fn: Callable[[], "tuple[str, str]"]) -> Step:
        """Runs one step, timing it; fn returns (status, detail)."""
        start = time.monotonic()
        try:
            status, detail = fn()
        except ProvisionError as e:
            status, detail = "failed", str(e)
        except OSError as e:  # a file, folder or command the step needed: one line, not a traceback
            where = f": {e.filename}" if getattr(e, "filename", None) else ""
            status, detail = "failed", f"{e.strerror or e}{where}"
        step = Step(name, status, detail, round(time.monotonic() - start, 3))
        self.steps.append(step)
        self.log(f"setup_env: {name:<10} {status:<8} {step.duration_s:7.2f}s  {detail}")
        if status == "failed":
            raise ProvisionError(f"{name}: {detail}")
        return step

    # ---- checks --------------------------------------------------------------------------
    def required_packages(self) -> List[str]:
        """The PACKAGES list of scripts/setup.sh, so both set-up paths need the same things."""
        path = os.path.join(self.source_dir, "scripts", "setup.sh")
        try:
            text = open(path, encoding="utf-8").read()
        except OSError:
            return []
        m = re.search(r"PACKAGES=\(([^)]*)\)", text)
        return m.group(1).split() if m else []

    def missing(self) -> "tuple[List[str], List[str]]":
        tools = [t for t in ("cmake", "ninja", "c++") if shutil.which(t) is None]
        packages = []
        if shutil.which("dpkg-query"):
            for p in self.required_packages():
                r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
                if "install ok installed" not in r.stdout:
                    packages.append(p)
        return tools, packages

    def check_dependencies(self, install: bool) -> "tuple[str, str]":
        tools, packages = self.missing()
        if not tools and not packages:
            return "ok", "toolchain (cmake, ninja, c++) and packages present"
        what = ", ".join([f"command {t}" for t in tools] + [f"package {p}" for p in packages])
        if install and packages:
            sudo = [] if os.geteuid() == 0 else ["sudo"]
            self.log(f"setup_env: installing {' '.join(packages)}")
            subprocess.run(sudo + ["apt-get", "update", "-qq"], check=False)
            r = subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + packages)
            if r.returncode == 0 and not any(self.missing()):
                return "done", f"installed {' '.join(packages)}"
        hint = f"sudo apt-get install {' '.join(packages)}" if packages else "install the missing commands"
        raise ProvisionError(f"missing {what}: run `{hint}` (or `python setup_env.py --install-deps`)")

    # ---- build -----------------------------------------------------------------------------
    def configure_args(self) -> List[str]:
        return ["cmake", "-S", self.source_dir, "-B", self.build_dir, "-G", "Ninja",
                f"-DCMAKE_BUILD_TYPE={self.build_type}", "-DBITNET_WERROR=ON"]

    def fingerprint(self) -> str:
        """Hash of every source file's path, size and mtime, plus the configuration."""
        h = hashlib.sha256(json.dumps(self.configure_args()[3:]).encode())
        for part in SOURCE_PARTS:
            root = os.path.join(self.source_dir, part)
            paths = [root] if os.path.isfile(root) else sorted(
                os.path.join(d, f) for d, _, files in os.walk(root) for f in files)
            for p in paths:
                st = os.stat(p)
                h.update(f"{os.path.relpath(p, self.source_dir)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def build(self, state: dict) -> "tuple[str, str]":
        fp = self.fingerprint()
        if state.get("fingerprint") == fp and os.access(self.binary, os.X_OK):
            return "skipped", f"up to date: sources unchanged since the last build ({state.get('built_at', '?')}); no rebuild"
        if not os.path.isfile(os.path.join(self.build_dir, "build.ninja")):
            self._run(self.configure_args(), "configure")
        self._run(["cmake", "--build", self.build_dir, "-j", str(self.jobs), "--target", self.target], "build")
        state["fingerprint"] = fp
        state["built_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
        return "done", f"built {self.binary}"

    def _run(self, argv: List[str], what: str) -> None:
        self.log("setup_env: $ " + " ".join(argv))
        if subprocess.run(argv).returncode != 0:
            raise ProvisionError(f"{what} failed (command: {' '.join(argv)})")

    def clean(self) -> "tuple[str, str]":
        if not os.path.isdir(self.build_dir):
            return "skipped", f"{self.build_dir} does not exist"
        shutil.rmtree(self.build_dir)
        return "done", f"removed {self.build_dir}"

    # ---- models ----------------------------------------------------------------------------
    def bitnet(self, *args: str) -> None:
        self._run([self.binary, *args], args[0])

    def has_command(self, name: str) -> bool:
        out = subprocess.run([self.binary, "--help"], capture_output=True, text=True).stdout
        return re.search(rf"^  {re.escape(name)}\s", out, flags=re.M) is not None

    def check_default_model(self, path: str) -> "tuple[str, str]":
        """The trained default model ships with the repository; nothing to make."""
        if not os.path.isfile(path):
            raise ProvisionError(f"the default model {path} is missing: {RESTORE_DEFAULT_MODEL}")
        return "skipped", f"{path} (trained, shipped)"

    def generate(self, path: str, preset: str, quant: str) -> "tuple[str, str]":
        if os.path.isfile(path):
            return "skipped", f"{path} exists"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.bitnet("gen-model", "--arch", "bitnet-b1.58", "--preset", preset, "--type", quant, "-o", path)
        return "done", f"generated {path}"

    def convert_or_quantize(self, model_dir: str, quant: str, quant_embd: bool) -> "tuple[str, str]":
        """A Hugging Face checkpoint directory is converted; an f32/f16 GGUF in it is quantized."""
        out = os.path.join(model_dir, f"ggml-model-{quant}.gguf")
        if os.path.isfile(out):
            return "skipped", f"{out} exists"
        embd = ["--embedding-type", "f16"] if quant_embd else []  # bitnet.cpp: --quant-embd → f16
        if os.path.isfile(os.path.join(model_dir, "config.json")):
            if not self.has_command("convert"):
                raise ProvisionError("this build has no 'convert' command yet; update and re-run setup_env.py")
            self.bitnet("convert", model_dir, "-o", out, "--outtype", quant, *embd)
            return "done", f"converted {model_dir} → {out}"
        for src in ("ggml-model-f32.gguf", "ggml-model-f16.gguf", "ggml-model-bf16.gguf"):
            if os.path.isfile(os.path.join(model_dir, src)):
                if not self.has_command("quantize"):
                    raise ProvisionError("this build has no 'quantize' command yet; update and re-run setup_env.py")
                self.bitnet("quantize", os.path.join(model_dir, src), out, quant, *embd)
                return "done", f"quantized {src} → {out}"
        raise ProvisionError(f"{model_dir} holds neither a Hugging Face checkpoint (config.json + *.safetensors) "
                             f"nor ggml-model-f32/f16/bf16.gguf to quantize")


def write_log(log_dir: Optional[str], steps: List[Step]) -> None:
    if not log_dir:
        return
    os.makedirs(log_dir, exist_ok=True)
    with open(os.path.join(log_dir, "setup_env.jsonl"), "a", encoding="utf-8") as f:
        for s in steps:
            f.write(json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%S"), **s.__dict__}) + "\n")
