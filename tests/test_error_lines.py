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
"""Every command ends a failure with one ``error:`` line, printed once, and exit status 1 (issue 17)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import BUNDLE

INFERENCE = ["-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
BATCH = ["-m", "monai.bundle", "run", "--config_file", "['configs/inference.json','configs/batch_inference.json']"]
TRAIN = ["-m", "monai.bundle", "run", "--config_file", "configs/train.json"]
EVALUATE = ["-m", "monai.bundle", "run", "--config_file", "['configs/train.json','configs/evaluate.json']"]

# (what, arguments after `python` with {out} for a scratch folder, words the one error line must hold)
FAILURES = (
    ("inference, existing output", INFERENCE + ["--output_dir", "{out}"], "exists"),
    (
        "inference, world point outside",
        INFERENCE
        + ["--output_dir", "{out}/w", "--input_dict"]
        + ["{'image': 'sample_data/example_ct.nii.gz', 'points_world': [[80.5, -20.0, 110.0]], 'point_labels': [1]}"],
        "the image spans R -179.5..186.5, A 9.8..312.8, S 92.8..428.8 (RAS mm)",  # its extent in mm
    ),
    (
        "inference, DICOM SEG of a NIfTI",
        INFERENCE + ["--output_dir", "{out}/seg", "--output_format", "dicom_seg"],
        "needs a DICOM series folder as 'image'",
    ),
    (
        "batch",
        BATCH + ["--output_dir", "{out}", "--prompts_file", "{out}/none.json", "--stop_on_error", "True"],
        "none",
    ),
    ("training", TRAIN + ["--output_dir", "{out}", "--data_source", "{out}/no_dataset"], "no_dataset"),
    ("evaluation", EVALUATE + ["--output_dir", "{out}", "--data_source", "{out}/no_dataset"], "no_dataset"),
    ("export", ["-m", "scripts.export", "--ckpt_dir", "{out}/empty", "--out_dir", "{out}"], "download_large_files"),
    ("convert", ["-m", "scripts.networks.checkpoint", "convert", "{out}/x.pth", "{out}/y.pt"], "download_large_files"),
)


@pytest.mark.slow
@pytest.mark.parametrize("what, args, words", FAILURES, ids=[f[0] for f in FAILURES])
def test_a_failure_is_one_error_line_printed_once(tmp_path, what, args, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "example_ct_seg.nii.gz").write_bytes(b"an earlier result")  # what the existing-output case meets
    command = [sys.executable] + [a.replace("{out}", str(tmp_path)) for a in args]
    done = subprocess.run(command, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace")
    log = done.stdout + done.stderr
    errors = [line for line in log.splitlines() if re.search(r"\berror:|terminating due to exception", line, re.I)]
    assert done.returncode == 1, log[-3000:]
    assert len(errors) == 1 and errors[0].startswith("error: "), errors or log[-3000:]
    assert words in errors[0], errors[0]
    assert "Traceback" not in log, log[-3000:]
    if what == "inference, DICOM SEG of a NIfTI":  # refused before any work: nothing written
        assert not (tmp_path / "seg").exists() and "segmented" not in log
    if what == "inference, existing output":  # refused before any work: nothing segmented, nothing written
        assert (tmp_path / "example_ct_seg.nii.gz").read_bytes() == b"an earlier result"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "example_ct_seg.nii.gz"]
        assert "wrote" not in log
