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
"""The Model Zoo's CI, the parts that need no zoo snapshot: the release holds no path of this repository only, the
pins install on the zoo CI's Python, the zoo's pre-commit rules hold on the bundle, the zoo's TorchScript check
fails where the exclusion says, and the bundle's zoo unit test runs on CPU.

``tools/run_zoo_ci.py`` runs the zoo's own scripts on a snapshot; see the model card's Model Zoo section.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import BUNDLE, DATA, ROOT
from packaging.specifiers import SpecifierSet

sys.path.insert(0, str(ROOT / "tools"))
import build_bundle_zip  # noqa: E402

RECORD = json.loads((DATA / "zoo" / "requires_python.json").read_text(encoding="utf-8"))
METADATA = json.loads((BUNDLE / "configs" / "metadata.json").read_text(encoding="utf-8"))
# Paths that exist in this repository but not in the release zip: a reference to one in the zip is dead there,
# unless its paragraph, table or code block says that it lives in the source repository.
REPOSITORY_ONLY = re.compile(r"(?<![\w./-])(?:\.\./|(?:tools|tests|benchmarks|sammed3d|monailabel_app)/[\w.*-])")
# The pre-commit hooks' size limit (``check-added-large-files --maxkb=1024``).
MAX_KB = 1024
TEXT_SUFFIXES = (".py", ".json", ".md", ".txt", ".yml", ".yaml", ".conf", ".sh", "")


def tracked_bundle_files() -> list[Path]:
    """The bundle's files as its zoo PR would add them: what git tracks under ``bundle/``."""
    done = subprocess.run(
        ["git", "ls-files", "bundle"], cwd=ROOT, capture_output=True, text=True, encoding="utf-8", check=True
    )
    return [ROOT / line for line in done.stdout.splitlines()]


def bundle_pins() -> dict[str, str]:
    """Every version ``metadata.json`` pins, by distribution name."""
    pins = {
        "monai": METADATA["monai_version"],
        "torch": METADATA["pytorch_version"],
        "numpy": METADATA["numpy_version"],
    }
    return {**pins, **METADATA["required_packages_version"]}


def test_release_zip_names_no_path_outside_the_bundle(tmp_path):
    path = build_bundle_zip.build_zip(BUNDLE, tmp_path)
    dead = []
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if Path(name).suffix not in TEXT_SUFFIXES or name.endswith("/"):
                continue
            for block in re.split(r"\n\s*\n", archive.read(name).decode("utf-8")):
                if "source repository" not in " ".join(
                    block.split()
                ):  # a block that says where the path lives may name it
                    dead += [
                        f"{name}: {match.group(0)!r} in {block[:80]!r}" for match in REPOSITORY_ONLY.finditer(block)
                    ]
    assert not dead, "the release names paths it does not hold:\n" + "\n".join(dead)


def test_bundle_pins_install_on_the_zoo_ci_python():
    python = RECORD["zoo_ci_python"]
    for name, version in bundle_pins().items():
        requires = RECORD["requires_python"][name][version]  # KeyError: a pin with no record, record it
        assert SpecifierSet(requires).contains(
            python
        ), f"{name}=={version} needs Python {requires}, the zoo CI has {python}"


def test_project_requirements_differ_from_the_bundle_pins_only_where_the_zoo_python_forces_it():
    """``requirements.txt`` sets up this repository (Python 3.11); a pin may differ only when the project's version
    cannot install on the zoo CI's Python."""
    project = dict(
        re.findall(r"^([\w-]+)==([\w.]+)", (ROOT / "requirements.txt").read_text(encoding="utf-8"), flags=re.M)
    )
    pins = bundle_pins()
    assert set(project) == set(pins)
    for name, version in project.items():
        if version != pins[name]:
            requires = RECORD["requires_python"][name][version]
            assert not SpecifierSet(requires).contains(RECORD["zoo_ci_python"]), f"{name}: use {version} in metadata"


@pytest.mark.parametrize("path", [p for p in tracked_bundle_files() if p.suffix == ".json"], ids=lambda p: p.name)
def test_json_is_as_pretty_format_json_writes_it(path):
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=4) + "\n"


