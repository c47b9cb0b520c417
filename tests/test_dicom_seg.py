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
"""DICOM SEG output (``--output_format dicom_seg``): the command line and the batch on a DICOM series of the shipped
CT, read back and compared with the NIfTI label map of the same request; the writer's refusals and its geometry."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from conftest import BUNDLE
from dicom_series import SeriesUIDs, write_ct_series
from monai.data import MetaTensor
from monai.data.utils import orientation_ras_lps
from pydicom.dataset import Dataset

from scripts.inference import DicomSegWriter
from scripts.inference.dicom_seg import ALGORITHM_TYPE, LABEL_NAMES, slice_labels
from scripts.inference.highdicom_compat import LabelMapSegmentation

CT = BUNDLE / "sample_data" / "example_ct.nii.gz"
DEMO_MODEL = BUNDLE / "models" / "demo_model.pt"
# The demo request of inference.json: the demo model's clicks on the right kidney (label 2) and the bladder (21).
OBJECTS = json.loads((BUNDLE / "configs" / "inference.json").read_text(encoding="utf-8"))["input_dict"]["objects"]
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def bundle_run(configs: list[str], out: Path, *args: str) -> subprocess.CompletedProcess:
    """``monai.bundle run`` of ``configs`` from the bundle folder with the demo model, writing into ``out``."""
    files = "[" + ",".join(f"'configs/{c}'" for c in configs) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", files, "--weights", str(DEMO_MODEL)]
    cmd += ["--output_dir", str(out), *args]
    return subprocess.run(cmd, cwd=BUNDLE, capture_output=True, encoding="utf-8", errors="replace", timeout=900)


@dataclass
class Runs:
    """The series, the outputs and the logs of the three runs (done once for this file's tests)."""

    series: dict[str, Path]
    uids: dict[str, SeriesUIDs]
    nifti: Path  # the label map of the demo request on the forward series, default output
    segs: dict[str, Path]  # its DICOM SEG: forward (command line), reversed (batch)
    logs: dict[str, str]
    report: list[dict]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    root = tmp_path_factory.mktemp("dicom_seg")
    series = {"forward": root / "series" / "ct_series", "reversed": root / "batch_in" / "ct_reversed"}
    uids = {case: write_ct_series(CT, folder, reverse=case == "reversed", name=case) for case, folder in series.items()}
    request = repr({"image": str(series["forward"]), "objects": OBJECTS})
    nifti = bundle_run(["inference.json"], root / "nifti", "--input_dict", request)
    seg = bundle_run(["inference.json"], root / "seg", "--input_dict", request, "--output_format", "dicom_seg")
    prompts = root / "prompts.json"
    prompts.write_text(json.dumps({"ct_reversed": {"objects": OBJECTS}}), encoding="utf-8")
    batch_args = ["--input_dir", str(root / "batch_in"), "--prompts_file", str(prompts), "--output_format", "dicom_seg"]
    batch = bundle_run(["inference.json", "batch_inference.json"], root / "batch", *batch_args)
    logs = {"nifti": nifti.stdout + nifti.stderr, "seg": seg.stdout + seg.stderr, "batch": batch.stdout + batch.stderr}
    for name, done in (("nifti", nifti), ("seg", seg), ("batch", batch)):
        assert done.returncode == 0, logs[name][-3000:]
    with open(root / "batch" / "batch_report.csv", newline="", encoding="utf-8") as f:
        report = list(csv.DictReader(f))
    segs = {"forward": root / "seg" / "ct_series_seg.dcm", "reversed": root / "batch" / "ct_reversed_seg.dcm"}
    return Runs(series, uids, root / "nifti" / "ct_series_seg.nii.gz", segs, logs, report)


def test_the_label_map_is_on_the_ct_grid(runs):
    """What the comparisons below rest on: the series' label map lies on the CT's grid, so pixel (row r, column c)
    of slice k (``tests/dicom_series.py``) is voxel (c, r, k) of the label map."""
    label_map, ct = nib.load(runs.nifti), nib.load(CT)
    assert label_map.shape == ct.shape
    np.testing.assert_allclose(label_map.affine, ct.affine, atol=1e-4)


@pytest.mark.parametrize("case", ["forward", "reversed"])
def test_each_segment_is_its_object_in_the_nifti_label_map(runs, case):
    """Frames placed by the slice each references and by its segment number rebuild the label map, voxel for voxel;
    each frame's position is its source slice's."""
    labels = np.asarray(nib.load(runs.nifti).dataobj)
    seg = pydicom.dcmread(runs.segs[case])
    assert [s.SegmentLabel for s in seg.SegmentSequence] == list(OBJECTS)
    assert [s.SegmentNumber for s in seg.SegmentSequence] == [1, 2]
    slice_of = {uid: k for k, uid in enumerate(runs.uids[case].instances)}
    positions = {
        d.SOPInstanceUID: [float(v) for v in d.ImagePositionPatient]
        for d in (pydicom.dcmread(p, stop_before_pixels=True) for p in runs.series[case].iterdir())
    }
    rebuilt = np.zeros((len(OBJECTS),) + labels.shape, dtype=bool)
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    assert len(frames) == len(seg.PerFrameFunctionalGroupsSequence) == seg.NumberOfFrames
    for frame, item in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        number = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(position, positions[source], atol=1e-4)
        k = slice_of[source]
        assert not rebuilt[number - 1, :, :, k].any(), "one frame per segment and slice"
        rebuilt[number - 1, :, :, k] = frame.T.astype(bool)  # rows along j, columns along i
    for number, spec in enumerate(OBJECTS.values()):
        expected = labels == spec["label"]
        assert expected.sum() > 1000, "the demo model finds the object"
        np.testing.assert_array_equal(rebuilt[number], expected)


@pytest.mark.parametrize("case", ["forward", "reversed"])
def test_the_seg_references_its_source_series(runs, case):
    seg = pydicom.dcmread(runs.segs[case])
    uids = runs.uids[case]
    assert seg.SOPClassUID == SEG_STORAGE and seg.Modality == "SEG"
    assert seg.StudyInstanceUID == uids.study and seg.FrameOfReferenceUID == uids.frame_of_reference
    assert seg.SeriesInstanceUID not in (uids.series, runs.uids["forward"].series, runs.uids["reversed"].series)
    (referenced,) = seg.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == uids.series
    assert {i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence} == set(uids.instances)
    assert str(seg.PatientName) == "SAMMED3D^TEST" and seg.PatientID == "SAMMED3D^TEST"
    assert {s.SegmentAlgorithmType for s in seg.SegmentSequence} == {"SEMIAUTOMATIC"}


def test_highdicom_reads_the_segments_back_by_source_slice(runs):
    """highdicom's own reader, asked for the source slices in order, gives the label map's objects."""
    labels = np.asarray(nib.load(runs.nifti).dataobj)
    seg = hd.seg.segread(runs.segs["reversed"])
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=list(runs.uids["reversed"].instances), segment_numbers=[1, 2]
    )  # (slices, rows, columns, segments)
    for number, spec in enumerate(OBJECTS.values()):
        np.testing.assert_array_equal(pixels[..., number].transpose(2, 1, 0).astype(bool), labels == spec["label"])


