"""infra/terraform without a Terraform binary: every `var.X` the module uses is declared and every
declared variable is used, references name resources and locals that exist, the example root
module passes only declared variables (and every one without a default) and reads only declared
outputs, and the files follow `terraform fmt`'s layout (two-space indentation by nesting, no tabs
or trailing spaces, `=` aligned within a run of one-line attributes)."""

import glob
import os
import re
import unittest

from helpers import ROOT

TF = os.path.join(ROOT, "infra", "terraform")
MODULE = os.path.join(TF, "modules", "bitnet-server")
EXAMPLE = os.path.join(TF, "examples", "basic")


def mask(text, keep_strings=False):
    """The text with comments blanked and (unless keep_strings) string contents replaced by 'x',
    interpolations kept: the same length, so columns still line up."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                out.append(" ")
                i += 1
        elif c == '"':
            out.append('"')
            i += 1
            while i < n and text[i] != '"':
                if text.startswith("${", i):  # references inside interpolations stay visible
                    j = text.index("}", i)
                    out.append(text[i:j + 1])
                    i = j + 1
                    continue
                step = 2 if text[i] == "\\" else 1
                out.append(text[i:i + step] if keep_strings else "x" * step)
                i += step
            out.append('"')
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_comments_and_strings(text):
    return mask(text)


def strip_comments(text):
    return mask(text, keep_strings=True)


def read_dir(path):
    files = sorted(glob.glob(os.path.join(path, "*.tf")))
    return {f: open(f).read() for f in files}


def blocks(code, kind):
    """Names of `kind "a" "b" {` headers: a list of tuples of the labels."""
    return [tuple(m.group(1).split('" "')) for m in re.finditer(r'^\s*%s\s+"([^{]*)"\s*\{' % kind, code, re.M)]


def block_body(code, header_regex):
    m = re.search(header_regex, code, re.M)
    assert m, header_regex
    depth, i = 0, m.end() - 1
    for j in range(i, len(code)):
        depth += {"{": 1, "}": -1}.get(code[j], 0)
        if depth == 0:
            return code[i + 1:j]
    raise AssertionError("unclosed block " + header_regex)


class Module(unittest.TestCase):
    def setUp(self):
        self.files = read_dir(MODULE)
        self.assertTrue(self.files)
        self.raw = "\n".join(self.files.values())
        self.code = strip_comments(self.raw)

    def test_balanced(self):
        for f, text in list(self.files.items()) + list(read_dir(EXAMPLE).items()):
            code = strip_comments_and_strings(text)
            for o, c in ("{}", "[]", "()"):
                self.assertEqual(code.count(o), code.count(c), "%s: unbalanced %s%s" % (f, o, c))

    def test_variables_declared_and_used(self):
        declared = {b[0] for b in blocks(self.code, "variable")}
        used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", self.code))
        self.assertEqual(used - declared, set(), "used but not declared")
        self.assertEqual(declared - used, set(), "declared but never used")
        for name in declared:  # every variable documents itself and has a type
            body = block_body(self.raw, r'^variable\s+"%s"\s*\{' % name)
            self.assertIn("description", body, name)
            self.assertIn("type", body, name)

    def test_references_exist(self):
        resources = {"%s.%s" % b for b in blocks(self.code, "resource")}
        referenced = set(re.findall(r"\b(kubernetes_[a-z0-9_]+\.[a-z0-9_]+)\b", self.code))
        self.assertEqual(referenced - resources, set())
        locals_declared = set(re.findall(r"^\s{2}([a-z_]+)\s*=", block_body(self.code, r"^locals\s*\{"), re.M))
        locals_used = set(re.findall(r"\blocal\.([a-z_]+)", self.code))
        self.assertEqual(locals_used - locals_declared, set())
        self.assertEqual({"kubernetes"}, set(re.findall(r'^\s*(\w+)\s*=\s*\{\s*$',
                                                         block_body(self.code, r"required_providers\s*\{"), re.M)))

    def test_example_calls_the_module_correctly(self):
        example = strip_comments("\n".join(read_dir(EXAMPLE).values()))
        call = block_body(example, r'^module\s+"bitnet_cpu"\s*\{')
        passed = set(re.findall(r"^\s*([a-z_]+)\s*=", call, re.M)) - {"source"}
        declared = {b[0] for b in blocks(self.code, "variable")}
        self.assertEqual(passed - declared, set(), "arguments the module does not declare")
        required = {name for name in declared
                    if "default" not in block_body(self.code, r'^variable\s+"%s"\s*\{' % name)}
        self.assertEqual(required - passed, set(), "required variables not passed")
        outputs = {b[0] for b in blocks(self.code, "output")}
        for name in re.findall(r"\bmodule\.bitnet_cpu\.([a-z_]+)", example):
            self.assertIn(name, outputs)
        self.assertIn('"../../modules/bitnet-server"', call.replace(" ", ""))

    def test_fmt_layout(self):
        for f, text in list(self.files.items()) + list(read_dir(EXAMPLE).items()):
            depth, run = 0, []  # run: (line number, column of '=') of consecutive one-line attributes
            lines = text.split("\n")
            self.assertEqual(lines[-1], "", "%s ends with a newline" % f)

            def close_run():
                cols = {col for _, col in run}
                self.assertLessEqual(len(cols), 1, "%s: '=' not aligned on lines %s" % (f, [n for n, _ in run]))
                run.clear()

            for n, line in enumerate(lines, 1):
                self.assertNotIn("\t", line, "%s:%d tab" % (f, n))
                self.assertEqual(line, line.rstrip(), "%s:%d trailing space" % (f, n))
                code = strip_comments_and_strings(line).strip()
                if not code:
                    close_run()
                    continue
                leading_close = code.startswith(("}", "]", ")"))
                want = 2 * (depth - 1 if leading_close else depth)
                self.assertEqual(len(line) - len(line.lstrip(" ")), want, "%s:%d indentation" % (f, n))
                m = re.match(r"^\s*[\w\"./-]+\s*=(?!=)", strip_comments_and_strings(line))
                is_attr = m is not None and not code.endswith("{") or (m is not None and code.endswith("= {"))
                if is_attr and m is not None:
                    if run and run[-1][0] != n - 1:
                        close_run()
                    run.append((n, strip_comments_and_strings(line).index("=")))
                else:
                    close_run()
                opened = sum(code.count(c) for c in "{[(") - sum(code.count(c) for c in "}])")
                depth += opened
                if opened > 0:
                    close_run()
            close_run()
            self.assertEqual(depth, 0, f)


if __name__ == "__main__":
    unittest.main()
