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
"""README's MONAI Label install, as a new user makes it: complete, offline, and leaving nothing behind.

The install is README's own commands run in a fresh copy with a venv of its own (``app_install.py``): nothing of the
test environment is in it, so a package the server needs and ``requirements-monailabel.txt`` lacks fails here.
"""

from __future__ import annotations

import json
import re
import subprocess

import nibabel as nib
import numpy as np
import pytest
import requests
from app_install import Server
from conftest import BUNDLE, ROOT

# What the --no-deps install leaves out on purpose (requirements-monailabel.txt says why); `pip check` may name these.
SKIPPED = {"torchvision", "sam2", "mlflow", "openslide-python", "numpymaxflow", "einops", "expiringdict", "ninja"}
# Pins of other packages that pip check may find unmet (pydicom-seg's, whose code path the app does not use).
LOOSE = {"pydicom-seg"}
# README's main job's right-kidney click (inference.json).
KIDNEY = [86, 43, 74]


def _pins(path) -> dict[str, str]:
    text = (ROOT / path).read_text(encoding="utf-8")
    return {name.lower(): version for name, version in re.findall(r"^([\w.-]+)==([\w.]+)", text, flags=re.M)}


def test_readme_install_keeps_the_runtime_pins_and_misses_only_what_the_app_does_not_use(app_install):
    listed = subprocess.run(
        [str(app_install.python), "-m", "pip", "list", "--format", "freeze"],
        capture_output=True,
        encoding="utf-8",
        check=True,
    ).stdout
    # versions without a local label: torch's +cpu build is the 2.13.0 README asks for
    installed = {
        n.lower().replace("_", "-"): v.split("+")[0]
        for n, v in re.findall(r"^([\w.-]+)==([\w.+]+)", listed, flags=re.M)
    }
    for name, version in {**_pins("requirements.txt"), **_pins("requirements-monailabel.txt")}.items():
        name = name.replace("_", "-")
        assert installed.get(name) == version, f"{name}: {installed.get(name)} instead of {version}"
    assert "torchvision" not in installed
    checked = subprocess.run(
        [str(app_install.python), "-m", "pip", "check"], capture_output=True, encoding="utf-8"
    ).stdout.splitlines()
    unmet = []
    for line in checked:
        missing = re.match(r"(\S+) \S+ requires (\S+?)[,;]? which is not installed", line)
        if missing and missing.group(2).lower() in SKIPPED:
            continue
        if re.match(r"(\S+) \S+ has requirement", line) and line.split()[0].lower() in LOOSE:
            continue
        unmet.append(line)
    assert not unmet, "the install misses packages:\n" + "\n".join(unmet)


def _kidney_click(server: Server, image_id: str) -> np.ndarray:
    params = {"foreground": [KIDNEY], "background": [], "label": "kidney_right"}
    answer = requests.post(
        f"{server.url}/infer/sam_med3d",
        params={"image": image_id, "output": "image"},
        data={"params": json.dumps(params)},
        timeout=300,
    )
    assert answer.status_code == 200, answer.text
    path = server.log.parent / f"{server.log.stem}_answer.nii.gz"
    path.write_bytes(answer.content)
    return np.asarray(nib.load(path).dataobj) > 0


@pytest.mark.parametrize("source", ["nifti_folder", "dicomweb"])
def test_readme_server_starts_offline_answers_a_click_and_leaves_no_temp_files(source, app_install, orthanc, tmp_path):
    """README's start command, offline (a dead proxy for all but 127.0.0.1): up, a click on the right kidney answered
    with the command line's mask (the demo series holds the same voxels on the same grid), nothing left in its temp
    folder once stopped."""
    if source == "nifti_folder":
        studies = tmp_path / "studies"
        studies.mkdir()
        (studies / "example_ct.nii.gz").write_bytes((BUNDLE / "sample_data" / "example_ct.nii.gz").read_bytes())
        image_id = "example_ct"
    else:
        studies, image_id = orthanc.dicomweb, orthanc.series_uid
    server = Server(app_install, studies, tmp_path / "server.log")
    try:
        server.wait_up()
        mask = _kidney_click(server, image_id)
    finally:
        server.stop()
    log = server.output()
    assert "warmed up" in log and "Traceback" not in log, log[-3000:]
    assert server.leftovers() == [], f"the server left {server.leftovers()} in its temp folder"
    # README's first command ran the main job in the install: its label map holds the command line's right kidney
    main_job = np.asarray(nib.load(app_install.root / "bundle" / "eval" / "example_ct_seg.nii.gz").dataobj)
    assert (main_job == 2).sum() > 100
    np.testing.assert_array_equal(mask, main_job == 2)
