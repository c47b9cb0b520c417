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
