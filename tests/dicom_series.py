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
"""A complete DICOM CT series made from a NIfTI volume with pydicom (what a PACS or a DICOMweb store holds).

Every slice file carries what viewers (OHIF), DICOMweb stores (Orthanc) and DICOM SEG writers (highdicom, dcmqi) read:
patient, study, series and frame-of-reference identifiers, the slice's position and orientation in LPS, spacing and
int16 pixels with a rescale. Pixel ``(row r, column c)`` of slice ``k`` is voxel ``(i=c, j=r, k)`` of the NIfTI, so the
series' grid is the volume's grid; ``reverse=True`` numbers and names the files against ``k`` (instance 1 is the last
slice), as scanners that store slices head first do.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

__all__ = ["SeriesUIDs", "write_ct_series"]

_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class SeriesUIDs:
    """The identifiers of a written series.

    Args:
        study: StudyInstanceUID.
        series: SeriesInstanceUID.
        frame_of_reference: FrameOfReferenceUID.
        instances: SOPInstanceUID per slice ``k`` of the volume.
    """

    study: str
    series: str
    frame_of_reference: str
    instances: tuple[str, ...]


def _uid(name: str, kind: str) -> str:
    return generate_uid(entropy_srcs=["sam-med3d-tests", name, kind])  # the same file gives the same UIDs


def _ds(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def write_ct_series(
    nifti: str | Path,
    folder: str | Path,
    reverse: bool = False,
    name: str | None = None,
    patient: str = "SAMMED3D^TEST",
) -> SeriesUIDs:
    """Write ``nifti`` as a CT series, one file per slice ``k``, into ``folder`` (created).

    Args:
        nifti: a 3-D NIfTI image (its voxels are rounded to int16).
        folder: where the slice files go (must not exist, or be empty).
        reverse: number instances and files from the last slice to the first.
        name: what the UIDs derive from (default: the file's name); the same name gives the same UIDs.
        patient: PatientName, also the PatientID.

    Returns:
        The series' identifiers.
    """
    image = nib.load(str(nifti))
    voxels = np.rint(np.asarray(image.dataobj, dtype=np.float64)).clip(-32768, 32767).astype(np.int16)
    if voxels.ndim != 3:
        raise ValueError(f"{nifti}: expected a 3-D image, got shape {voxels.shape}")
    affine = _RAS_TO_LPS @ np.asarray(image.affine, dtype=np.float64)[:3]  # voxel -> LPS mm
    spacing = np.linalg.norm(affine[:, :3], axis=0)
    row_dir, col_dir = affine[:, 0] / spacing[0], affine[:, 1] / spacing[1]
    key = name or Path(nifti).name
    study, series, frame = (_uid(key, kind) for kind in ("study", "series", "frame"))
    instances = tuple(_uid(key, f"slice{k}") for k in range(voxels.shape[2]))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    when = datetime.date(2026, 1, 1)
    count = voxels.shape[2]
    for k in range(count):
        number = count - k if reverse else k + 1
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = _CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = instances[k]
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.SOPClassUID, ds.SOPInstanceUID = _CT_IMAGE_STORAGE, instances[k]
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = patient, patient, "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = when.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
        ds.StudyDescription, ds.SeriesDescription = "SAM-Med3D test study", f"CT from {Path(nifti).name}"
        ds.Modality, ds.Manufacturer, ds.SeriesNumber, ds.InstanceNumber = "CT", "SAM-Med3D tests", 1, number
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [_ds(v) for v in affine @ np.array([0.0, 0.0, float(k), 1.0])]
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]  # between rows (along j), between columns (along i)
        ds.SliceThickness = _ds(spacing[2])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = voxels.shape[1], voxels.shape[0]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PixelData = np.ascontiguousarray(voxels[:, :, k].T).tobytes()  # rows along j, columns along i
        ds.save_as(str(folder / f"IM{number:05d}.dcm"), write_like_original=False)
    return SeriesUIDs(study, series, frame, instances)
