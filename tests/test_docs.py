# -*- test-case-name: tests.test_docs -*-
"""
Tests for the documentation: every public name is documented, the Sphinx
build is free of warnings, and the README shows the real quick start.
"""

import importlib
import inspect
import os
import re
import sys

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

import sampy_twisted

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
EXAMPLE = os.path.join(DOCS, "examples", "quickstart.py")
README = os.path.join(ROOT, "README.md")

_DIRECTIVE = re.compile(r"^\.\. (?P<kind>[a-z:]+)::\s*(?P<argument>\S*)\s*$")


def _public_modules():
    """The public modules, with the name of each: the package, and
    ``sampy_twisted.testing`` once it exists."""
    modules = [("sampy_twisted", sampy_twisted)]
    try:
        testing = importlib.import_module("sampy_twisted.testing")
    except ModuleNotFoundError as exc:
        if exc.name != "sampy_twisted.testing":
            raise
    else:
        modules.append(("sampy_twisted.testing", testing))
    return modules


class _Directive:
    """One top-level directive of an reST file: its kind, argument, option
    names and whether it has content beyond its options."""

    def __init__(self, kind, target, options, has_content):
        self.kind = kind
        self.target = target
        self.options = options
        self.has_content = has_content


def _directives(path):
    """
    The top-level autodoc directives of an reST file, with their targets
    made absolute using the ``module`` and ``currentmodule`` directives.
    """
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    found = []
    module = None
    for number, line in enumerate(lines):
        match = _DIRECTIVE.match(line)
        if match is None:
            continue
        kind, argument = match.group("kind"), match.group("argument")
        if kind in ("module", "py:module", "currentmodule", "py:currentmodule"):
            module = argument
            continue
        if not kind.startswith("auto"):
            continue
        options, has_content = set(), False
        for body in lines[number + 1:]:
            if body.strip() and not body.startswith(" "):
                break
            text = body.strip()
            if text.startswith(":") and not has_content:
                options.add(text.split(":")[1])
            elif text:
                has_content = True
        target = argument
        if kind != "automodule" and module and not argument.startswith(module + "."):
            target = f"{module}.{argument}"
        found.append(_Directive(kind, target, options, has_content))
    return found


def _all_directives():
    result = []
    for name in sorted(os.listdir(DOCS)):
        if name.endswith(".rst"):
            result.extend(_directives(os.path.join(DOCS, name)))
    return result


def _own_docstring(obj):
    """The docstring *obj* itself has (not one inherited from a base)."""
    if inspect.isclass(obj):
        doc = vars(obj).get("__doc__")
    else:
        doc = getattr(obj, "__doc__", None)
    return doc if isinstance(doc, str) and doc.strip() else None


def _documents_itself(obj):
    """Whether *obj* carries a docstring of its own (classes, functions),
    rather than needing a description in the reST (constants)."""
    return inspect.isclass(obj) or inspect.isroutine(obj)


def _public_members(cls):
    """The public methods and properties *cls* defines itself."""
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        if inspect.isfunction(value):
            yield name, value


