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
"""Lint as the MONAI Model Zoo runs it (black, isort, flake8 at 120 columns) and JSON configs as the zoo formats them."""

from __future__ import annotations

import collections
import json
import subprocess
import sys

import pytest
from conftest import BUNDLE, ROOT

LINTERS = {
    "black": [sys.executable, "-m", "black", "--check", "--quiet", "."],
    "isort": [sys.executable, "-m", "isort", "--check-only", "--quiet", "."],
    "flake8": [sys.executable, "-m", "flake8", "--count", "."],
}


@pytest.mark.parametrize("tool", sorted(LINTERS))
def test_code_is_lint_clean(tool):
    done = subprocess.run(LINTERS[tool], cwd=ROOT, capture_output=True, encoding="utf-8", errors="replace")
    assert done.returncode == 0, f"{tool} found problems:\n{done.stdout}\n{done.stderr}"


def test_json_configs_are_zoo_formatted():
    files = sorted(BUNDLE.glob("configs/*.json"))
    assert files, "the bundle has no JSON configs"
    for path in files:
        text = path.read_text()
        canonical = json.dumps(json.loads(text, object_pairs_hook=collections.OrderedDict), indent=4) + "\n"
        assert text == canonical, f"{path.name} is not json.dumps(indent=4) + newline"
