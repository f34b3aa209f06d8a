"""setup_env.py checks its path-like arguments before it creates anything: a --preset is one plain
name (it becomes part of a file name in models/), so `x/../../../y` is refused up front instead of
creating a directory outside models/ (the tiny CMake project of test_setup_env gets the run as
far as generating the model, where the old code created the directory)."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from test_setup_env import SETUP, write_fake_tree


class PresetStaysInModels(unittest.TestCase):
    def setUp(self):
        # base/ holds the source tree; anything a preset smuggles out would land in base/ (or above).
        self.base = tempfile.mkdtemp(prefix="bitnet-setup-paths-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.src = os.path.join(self.base, "tree", "src")
        self.build = os.path.join(self.src, "build")
        write_fake_tree(self.src)

    def setup_env(self, *extra):
        return subprocess.run([sys.executable, SETUP, "--source-dir", self.src, "--build-dir", self.build, "-j", "1",
                               *extra], capture_output=True, text=True, cwd=self.base, timeout=600)

    def tree(self):
        return sorted(os.path.relpath(os.path.join(d, n), self.base)
                      for d, dirs, files in os.walk(self.base) for n in dirs + files)

    def test_traversing_presets_are_refused_before_anything_is_created(self):
        before = self.tree()
        for preset in ("x/../../../escaped/y", "x/../../escaped/y", "../escaped", "/tmp/escaped", "a/b", "..",
                       "x\\..\\y", ""):
            with self.subTest(preset=preset):
                r = self.setup_env("--preset", preset)
                self.assertNotIn("Traceback", r.stderr)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn("setup_env: error: --preset must be a preset name", r.stderr)
                self.assertEqual(self.tree(), before, "nothing may be created, inside models/ or out")

    @unittest.skipUnless(shutil.which("cmake") and shutil.which("ninja") and shutil.which("c++"),
                         "needs cmake, ninja and a C++ compiler")
    def test_a_plain_preset_makes_its_model_in_models(self):
        r = self.setup_env("--preset", "tiny")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(os.path.isdir(os.path.join(self.src, "models")))
        self.assertEqual([p for p in self.tree() if not p.startswith(os.path.join("tree", "src"))],
                         ["tree"], "nothing outside the source tree")
        # The run that used to escape: with the engine built, the old code went on to create
        # base/tree/escaped (models/dummy-bitnet-b1.58-x/../../../escaped) before the binary said no.
        r = self.setup_env("--preset", "x/../../../escaped/y")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.base, "tree", "escaped")))
        self.assertFalse(os.path.exists(os.path.join(self.base, "escaped")))


if __name__ == "__main__":
    unittest.main()
