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
"""The bundle's unit test for the Model Zoo's CI: ``ci/unit_tests/test_sam_med3d_interactive_ct_mri.py``.

The zoo's ``ci/unit_tests/runner.py -b sam_med3d_interactive_ct_mri`` runs it from the zoo's root on whatever device
is there (CPU included). Each workflow of the bundle runs once on small synthetic volumes written in ``setUp``:
``train.json`` for one epoch of a tiny network, ``train.json`` + ``evaluate.json`` on the trained checkpoint, and
``inference.json`` with a click on the weights the bundle finds in ``models/`` (the downloaded ``model.pt``). Every
output goes to a temporary folder, never into the bundle. ``SAMMED3D_ZOO_BUNDLE_ROOT`` points it at another copy.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import unittest

import nibabel as nib
import numpy as np
from monai.bundle import ConfigWorkflow

# Where the zoo keeps the bundle, relative to the zoo's root (the runner's working folder).
BUNDLE_ROOT = os.environ.get("SAMMED3D_ZOO_BUNDLE_ROOT", "models/sam_med3d_interactive_ct_mri")
# A tiny network (the bundle's size ids), so that a training epoch takes seconds on a CPU.
TINY_NET = {
    "encoder_embed_dim": 24,
    "encoder_depth": 2,
    "encoder_num_heads": 2,
    "encoder_global_attn_indexes": [1],
    "prompt_embed_dim": 24,
    "decoder_num_heads": 2,
    "decoder_mlp_dim": 48,
}
# Synthetic cases: shape and spacing (mm) of each volume; the second is not isotropic.
CASES = (((48, 40, 32), (2.0, 2.0, 2.0)), ((40, 44, 24), (1.5, 1.5, 3.0)))


def write_case(folder: str, index: int, shape: tuple[int, ...], spacing: tuple[float, ...]) -> dict[str, str]:
    """A noisy volume with two boxes (labels 1 and 2) and its label map, as NIfTI files.

    Args:
        folder: where the files go.
        index: the case number (seeds the noise, names the files).
        shape: the volume's shape.
        spacing: voxel sizes in mm.
    """
    rng = np.random.default_rng(index)
    label = np.zeros(shape, dtype=np.uint8)
    centre = [s // 2 for s in shape]
    label[centre[0] - 10 : centre[0], centre[1] - 8 : centre[1] + 8, centre[2] - 6 : centre[2] + 6] = 1
    label[centre[0] + 2 : centre[0] + 12, centre[1] - 6 : centre[1] + 6, centre[2] - 4 : centre[2] + 4] = 2
    image = (rng.normal(0.0, 20.0, shape) + 300.0 * (label == 1) + 150.0 * (label == 2)).astype(np.float32)
    affine = np.diag([*spacing, 1.0])
    paths = {
        "image": os.path.join(folder, f"image_{index}.nii.gz"),
        "label": os.path.join(folder, f"label_{index}.nii.gz"),
    }
    nib.save(nib.Nifti1Image(image, affine), paths["image"])
    nib.save(nib.Nifti1Image(label, affine), paths["label"])
    return paths


def workflow(workflow_type: str, config_files: list[str], **override) -> ConfigWorkflow:
    """A bundle workflow with the zoo's logging and metadata files.

    Args:
        workflow_type: ``train`` or ``infer``.
        config_files: file names under ``configs/``.
        override: config ids to override.
    """
    configs = os.path.join(BUNDLE_ROOT, "configs")
    return ConfigWorkflow(
        workflow_type=workflow_type,
        config_file=[os.path.join(configs, name) for name in config_files],
        logging_file=os.path.join(configs, "logging.conf"),
        meta_file=os.path.join(configs, "metadata.json"),
        bundle_root=BUNDLE_ROOT,
        **override,
    )


def check_workflow(engine: ConfigWorkflow) -> None:
    """Initialise, check the workflow's required properties, run and finalise (the zoo's ``check_workflow``)."""
    engine.initialize()
    missing = engine.check_properties()
    if missing:
        raise ValueError(f"check properties for workflow failed: {missing}")
    engine.run()
    engine.finalize()


class TestSAMMed3DInteractive(unittest.TestCase):
    """Train, evaluate and infer once each, on CPU or GPU."""

    def setUp(self) -> None:
        sys.path.insert(0, BUNDLE_ROOT)
        self.work = tempfile.mkdtemp()
        self.cases = [write_case(self.work, i, shape, spacing) for i, (shape, spacing) in enumerate(CASES)]
        self.common = {"output_dir": os.path.join(self.work, "eval"), "num_workers": 0, "cpu_threads": 2}

    def tearDown(self) -> None:
        shutil.rmtree(self.work)

    def train_tiny(self) -> str:
        """One epoch of the tiny network on both cases; returns its ``model.pt``."""
        ckpt_dir = os.path.join(self.work, "models")
        override = {**TINY_NET, **self.common, "ckpt_dir": ckpt_dir, "data_source": self.cases}
        override.update(class_ids=[1, 2], epochs=1, num_rounds=2, val_num_clicks=2, val_fraction=0.5, log_interval=1)
        check_workflow(workflow("train", ["train.json"], **override))
        return os.path.join(ckpt_dir, "model.pt")

    def test_train_then_evaluate(self) -> None:
        checkpoint = self.train_tiny()
        self.assertTrue(os.path.isfile(checkpoint), "training wrote no model.pt")
        override = {**self.common, "ckpt_dir": os.path.join(self.work, "models"), "data_source": self.cases}
        override.update(eval_checkpoint=checkpoint, class_ids=[1, 2], num_clicks=2, report_prefix="zoo")
        check_workflow(workflow("train", ["train.json", "evaluate.json"], **override))
        reports = [name for name in os.listdir(override["output_dir"]) if name.startswith("zoo")]
        self.assertTrue(reports, "evaluation wrote no report")

    def test_infer_click(self) -> None:
        case = self.cases[0]
        override = {**self.common, "max_windows": 1}
        override["input_dict"] = {"image": case["image"], "points": [[19, 20, 16]], "point_labels": [1]}
        check_workflow(workflow("infer", ["inference.json"], **override))
        written = os.path.join(override["output_dir"], "image_0_seg.nii.gz")
        mask = nib.load(written)
        self.assertEqual(mask.shape, nib.load(case["image"]).shape)
        np.testing.assert_allclose(mask.affine, nib.load(case["image"]).affine, atol=1e-5)
        with open(os.path.join(override["output_dir"], "image_0_objects.json"), encoding="utf-8") as report:
            objects = json.load(report)
        self.assertTrue(objects, "inference wrote no object report")


if __name__ == "__main__":
    unittest.main()
