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
"""``python -m monai.bundle run --config_file configs/inference.json`` as a user runs it, good and bad requests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from conftest import BUNDLE, DATA

DEMO = BUNDLE / "sample_data" / "example_ct.nii.gz"


def run_inference(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
    cmd += ["--output_dir", str(tmp_path / "out"), *overrides]
    return subprocess.run(cmd, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace")


def last_line(done: subprocess.CompletedProcess) -> str:
    """Bad input ends the run with one line: ``error: <what is wrong and what to do>``."""
    return done.stderr.strip().splitlines()[-1]


def outputs(tmp_path, pattern: str = "*") -> list:
    return sorted((tmp_path / "out").glob(pattern)) if (tmp_path / "out").exists() else []


def test_demo_request_writes_a_label_map_on_the_original_grid(tmp_path):
    done = run_inference(tmp_path, "--untrained", "True")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "UNTRAINED" in done.stdout + done.stderr
    written = outputs(tmp_path)
    assert [p.name for p in written] == ["example_ct_objects.json", "example_ct_seg.nii.gz"]
    demo, seg = nib.load(DEMO), nib.load(written[1])
    report = json.loads(written[0].read_text(encoding="utf-8"))["objects"]
    assert [(o["name"], o["label"]) for o in report] == [("kidney_right", 2), ("urinary_bladder", 21)]
    labels = np.asarray(seg.dataobj)
    # the later object is painted over the earlier one where they overlap
    assert report[1]["voxels"] == int((labels == 21).sum()) and report[0]["voxels"] >= int((labels == 2).sum())
    assert all(1 <= o["windows"] <= 8 and isinstance(o["iou"], float) for o in report)
    assert seg.shape == demo.shape and seg.get_data_dtype() == np.uint8
    np.testing.assert_allclose(seg.affine, demo.affine, atol=1e-5)
    assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 2, 21}

    again = run_inference(tmp_path, "--untrained", "True")
    assert again.returncode != 0 and "exists; remove it or pass --overwrite True" in last_line(again)
    assert run_inference(tmp_path, "--untrained", "True", "--overwrite", "True").returncode == 0


def test_missing_weights_say_how_to_get_them(tmp_path):
    (tmp_path / "models").mkdir()
    done = run_inference(tmp_path, "--ckpt_dir", str(tmp_path / "models"))
    assert done.returncode != 0
    assert last_line(done).startswith("error: no weights in") and "download_large_files" in last_line(done)
    assert outputs(tmp_path) == []


def write_text(path) -> str:
    path.write_text("not an image", encoding="utf-8")
    return str(path)


def write_nifti(path, shape) -> str:
    nib.save(nib.Nifti1Image(np.zeros(shape, dtype=np.float32), np.eye(4)), str(path))
    return str(path)


@pytest.mark.parametrize(
    "make_image, message",
    [
        (lambda d: str(d / "absent.nii.gz"), "absent.nii.gz"),
        (lambda d: write_text(d / "bad.nii.gz"), "bad.nii.gz is not a gzip file"),
        (lambda d: write_nifti(d / "flat.nii.gz", (32, 32)), "expected a one-channel 3-D image"),
        (lambda d: write_nifti(d / "series.nii.gz", (16, 16, 16, 3)), "expected a one-channel 3-D image"),
    ],
    ids=["missing", "unreadable", "2d", "4d"],
)
def test_bad_images_fail_without_output(tmp_path, make_image, message):
    image = make_image(tmp_path)
    request = f"{{'image': '{image}', 'points': [[5, 5, 5]], 'point_labels': [1]}}"
    done = run_inference(tmp_path, "--untrained", "True", "--input_dict", request)
    assert done.returncode != 0
    assert last_line(done).startswith("error: ") and message in last_line(done)
    assert outputs(tmp_path) == []


def test_click_outside_the_image_fails_without_output(tmp_path):
    request = f"{{'image': '{DEMO}', 'points': [[5, 5, 500]], 'point_labels': [1]}}"
    done = run_inference(tmp_path, "--untrained", "True", "--input_dict", request)
    assert done.returncode != 0
    assert last_line(done).startswith("error: object 'object': click [5.0, 5.0, 500.0] (voxel indices) lies outside")
    assert last_line(done).endswith("along each axis of the image's shape (122, 101, 112).")
    assert outputs(tmp_path) == []


def test_simulation_mode_reports_dice_per_click(tmp_path):
    seg = BUNDLE / "sample_data" / "example_seg_fast_force_split.nii.gz"
    request = f"{{'image': '{DEMO}', 'label': '{seg}', 'classes': [2], 'num_clicks': 2}}"
    done = run_inference(tmp_path, "--untrained", "True", "--input_dict", request)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "example_ct_clicks.json").read_text(encoding="utf-8"))
    clicks = report["classes"]["2"]
    assert [c["click"] for c in clicks] == [1, 2] and clicks[0]["point_label"] == 1
    assert all(0.0 <= c["dice"] <= 1.0 for c in clicks)
    truth = np.asarray(nib.load(seg).dataobj)
    first = np.round(clicks[0]["point"]).astype(int)
    assert truth[tuple(first)] == 2, "the first simulated click lies on the target"


def test_simulation_of_an_absent_class_fails_without_output(tmp_path):
    seg = BUNDLE / "sample_data" / "example_seg_fast_force_split.nii.gz"
    request = f"{{'image': '{DEMO}', 'label': '{seg}', 'classes': [250]}}"
    done = run_inference(tmp_path, "--untrained", "True", "--input_dict", request)
    assert done.returncode != 0 and "error: class 250 is absent from the label" in last_line(done)
    assert outputs(tmp_path) == []


def test_batch_inference_overlay_segments_a_folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("example_ct_sm.nii.gz", "example_mr_sm.nii.gz"):
        shutil.copy(DATA / "totalsegmentator" / name, images / name)
    prompts = {
        "example_ct_sm.nii.gz": {"points": [[77, 35, 13]], "point_labels": [1]},
        "example_mr_sm.nii.gz": {"objects": {"liver": {"points": [[40, 30, 10]], "point_labels": [1], "label": 5}}},
    }
    (tmp_path / "prompts.json").write_text(json.dumps(prompts), encoding="utf-8")
    overlay = "['configs/inference.json','configs/batch_inference.json']"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", overlay, "--untrained", "True"]
    cmd += ["--input_dir", str(images), "--prompts_file", str(tmp_path / "prompts.json")]
    cmd += ["--output_dir", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace")
    assert done.returncode == 0, done.stderr[-2000:]
    names = [p.name for p in outputs(tmp_path)]
    assert names == [
        "batch_failures.csv",
        "batch_report.csv",
        "example_ct_sm_objects.json",
        "example_ct_sm_seg.nii.gz",
        "example_mr_sm_objects.json",
        "example_mr_sm_seg.nii.gz",
    ]
    for name in ("example_ct_sm", "example_mr_sm"):
        assert nib.load(tmp_path / "out" / f"{name}_seg.nii.gz").shape == nib.load(images / f"{name}.nii.gz").shape

    prompts["absent.nii.gz"] = prompts.pop("example_ct_sm.nii.gz")
    (tmp_path / "prompts.json").write_text(json.dumps(prompts), encoding="utf-8")
    shutil.rmtree(tmp_path / "out")
    strict = cmd + ["--stop_on_error", "True"]  # fail fast: the bad entry stops the batch before anything is read
    done = subprocess.run(strict, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace")
    assert done.returncode != 0 and "names absent.nii.gz, which is not in" in last_line(done)
    assert outputs(tmp_path) == []


def test_main_job_uses_the_demo_model_when_the_released_weights_are_absent(tmp_path):
    """README's main command: without official weights the shipped demo model is found, labelled and used."""
    assert (BUNDLE / "models" / "demo_model.pt").is_file()
    done = run_inference(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "DEMO model" in done.stdout + done.stderr
    seg = np.asarray(nib.load(tmp_path / "out" / "example_ct_seg.nii.gz").dataobj)
    truth = np.asarray(nib.load(BUNDLE / "sample_data" / "example_seg_fast_force_split.nii.gz").dataobj)
    for label in (2, 21):  # the demo target (docs/demo_model.md): right kidney and bladder, Dice >= 0.8 each
        predicted, target = seg == label, truth == label
        assert 2 * (predicted & target).sum() / (predicted.sum() + target.sum()) >= 0.8, label


def write_dicom_series(nifti: str, folder) -> None:
    """Write ``nifti`` as a CT DICOM series (one file per slice, with positions, orientation and spacing) via ITK."""
    import itk

    image = itk.imread(str(nifti), itk.SS)
    voxels = itk.array_from_image(image)  # (slices, rows, columns)
    spacing, origin = np.array(image.GetSpacing()), np.array(image.GetOrigin())
    direction = itk.array_from_matrix(image.GetDirection())
    folder.mkdir()
    for z in range(voxels.shape[0]):
        slice_image = itk.image_from_array(np.ascontiguousarray(voxels[z : z + 1]))
        position = origin + direction @ (np.array([0.0, 0.0, z]) * spacing)
        slice_image.SetOrigin(position.tolist())
        slice_image.SetSpacing(spacing.tolist())
        slice_image.SetDirection(image.GetDirection())
        tags = slice_image.GetMetaDataDictionary()  # GDCMImageIO writes these tags
        for key, value in {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",  # CT image storage
            "0008|0018": f"1.2.826.0.1.3680043.2.1125.3.{z + 1}",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.2",  # one series for all slices
            "0020|0013": str(z + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in position),
            "0020|0037": "\\".join(f"{v:.6f}" for v in np.concatenate([direction[:, 0], direction[:, 1]])),
            "0028|0030": f"{spacing[1]:.6f}\\{spacing[0]:.6f}",
            "0018|0050": f"{spacing[2]:.6f}",
            "0028|1052": "0",
            "0028|1053": "1",
        }.items():
            tags[key] = value
        io = itk.GDCMImageIO.New()
        io.KeepOriginalUIDOn()
        itk.imwrite(slice_image, str(folder / f"slice{z:04d}.dcm"), imageio=io)


def test_a_dicom_series_folder_gives_the_nifti_result(tmp_path):
    """The same CT as a DICOM series folder and as NIfTI: the same label map on the same grid, voxel for voxel."""
    nifti = DATA / "totalsegmentator" / "example_ct_sm.nii.gz"
    series = tmp_path / "ct_series"
    write_dicom_series(nifti, series)
    truth = np.asarray(nib.load(DATA / "totalsegmentator" / "example_seg.nii.gz").dataobj)
    voxels = np.argwhere(truth == 2)  # right kidney: click its voxel nearest to the centroid
    click = voxels[np.argmin(((voxels - voxels.mean(0)) ** 2).sum(1))].tolist()
    results = {}
    for name, image in (("nifti", nifti), ("dicom", series)):
        request = {"image": str(image), "points": [click], "point_labels": [1], "label": 2}
        done = run_inference(tmp_path / name, "--input_dict", repr(request))
        assert done.returncode == 0, done.stderr[-2000:]
        (written,) = outputs(tmp_path / name, "*_seg.nii.gz")
        results[name] = nib.load(written)
    assert results["dicom"].shape == results["nifti"].shape == truth.shape
    np.testing.assert_allclose(results["dicom"].affine, results["nifti"].affine, atol=1e-4)
    dicom, reference = (np.asarray(results[k].dataobj) for k in ("dicom", "nifti"))
    assert (reference == 2).sum() > 0 and np.array_equal(dicom, reference)


@pytest.mark.parametrize(
    "request_text, message",
    [
        (f"{{'image': '{DEMO}', 'label': 2}}", "'label' is 2: at the top level it is the ground-truth label image"),
        (
            f"{{'image': '{DEMO}', 'label': '{DEMO}', 'points': [[5, 5, 5]], 'point_labels': [1]}}",
            "both a ground-truth 'label' image (simulation mode",
        ),
        ("{'image': 3, 'points': [[5, 5, 5]], 'point_labels': [1]}", "'image' must be the path of an image file"),
    ],
    ids=["label-value-without-clicks", "clicks-and-label-file", "image-not-a-path"],
)
def test_ambiguous_requests_fail_without_output(tmp_path, request_text, message):
    done = run_inference(tmp_path, "--untrained", "True", "--input_dict", request_text)
    assert done.returncode != 0
    assert last_line(done).startswith("error: ") and message in last_line(done), last_line(done)
    assert outputs(tmp_path) == []


def test_a_top_level_label_value_names_the_object(tmp_path):
    """``label`` next to top-level clicks is the object's output value, as under ``objects``."""
    request = f"{{'image': '{DEMO}', 'points': [[86, 43, 74]], 'point_labels': [1], 'label': 7}}"
    done = run_inference(tmp_path, "--input_dict", request)
    assert done.returncode == 0, done.stderr[-2000:]
    (written,) = outputs(tmp_path, "*_seg.nii.gz")
    assert set(np.unique(np.asarray(nib.load(written).dataobj))) == {0, 7}