def test_the_batch_reports_the_case_and_logs_are_clean(runs):
    (row,) = runs.report
    assert row["case"] == "ct_reversed" and row["status"] == "done" and row["objects"] == ";".join(OBJECTS)
    for name, log in runs.logs.items():
        assert "nvImageCodec" not in log, f"the {name} run's log shows MONAI's nvImageCodec notice"
        assert ".partial-" not in log
    assert f"wrote {runs.segs['forward']}: DICOM SEG" in runs.logs["seg"]
    written = sorted(p.name for p in runs.segs["forward"].parent.iterdir())
    assert written == ["ct_series_objects.json", "ct_series_seg.dcm"]


def test_a_nifti_image_with_dicom_seg_output_is_refused_before_any_work(tmp_path):
    done = bundle_run(["inference.json"], tmp_path / "out", "--output_format", "dicom_seg")
    log = done.stdout + done.stderr
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1, log[-3000:]
    assert "needs a DICOM series folder" in errors[0] and "--output_format nifti" in errors[0], errors[0]
    assert "example_ct.nii.gz is not a folder" in errors[0]
    assert "segmented" not in log, "refused before the segmentation"
    assert not (tmp_path / "out").exists(), "nothing written"


def test_an_unknown_output_format_is_one_error_line(tmp_path):
    done = bundle_run(["inference.json"], tmp_path / "out", "--output_format", "dicom")
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and errors == ["error: --output_format 'dicom' is not one of 'nifti', 'dicom_seg'."]


# In-process checks of the writer on a series of the CT and a label map made from its intensities (no network).


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> tuple[Path, SeriesUIDs]:
    folder = tmp_path_factory.mktemp("writer") / "ct"
    return folder, write_ct_series(CT, folder, reverse=True)


def bone(folder: Path) -> MetaTensor:
    """A label map on the series' grid: 3 where the CT is above 300 HU (bone), 0 elsewhere; named ``bone``."""
    ct = nib.load(CT)
    labels = torch.from_numpy((np.asarray(ct.dataobj) > 300).astype(np.uint8) * 3)[None]
    meta = {"filename_or_obj": str(folder), LABEL_NAMES: {3: "bone"}}
    return MetaTensor(labels, affine=torch.as_tensor(ct.affine, dtype=torch.float64), meta=meta)


def test_the_writer_refuses_an_existing_output_unless_overwrite(series, tmp_path):
    folder, _ = series
    image = bone(folder)
    target = tmp_path / "ct_seg.dcm"
    target.write_bytes(b"an earlier result")
    with pytest.raises(FileExistsError, match="pass --overwrite True"):
        DicomSegWriter(tmp_path).check_free(image.meta)
    with pytest.raises(FileExistsError, match="pass --overwrite True"):
        DicomSegWriter(tmp_path)(image)
    assert target.read_bytes() == b"an earlier result"
    DicomSegWriter(tmp_path, overwrite=True)(image)
    seg = pydicom.dcmread(target)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["bone"]
    assert sum(int(f.sum()) for f in seg.pixel_array) == int((image == 3).sum()) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct_seg.dcm"]


