"""setup_env.py on a real (tiny) CMake project: the first run builds, the second does no rebuild
and says so, a source change rebuilds, --clean starts over."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETUP = os.path.join(ROOT, "setup_env.py")

CMAKE = """cmake_minimum_required(VERSION 3.20)
project(fake CXX)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
add_executable(bitnet_cli tools/main.cpp)
set_target_properties(bitnet_cli PROPERTIES OUTPUT_NAME bitnet)
"""
MAIN = '#include <cstdio>\nint main() { std::puts("usage: bitnet <command>\\n\\ncommands:\\n  run  x"); }\n'


def write_fake_tree(src):
    """The tiny CMake project (CMAKE, MAIN) in the folder src."""
    os.makedirs(os.path.join(src, "tools"))
    with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
        f.write(CMAKE)
    with open(os.path.join(src, "tools", "main.cpp"), "w") as f:
        f.write(MAIN)


@unittest.skipUnless(shutil.which("cmake") and shutil.which("ninja") and shutil.which("c++"),
                     "needs cmake, ninja and a C++ compiler")
class SetupEnvTest(unittest.TestCase):
    def setUp(self):
        self.src = tempfile.mkdtemp(prefix="bitnet-setup-src-")
        self.addCleanup(shutil.rmtree, self.src, True)
        self.build = os.path.join(self.src, "build")
        write_fake_tree(self.src)

    def tearDown(self):
        shutil.rmtree(self.src, ignore_errors=True)

    def setup_env(self, *extra):
        r = subprocess.run([sys.executable, SETUP, "--source-dir", self.src, "--build-dir", self.build,
                            "--no-model", "-j", "1", "-ld", os.path.join(self.src, "logs"), *extra],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def test_second_run_does_no_rebuild_and_says_so(self):
        first = self.setup_env()
        self.assertRegex(first, r"setup_env: build +done")
        binary = os.path.join(self.build, "bin", "bitnet")
        mtime = os.stat(binary).st_mtime_ns
        second = self.setup_env()
        self.assertRegex(second, r"setup_env: build +skipped .*no rebuild")
        self.assertIn("nothing to do", second)
        self.assertNotIn("$ cmake", second, "no build command may run")
        self.assertEqual(os.stat(binary).st_mtime_ns, mtime)
        with open(os.path.join(self.build, "setup_env.json")) as f:
            state = json.load(f)
        self.assertEqual([s["name"] for s in state["steps"]], ["deps", "build"])
        self.assertTrue(all(s["duration_s"] >= 0 for s in state["steps"]))
        with open(os.path.join(self.src, "logs", "setup_env.jsonl")) as f:
            self.assertEqual(len(f.readlines()), 4, "two steps recorded per run")

        with open(os.path.join(self.src, "tools", "main.cpp"), "a") as f:
            f.write("// changed\n")
        self.assertRegex(self.setup_env(), r"setup_env: build +done")
        cleaned = self.setup_env("--clean")
        self.assertRegex(cleaned, r"setup_env: clean +done")
        self.assertRegex(cleaned, r"setup_env: build +done")

    def test_gpu_request_says_whether_the_cuda_backend_is_built(self):
        out = self.setup_env("--gpu")
        self.assertRegex(out, r"CUDA toolkit found \(.*nvcc\): the build includes the CUDA backend|"
                              r"no CUDA toolkit \(nvcc\) found: building the CPU engine only")
        self.assertTrue(os.path.exists(os.path.join(self.build, "bin", "bitnet")))

    def test_bad_arguments(self):
        r = subprocess.run([sys.executable, SETUP, "-md", "/nonexistent/dir"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("is not a directory", r.stderr)
        r = subprocess.run([sys.executable, SETUP, "-hr", "microsoft/x"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("-md", r.stderr)


if __name__ == "__main__":
    unittest.main()
