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
"""The Model Zoo's checks, offline: required files, metadata schema, network in/out, workflow properties."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import BUNDLE, DATA
from monai.bundle import ConfigWorkflow

REQUIRED = ["LICENSE", "configs/metadata.json", "configs/inference.json", "configs/logging.conf", "large_files.yml"]


@pytest.mark.parametrize("path", REQUIRED)
def test_required_files_exist(path):
    assert (BUNDLE / path).is_file()


def test_bundle_license_is_apache():
    assert "Apache License" in (BUNDLE / "LICENSE").read_text(encoding="utf-8").splitlines()[1]


def run_bundle_command(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args],
        cwd=BUNDLE,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
    )


def test_metadata_verifies_against_the_schema(tmp_path):
    schema = tmp_path / "schema.json"
    shutil.copy(DATA / "meta_schema_20240725.json", schema)
    done = run_bundle_command(
        tmp_path, "verify_metadata", "--meta_file", "configs/metadata.json", "--filepath", str(schema)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "metadata is verified with no error" in done.stdout + done.stderr


def test_network_in_out_matches_metadata(tmp_path):
    done = run_bundle_command(
        tmp_path,
        "verify_net_in_out",
        "network_def",
        "--meta_file",
        "configs/metadata.json",
        "--config_file",
        "configs/inference.json",
        "--device",
        "cpu",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "data shape of network is verified with no error" in done.stdout + done.stderr


def test_inference_workflow_properties_and_run(tmp_path):
    workflow = ConfigWorkflow(
        workflow_type="infer",
        config_file=str(BUNDLE / "configs" / "inference.json"),
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=str(BUNDLE / "configs" / "logging.conf"),
        bundle_root=str(BUNDLE),
        output_dir=str(tmp_path),
        untrained=True,
    )
    workflow.initialize()
    assert workflow.check_properties() == []
    workflow.run()
    workflow.finalize()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["example_ct_objects.json", "example_ct_seg.nii.gz"]