class APIDocumentedTests(unittest.SynchronousTestCase):
    """
    Every name in the public ``__all__`` lists is documented.
    """

    def test_every_public_name_has_a_directive(self):
        """
        Each name of ``sampy_twisted.__all__`` has an autodoc directive of
        its own in ``docs/*.rst``; each name of ``sampy_twisted.testing``'s
        has one, or is covered by an ``automodule`` of that module with
        ``:members:``.
        """
        directives = _all_directives()
        targets = {d.target for d in directives if d.kind != "automodule"}
        whole_modules = {
            d.target
            for d in directives
            if d.kind == "automodule" and "members" in d.options and "exclude-members" not in d.options
        }
        missing = []
        for module_name, module in _public_modules():
            for name in module.__all__:
                qualified = f"{module_name}.{name}"
                if qualified in targets:
                    continue
                if module_name != "sampy_twisted" and module_name in whole_modules:
                    continue
                missing.append(qualified)
        self.assertEqual(missing, [], "public names without an autodoc directive in docs/*.rst")

    def test_package_names_listed_once(self):
        """
        No name of ``sampy_twisted.__all__`` is documented twice (Sphinx
        would warn about a duplicate object description).
        """
        seen = [d.target for d in _all_directives() if d.kind != "automodule"]
        duplicates = sorted({t for t in seen if seen.count(t) > 1})
        self.assertEqual(duplicates, [])

    def test_public_names_have_docstrings(self):
        """
        Every public class and function, and every public method and
        property of a public class, has a docstring of its own.
        """
        undocumented = []
        for module_name, module in _public_modules():
            for name in module.__all__:
                obj = getattr(module, name)
                if not _documents_itself(obj):
                    continue
                if _own_docstring(obj) is None:
                    undocumented.append(f"{module_name}.{name}")
                if inspect.isclass(obj):
                    for member_name, member in _public_members(obj):
                        if _own_docstring(member) is None:
                            undocumented.append(f"{module_name}.{name}.{member_name}")
        self.assertEqual(undocumented, [], "public names without a docstring")

    def test_constants_are_described(self):
        """
        A public constant cannot carry a docstring, so its autodoc directive
        must have a description.
        """
        described = {d.target for d in _all_directives() if d.kind != "automodule" and d.has_content}
        undescribed = [
            f"{module_name}.{name}"
            for module_name, module in _public_modules()
            for name in module.__all__
            if not _documents_itself(getattr(module, name))
            and not inspect.ismodule(getattr(module, name))
            and f"{module_name}.{name}" not in described
        ]
        self.assertEqual(undescribed, [], "public constants without a description in docs/*.rst")


class SphinxBuildTests(unittest.TestCase):
    """
    The documentation builds without a single warning.
    """

    timeout = 120

    async def test_build_without_warnings(self):
        """
        ``python -m sphinx -W -q -b html docs <tmp>`` exits with 0, and the
        API page has an entry for every public name.
        """
        output_dir = os.path.abspath(self.mktemp())
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            ["-m", "sphinx", "-W", "-q", "-b", "html", DOCS, output_dir],
            env=os.environ,
            path=ROOT,
            reactor=reactor,
        )
        output = (out + err).decode("utf-8", "replace")
        self.assertEqual(code, 0, f"the Sphinx build failed:\n{output}")
        with open(os.path.join(output_dir, "api.html"), encoding="utf-8") as f:
            anchors = set(re.findall(r'id="([^"]+)"', f.read()))
        absent = [
            f"{module_name}.{name}"
            for module_name, module in _public_modules()
            for name in module.__all__
            if f"{module_name}.{name}" not in anchors
        ]
        self.assertEqual(absent, [], "public names missing from the built API reference")


class ReadmeTests(unittest.SynchronousTestCase):
    """
    The README's quick start is the example file, and its commands are the
    agreed ones.
    """

    def _readme(self):
        with open(README, encoding="utf-8") as f:
            return f.read()

    def test_quick_start_is_the_example(self):
        """
        The README shows ``docs/examples/quickstart.py`` verbatim in a
        Python code block.
        """
        with open(EXAMPLE, encoding="utf-8") as f:
            example = f.read()
        blocks = re.findall(r"^```python\n(.*?)^```$", self._readme(), re.M | re.S)
        self.assertIn(example, blocks, "README.md's quick start differs from docs/examples/quickstart.py")

    def test_quick_commands_come_first(self):
        """
        The first section is "Quick commands": run the main job, run the
        test suite.
        """
        readme = self._readme()
        sections = re.findall(r"^## (.+)$", readme, re.M)
        self.assertEqual(sections[0], "Quick commands")
        quick = readme.split("## Quick commands", 1)[1].split("\n## ", 1)[0]
        commands = re.search(r"```\n(.*?)```", quick, re.S).group(1).splitlines()
        self.assertEqual(
            commands,
            ["pip install . && twistd -n samp-client --name demo --subscribe 'table.*'",
             "pip install '.[test]' && python -m twisted.trial tests"],
        )

    def test_ci_runs_the_test_command(self):
        """
        ``.ci/run`` installs and tests with the README's test command, step
        by step (pip run as ``python -m pip``).
        """
        with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
            steps = [line[len("run "):] for line in f.read().splitlines() if line.startswith("run python")]
        self.assertIn("pip install '.[test]' && python -m twisted.trial tests", self._readme())
        self.assertEqual(steps[0], "python -m pip install '.[test]'")
        self.assertEqual(steps[-1], "python -m twisted.trial tests")