def test_a_value_without_a_name_is_its_own_segment_and_class_prompts_are_automatic(series, tmp_path):
    folder, _ = series
    image = bone(folder)
    image[0, :10] = torch.where(image[0, :10] > 0, 5, 0).to(torch.uint8)  # some bone becomes an unnamed value 5
    image.meta[ALGORITHM_TYPE] = "AUTOMATIC"
    DicomSegWriter(tmp_path)(image)
    seg = pydicom.dcmread(tmp_path / "ct_seg.dcm")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["bone", "label 5"]
    assert {s.SegmentAlgorithmType for s in seg.SegmentSequence} == {"AUTOMATIC"}
    voxels = {1: 0, 2: 0}
    for frame, item in zip(seg.pixel_array, seg.PerFrameFunctionalGroupsSequence):
        voxels[item.SegmentIdentificationSequence[0].ReferencedSegmentNumber] += int(frame.sum())
    assert voxels == {1: int((image == 3).sum()), 2: int((image == 5).sum())} and min(voxels.values()) > 0


def test_a_failed_write_leaves_nothing(series, tmp_path, monkeypatch):
    folder, _ = series

    def half_written(self, path, *args, **kwargs):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(LabelMapSegmentation, "save_as", half_written)
    with pytest.raises(OSError, match="disk full"):
        DicomSegWriter(tmp_path / "out")(bone(folder))
    assert list((tmp_path / "out").iterdir()) == []


def test_a_folder_of_two_series_or_no_dicom_is_refused(series, tmp_path):
    folder, _ = series
    mixed = tmp_path / "mixed"
    write_ct_series(CT, mixed / "a", name="a")
    write_ct_series(CT, mixed / "b", name="b")
    for path in (mixed / "a").iterdir():
        path.rename(mixed / f"a_{path.name}")
    for path in list((mixed / "b").iterdir())[:3]:
        path.rename(mixed / f"b_{path.name}")
    (tmp_path / "empty").mkdir()
    writer = DicomSegWriter(tmp_path / "out")
    with pytest.raises(ValueError, match="holds 2 DICOM series"):
        writer.check_free({"filename_or_obj": str(mixed)})
    with pytest.raises(ValueError, match="holds 0 DICOM series"):
        writer.check_free({"filename_or_obj": str(tmp_path / "empty")})
    with pytest.raises(ValueError, match="is not a folder"):
        writer.check_free({"filename_or_obj": str(CT)})


def _slice(lps_affine: np.ndarray, origin: tuple, rows_axis: int, columns_axis: int, sign: int) -> Dataset:
    """The header of a slice whose first pixel is voxel ``origin``, whose rows step along ``rows_axis`` (by
    ``sign``) and whose columns step along ``columns_axis``."""
    row_step = sign * lps_affine[:3, rows_axis]
    column_step = lps_affine[:3, columns_axis]
    ds = Dataset()
    ds.ImagePositionPatient = list(lps_affine[:3] @ np.array([*origin, 1.0]))
    ds.ImageOrientationPatient = [*(column_step / np.linalg.norm(column_step)), *(row_step / np.linalg.norm(row_step))]
    ds.PixelSpacing = [float(np.linalg.norm(row_step)), float(np.linalg.norm(column_step))]
    return ds


def test_slice_labels_follow_the_geometry_in_any_direction():
    """Sagittal slices (along the label map's first axis) of an oblique, anisotropic grid, rows running against the
    third axis: each pixel gets its voxel's label; a slice off the grid by half a voxel, or beyond it, is refused."""
    labels = np.random.RandomState(0).randint(0, 5, size=(6, 7, 8)).astype(np.uint8)
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    ras = np.eye(4)
    ras[:3, :3] = rotation @ np.diag([0.8, 1.1, 2.5])
    ras[:3, 3] = [-40.0, 12.5, 90.0]
    lps = orientation_ras_lps(ras)
    for i in range(labels.shape[0]):
        ds = _slice(lps, (i, 0, labels.shape[2] - 1), rows_axis=2, columns_axis=1, sign=-1)
        ds.Rows, ds.Columns = labels.shape[2], labels.shape[1]
        np.testing.assert_array_equal(slice_labels(ds, labels, lps), labels[i, :, ::-1].T)
    shifted = _slice(lps, (2.5, 0, labels.shape[2] - 1), rows_axis=2, columns_axis=1, sign=-1)
    shifted.Rows, shifted.Columns = labels.shape[2], labels.shape[1]
    with pytest.raises(ValueError, match="0.50 voxel off the voxel centres"):
        slice_labels(shifted, labels, lps)
    beyond = _slice(lps, (2, 1, labels.shape[2] - 1), rows_axis=2, columns_axis=1, sign=-1)
    beyond.Rows, beyond.Columns = labels.shape[2], labels.shape[1]
    with pytest.raises(ValueError, match="partly outside"):
        slice_labels(beyond, labels, lps)
