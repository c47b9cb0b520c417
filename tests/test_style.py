# Copyright (c) 2026 SAM-Med3D MONAI bundle contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Lint as the MONAI Model Zoo runs it (black, isort, flake8 at 120 columns) on the project's own files, and JSON
configs as the zoo formats them."""

from __future__ import annotations

import ast
import collections
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BUNDLE, ROOT

LINTERS = {
    "black": [sys.executable, "-m", "black", "--check", "--quiet"],
    "isort": [sys.executable, "-m", "isort", "--check-only", "--quiet"],
    "flake8": [sys.executable, "-m", "flake8", "--count"],
}
BADLY_FORMATTED = "import sys\nimport os\nx = {  'a':1 }\ndef f( ):\n  return os,sys,x\n"


def tracked_python_files(root: Path) -> list[str]:
    """The Python files git tracks in ``root``: the project's own code, never a venv or a download inside the clone."""
    listed = subprocess.run(["git", "ls-files", "-z", "--", "*.py"], cwd=root, capture_output=True, check=True)
    return sorted(name for name in listed.stdout.decode("utf-8").split("\0") if name)


def lint(root: Path, tool: str) -> subprocess.CompletedProcess:
    """Run one linter, with the repository's settings, on the tracked Python files of ``root``."""
    return subprocess.run(
        [*LINTERS[tool], *tracked_python_files(root)], cwd=root, capture_output=True, encoding="utf-8", errors="replace"
    )


@pytest.mark.parametrize("tool", sorted(LINTERS))
def test_code_is_lint_clean(tool):
    done = lint(ROOT, tool)
    assert done.returncode == 0, f"{tool} found problems:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def clone_with_a_venv(tmp_path_factory) -> Path:
    """A copy of the repository's tracked files (as a fresh clone has them) with a badly formatted file in venv dirs."""
    clone = tmp_path_factory.mktemp("clone") / "repo"
    clone.mkdir()
    for name in subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(
        b"\0"
    ):
        if name and name.decode().endswith((".py", ".cfg", ".toml")):
            target = clone / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name.decode(), target)
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True)
    for venv in (".venv", "venv", "env", "my-python", "bundle/.venv"):
        bad = clone / venv / "lib" / "python3.11" / "site-packages" / "pkg" / "bad.py"
        bad.parent.mkdir(parents=True)
        bad.write_text(BADLY_FORMATTED, encoding="utf-8")
    return clone


@pytest.mark.parametrize("tool", sorted(LINTERS))
def test_lint_ignores_untracked_venvs_and_catches_tracked_files(clone_with_a_venv, tool):
    """Whatever the venv is called and wherever it sits, lint reads the project's files only; the same bad file fails
    once git tracks it (so the check can fail)."""
    done = lint(clone_with_a_venv, tool)
    assert done.returncode == 0, f"{tool} linted an untracked venv:\n{done.stdout}\n{done.stderr}"
    tracked = clone_with_a_venv / "bundle" / "scripts" / "bad_example.py"
    tracked.write_text(BADLY_FORMATTED, encoding="utf-8")
    subprocess.run(["git", "add", str(tracked)], cwd=clone_with_a_venv, check=True)
    try:
        assert lint(clone_with_a_venv, tool).returncode != 0, f"{tool} missed a badly formatted tracked file"
    finally:
        subprocess.run(["git", "rm", "-q", "--cached", str(tracked)], cwd=clone_with_a_venv, check=True)
        tracked.unlink()


def test_gitignore_covers_the_usual_venv_names():
    for venv in (".venv", "venv", "env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", f"{venv}/x.py"], cwd=ROOT)
        assert ignored.returncode == 0, f"{venv}/ is not in .gitignore"


def test_json_configs_are_zoo_formatted():
    files = sorted(BUNDLE.glob("configs/*.json"))
    assert files, "the bundle has no JSON configs"
    for path in files:
        text = path.read_text(encoding="utf-8")
        canonical = json.dumps(json.loads(text, object_pairs_hook=collections.OrderedDict), indent=4) + "\n"
        assert text == canonical, f"{path.name} is not json.dumps(indent=4) + newline"


def locale_dependent_text_io(source: str) -> list[int]:
    """Lines of ``source`` that read or write text, or decode a subprocess's output, with the locale's codec: CI's
    locale is ASCII, so such a call breaks on the first non-ASCII character (a progress bar, a "x" in a doc)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        keywords = {k.arg for k in node.keywords}
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        modes = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        modes += [k.value.value for k in node.keywords if k.arg == "mode" and isinstance(k.value, ast.Constant)]
        if (name in ("read_text", "write_text") and isinstance(node.func, ast.Attribute)) or (
            name == "open" and not any("b" in m for m in modes)
        ):
            if "encoding" not in keywords and not (
                name == "open" and isinstance(node.func, ast.Attribute) and not modes
            ):
                lines.append(node.lineno)
        elif name in ("run", "Popen", "check_output") and ({"text", "universal_newlines"} & keywords):
            if "encoding" not in keywords:
                lines.append(node.lineno)
    return lines


def test_locale_dependent_text_io_is_found():
    found = locale_dependent_text_io(
        "p.read_text()\nopen(f)\nopen(f, 'w')\nsubprocess.run(c, text=True)\n"
        "p.read_text(encoding='utf-8')\nopen(f, 'rb')\nsubprocess.run(c, text=True, encoding='utf-8')\n"
    )
    assert found == [1, 2, 3, 4]


def test_text_io_names_its_encoding():
    bad = [
        f"{name}:{line}"
        for name in tracked_python_files(ROOT)
        for line in locale_dependent_text_io((ROOT / name).read_text(encoding="utf-8"))
    ]
    assert not bad, "text I/O with the locale's codec (pass encoding='utf-8'):\n" + "\n".join(bad)