def test_text_files_end_with_one_newline_and_no_trailing_whitespace():
    bad = []
    for path in tracked_bundle_files():
        if path.suffix not in TEXT_SUFFIXES:
            continue
        data = path.read_bytes()
        if data and (not data.endswith(b"\n") or data.endswith(b"\n\n")):
            bad.append(f"{path}: end of file")
        if b"\r" in data:
            bad.append(f"{path}: CR line ending")
        bad += [
            f"{path}:{i}: trailing whitespace" for i, line in enumerate(data.split(b"\n"), 1) if line != line.rstrip()
        ]
    assert not bad, "\n".join(bad)


def test_docstring_comes_first_and_only_once():
    """``check-docstring-first``: no module-level string after code (a second docstring, an attribute docstring)."""
    bad = []
    for path in tracked_bundle_files() + sorted((ROOT / "tools" / "zoo_ci").glob("*.py")):
        if path.suffix != ".py":
            continue
        body = ast.parse(path.read_text(encoding="utf-8")).body
        for node in body[1:]:
            if (
                isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                bad.append(f"{path}:{node.lineno}")
    assert not bad, "module-level strings after code:\n" + "\n".join(bad)


def test_files_over_the_hooks_size_limit_are_explained_in_the_model_card():
    card = (BUNDLE / "docs" / "README.md").read_text(encoding="utf-8")
    large = [p for p in tracked_bundle_files() if p.stat().st_size > MAX_KB * 1024]
    assert large, "no large file left: drop the model card's explanation"
    for path in large:
        assert f"`{path.relative_to(BUNDLE).as_posix()}`" in card.split("## Model Zoo")[1], path


def test_zoo_torchscript_check_fails_where_the_exclusion_says(tmp_path):
    """The zoo's ``verify_torchscript`` scripts ``network_def`` (no tracing); the windowed attention is not scriptable,
    which is why the bundle is in ``exclude_verify_torchscript_list``. When this test fails, scripting works: drop
    the exclusion."""
    copy = tmp_path / "bundle"
    for folder in ("configs", "scripts"):
        shutil.copytree(BUNDLE / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "models").mkdir()
    shutil.copy(BUNDLE / "models" / "demo_model.pt", copy / "models" / "model.pt")
    command = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", "models/model.ts"]
    command += ["--ckpt_file", "models/model.pt", "--meta_file", "configs/metadata.json"]
    command += ["--config_file", "configs/inference.json", "--bundle_root", str(copy)]
    done = subprocess.run(command, cwd=copy, capture_output=True, encoding="utf-8", errors="replace")
    assert done.returncode != 0 and not (copy / "models" / "model.ts").exists()
    assert "cannot statically infer the expected size of a list" in done.stderr
    assert "rel_pos_attention.py" in done.stderr
    card = (BUNDLE / "docs" / "README.md").read_text(encoding="utf-8").split("## Model Zoo")[1]
    assert "exclude_verify_torchscript_list" in card


@pytest.mark.slow  # 40-90 s on the shared 2-core machine: one training epoch, an evaluation and an inference
def test_zoo_unit_test_hook_runs_on_cpu(tmp_path):
    """``tools/zoo_ci/test_<name>.py`` is the file the bundle's PR adds as ``ci/unit_tests/test_<name>.py``."""
    hook = ROOT / "tools" / "zoo_ci" / f"test_{build_bundle_zip.DEFAULT_NAME}.py"
    env = {**os.environ, "SAMMED3D_ZOO_BUNDLE_ROOT": str(BUNDLE), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("PYTHONPATH", None)
    before = sorted((BUNDLE / "models").iterdir())
    done = subprocess.run(
        [sys.executable, str(hook), "-v"], cwd=tmp_path, env=env, capture_output=True, text=True, encoding="utf-8"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Ran 2 tests" in done.stderr and "OK" in done.stderr
    assert sorted((BUNDLE / "models").iterdir()) == before  # it wrote nothing into the bundle
