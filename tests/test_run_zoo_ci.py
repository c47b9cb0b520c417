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
"""The pieces of ``tools/run_zoo_ci.py`` that need no zoo snapshot: the PR edits, the pip stand-in, the local
``origin``, and how outcomes are read from the zoo's output."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import run_zoo_ci  # noqa: E402

CUSTOM_DATA = """exclude_verify_shape_list = [
    "mednist_gan",
    "maisi_ct_generative",
]

exclude_verify_preferred_files_list = ["pediatric_abdominal_ct_segmentation", "maisi_ct_generative"]

exclude_empty_list = []
"""


def _lists(source: str) -> dict[str, list[str]]:
    tree = ast.parse(source)
    return {n.targets[0].id: [e.value for e in n.value.elts] for n in tree.body if isinstance(n, ast.Assign)}


@pytest.mark.parametrize(
    "list_name", ["exclude_verify_shape_list", "exclude_verify_preferred_files_list", "exclude_empty_list"]
)
def test_custom_list_entry_is_added_once_and_the_file_still_parses(tmp_path, list_name):
    path = tmp_path / "bundle_custom_data.py"
    path.write_text(CUSTOM_DATA, encoding="utf-8")
    run_zoo_ci.add_to_custom_list(path, list_name, "sam_med3d_x")
    run_zoo_ci.add_to_custom_list(path, list_name, "sam_med3d_x")  # a second call changes nothing
    lists, before = _lists(path.read_text(encoding="utf-8")), _lists(CUSTOM_DATA)
    assert lists[list_name] == before[list_name] + ["sam_med3d_x"]
    assert all(lists[k] == before[k] for k in before if k != list_name)


def test_custom_list_that_does_not_exist_is_refused(tmp_path):
    path = tmp_path / "bundle_custom_data.py"
    path.write_text(CUSTOM_DATA, encoding="utf-8")
    with pytest.raises(ValueError, match="no list"):
        run_zoo_ci.add_to_custom_list(path, "exclude_verify_nothing_list", "x")


def test_pip_stand_in_fails_on_unmet_bundle_pins_and_only_reports_the_zoos(tmp_path, capsys):
    have = importlib.metadata.version("numpy")
    bundle_pins = tmp_path / "requirements_sam_med3d.txt"
    bundle_pins.write_text(f"numpy=={have}\n", encoding="utf-8")
    assert run_zoo_ci.pip_stand_in(["install", "--pre", "-r", str(bundle_pins)]) == 0
    bundle_pins.write_text(f"numpy=={have}\nnumpy==0.0.1\nno-such-distribution-xyz==1.0\n", encoding="utf-8")
    assert run_zoo_ci.pip_stand_in(["install", "-r", str(bundle_pins)]) == 1
    zoo_requirements = tmp_path / "requirements-dev.txt"
    zoo_requirements.write_text('no-such-distribution-xyz>=1\nother; platform_system == "Nowhere"\n', encoding="utf-8")
    assert run_zoo_ci.pip_stand_in(["install", "-r", str(zoo_requirements)]) == 0
    assert run_zoo_ci.pip_stand_in(["install", "--upgrade", "pip", "wheel"]) == 0
    out = capsys.readouterr().out
    assert "NOT MET numpy==0.0.1" in out and "no-such-distribution-xyz==1.0 (not installed)" in out
    assert "other" not in out.split("requirements-dev.txt")[-1].split("not met:")[-1]  # its marker is false here


def test_local_origin_has_dev_at_the_snapshot_commit(tmp_path):
    zoo = tmp_path / "zoo"
    (zoo / "ci").mkdir(parents=True)
    (zoo / "ci" / "verify_bundle.py").write_text("print('x')\n", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    clone, commit = run_zoo_ci.prepare_zoo(zoo, None, work)  # a plain folder: committed as it is
    assert (clone / "ci" / "verify_bundle.py").is_file()
    fetched = subprocess.run(
        ["git", "fetch", "origin", "dev"], cwd=clone, capture_output=True, text=True, encoding="utf-8"
    )
    assert fetched.returncode == 0, fetched.stderr
    assert run_zoo_ci.git("rev-parse", "origin/dev", cwd=clone).strip() == commit


def test_pr_files_leave_out_downloads_caches_and_outputs(tmp_path):
    bundle = tmp_path / "b"
    for name in ("configs/metadata.json", "LICENSE", "models/model.pt", "eval/x.json", "scripts/__pycache__/a.pyc"):
        (bundle / name).parent.mkdir(parents=True, exist_ok=True)
        (bundle / name).write_text("{}", encoding="utf-8")
    (bundle / "large_files.yml").write_text(
        'large_files:\n  - path: "models/model.pt"\n    url: "file:///x"\n', encoding="utf-8"
    )
    found, entries = run_zoo_ci.read_large_files(bundle)
    assert found == bundle / "large_files.yml" and entries[0]["path"] == "models/model.pt"
    files = [p.as_posix() for p in run_zoo_ci.pr_files(bundle, [e["path"] for e in entries])]
    assert files == ["LICENSE", "configs/metadata.json", "large_files.yml"]


def test_outcome_lines_name_the_error():
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\n    raise ValueError("y")\n'
    assert run_zoo_ci.python_error(traceback + "ValueError: necessary file models/model.pt is not existing.\n") == (
        "ValueError: necessary file models/model.pt is not existing."
    )
    scripted = traceback + "RuntimeError: \ncannot statically infer the expected size of a list in this context:\n"
    assert run_zoo_ci.python_error(scripted) == (
        "RuntimeError: cannot statically infer the expected size of a list in this context:"
    )
    hooks = (
        "check docstring is first.......Failed\n- hook id: check-docstring-first\n- exit code: 1\n\n"
        "a.py:25: Multiple module docstrings (first docstring on line 11).\nb.py:9: Multiple module docstrings\n"
        "fix end of files.........Passed\n"
    )
    assert run_zoo_ci.pre_commit_findings(hooks) == (
        "a.py:25: Multiple module docstrings (first docstring on line 11). (+1 more)"
    )
    assert run_zoo_ci.requires_python(
        "numpy==2.4.6",
        "ERROR: Ignored: 2.4.5 Requires-Python >=3.11; 2.4.6 " "Requires-Python >=3.11; 2.5.0 Requires-Python >=3.12\n",
    ) == ("Requires-Python >=3.11")
