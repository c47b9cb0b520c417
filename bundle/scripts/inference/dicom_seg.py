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
"""DICOM SEG output: the label map of a DICOM series as a DICOM Segmentation (highdicom) of that series."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import orientation_ras_lps
from monai.utils import ImageMetaKey, MetaKeys, SpaceKeys, convert_to_numpy

from .writer import AtomicSaveImage

__all__ = ["DicomSegWriter", "ALGORITHM_TYPE", "LABEL_NAMES", "series_datasets", "slice_labels"]

# The metadata key of a label map's object names by value (``{2: "kidney_right"}``): its segments' labels.
LABEL_NAMES = "label_names"
# The metadata key of how its segments were made: ``SEMIAUTOMATIC`` (clicks, real or simulated; the default) or
# ``AUTOMATIC`` (class prompts alone).
ALGORITHM_TYPE = "segment_algorithm_type"
# Attributes a SEG takes from its source images that cannot be empty (type 1 where the SEG copies them).
REQUIRED = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "FrameOfReferenceUID",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
)
# Patient and study attributes a SEG copies that DICOM lets be empty (type 2): an absent one is copied as empty.
EMPTY_IF_ABSENT = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)
# How far (in voxels) a source pixel's centre may lie from a voxel centre of the label map: rounding in the files'
# decimal positions, not another grid.
TOLERANCE = 0.25

logger = logging.getLogger(__name__)


def series_datasets(folder: str | os.PathLike) -> list:
    """The headers (no pixels) of the one DICOM series in ``folder``, sorted by file name.

    Args:
        folder: the DICOM series folder the image was read from.

    Raises:
        ValueError: ``folder`` is not a folder, holds no DICOM series or more than one, or its files lack what a SEG
            needs from them (:data:`REQUIRED`).
    """
    import pydicom  # only DICOM SEG output needs it
    from pydicom.errors import InvalidDicomError

    path = Path(folder)
    if not path.is_dir():
        raise ValueError(
            f"DICOM SEG output (--output_format dicom_seg) needs a DICOM series folder as 'image', and {path} is not "
            "a folder: give the series' folder, or use --output_format nifti for image files (NIfTI, NRRD, MHA)."
        )
    datasets = []
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        try:
            dataset = pydicom.dcmread(file, stop_before_pixels=True)  # highdicom needs the headers only
        except InvalidDicomError:
            continue  # not DICOM (a note, a thumbnail): not part of the series
        if "SeriesInstanceUID" in dataset:  # a DICOMDIR belongs to no series
            datasets.append(dataset)
    series = sorted({str(d.SeriesInstanceUID) for d in datasets})
    if len(series) != 1:
        raise ValueError(
            f"{path} holds {len(series)} DICOM series ({', '.join(series) or 'no DICOM files'}); DICOM SEG output "
            "references one series: give a folder holding the files of one series."
        )
    for name in REQUIRED:
        lacking = [d.filename for d in datasets if name not in d or d.get(name) in (None, "")]
        if lacking:
            raise ValueError(f"{lacking[0]} has no {name}, which a DICOM SEG needs from its source images.")
    for dataset in datasets:
        for name in EMPTY_IF_ABSENT:
            if name not in dataset:
                setattr(dataset, name, "")
    return datasets


def slice_labels(source, labels: np.ndarray, lps_affine: np.ndarray) -> np.ndarray:
    """The labels under each pixel of a source slice: ``(Rows, Columns)``, found by geometry, not by file order.

    Args:
        source: the slice's header (``ImagePositionPatient``, ``ImageOrientationPatient``, ``PixelSpacing``).
        labels: the label map ``(I, J, K)``.
        lps_affine: its voxel-to-LPS affine (DICOM's patient coordinates).

    Raises:
        ValueError: the slice's pixels do not lie on voxel centres of the label map.
    """
    from highdicom.spatial import PixelToReferenceTransformer

    to_lps = PixelToReferenceTransformer(  # (column, row, 0, 1) -> LPS mm
        image_position=[float(v) for v in source.ImagePositionPatient],
        image_orientation=[float(v) for v in source.ImageOrientationPatient],
        pixel_spacing=[float(v) for v in source.PixelSpacing],
    ).affine
    rows, columns = np.mgrid[0 : int(source.Rows), 0 : int(source.Columns)]
    pixels = np.stack([columns.ravel(), rows.ravel(), np.zeros(rows.size), np.ones(rows.size)])
    voxels = np.linalg.solve(lps_affine, to_lps @ pixels)[:3]
    index = np.rint(voxels).astype(np.int64)
    off = float(np.abs(voxels - index).max())
    outside = bool(((index < 0) | (index >= np.asarray(labels.shape)[:, None])).any())
    if off > TOLERANCE or outside:
        where = "partly outside" if outside else f"{off:.2f} voxel off the voxel centres of"
        raise ValueError(
            f"{getattr(source, 'filename', 'a source slice')}: the slice lies {where} the image read from its "
            "series; DICOM SEG output needs the series' slices on one regular grid (equal spacing, one orientation)."
        )
    return labels[index[0], index[1], index[2]].reshape(rows.shape)


class DicomSegWriter(AtomicSaveImage):
    """Writes the label map of a DICOM series as a DICOM SEG of that series: ``<output_dir>/<folder>_<postfix>.dcm``.

    One segment per object, in the request's order, labelled with the object's name (the label map's
    :data:`LABEL_NAMES`; a value without a name is ``label <value>``), holding the voxels of its value. Each frame
    references the source slice it lies on, found by geometry (positions, orientation, spacing against the label
    map's affine), so file order and slice direction do not matter. As ``AtomicSaveImage``: written under a temporary
    name and renamed; an existing output is refused unless ``overwrite``, and ``check_free`` (before the work) also
    refuses an input that is not one DICOM series.

    Args:
        output_dir: the output folder.
        output_postfix: added to the series folder's name.
        overwrite: replace an existing output.
        software_version: the SEG's software version (the bundle's version).
        series_number: the SEG series' number (after the source series in a viewer's list).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        output_postfix: str = "seg",
        overwrite: bool = False,
        software_version: str = "unknown",
        series_number: int = 1000,
    ) -> None:
        super().__init__(
            output_dir=output_dir,
            output_postfix=output_postfix,
            output_ext=".dcm",
            separate_folder=False,
            overwrite=overwrite,
        )
        self.software_version = str(software_version)
        self.series_number = int(series_number)
        self._read: tuple[str, list] | None = None  # the last series read: check_free's, reused by the write

    def _sources(self, meta_data: Mapping | None) -> list:
        folder = str((meta_data or {}).get(ImageMetaKey.FILENAME_OR_OBJ, ""))
        if self._read is None or self._read[0] != folder:
            self._read = (folder, series_datasets(folder))
        return self._read[1]

    def check_free(self, meta_data: dict | None) -> None:
        """Refuse, before any work, an input that is not one DICOM series, or an existing output (unless
        ``overwrite``).

        Args:
            meta_data: the image's metadata (``filename_or_obj``: the series folder).
        """
        self._sources(meta_data)
        super().check_free(meta_data)

    def _segmentation(self, sources: list, frames: np.ndarray, names: list[str], kind: str):
        """The SEG of ``frames`` (one per source, segment numbers) with segments ``names``, made ``kind``."""
        import highdicom as hd  # only DICOM SEG output needs it
        from pydicom.sr.codedict import codes

        from .highdicom_compat import LabelMapSegmentation

        algorithm = hd.AlgorithmIdentificationSequence(
            name="SAM-Med3D", family=codes.cid7162.ArtificialIntelligence, version=self.software_version
        )
        segments = [
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name[:64],  # a DICOM LO holds 64 characters
                segmented_property_category=codes.SCT.Tissue,  # what the object is, the bundle does not know
                segmented_property_type=codes.SCT.Tissue,
                algorithm_type=kind,
                algorithm_identification=algorithm,
            )
            for number, name in enumerate(names, 1)
        ]
        return LabelMapSegmentation(
            source_images=sources,
            pixel_array=frames,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=segments,
            series_instance_uid=hd.UID(),
            series_number=self.series_number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="SAM-Med3D MONAI bundle contributors",
            manufacturer_model_name="SAM-Med3D MONAI bundle",
            software_versions=self.software_version,
            device_serial_number="none",
            content_description="SAM-Med3D promptable segmentation",
        )

    def __call__(self, img: torch.Tensor, meta_data: dict | None = None, filename: str | None = None):
        meta = img.meta if isinstance(img, MetaTensor) else dict(meta_data or {})
        target = self.target(meta) if filename is None else Path(f"{filename}{self.output_ext}")
        if target.exists() and not self.overwrite:
            raise FileExistsError(f"{target} exists; remove it or pass --overwrite True to replace it.")
        sources = self._sources(meta)
        labels = convert_to_numpy(img)
        labels = labels[0] if labels.ndim == 4 else labels  # (1, I, J, K) -> (I, J, K)
        affine = np.asarray(convert_to_numpy(img.affine if isinstance(img, MetaTensor) else meta["affine"]), float)
        lps_affine = affine if meta.get(MetaKeys.SPACE) == SpaceKeys.LPS else orientation_ras_lps(affine)
        names = {int(v): str(n) for v, n in dict(meta.get(LABEL_NAMES) or {}).items()}
        for value in np.unique(labels[labels > 0]):  # values the request did not name
            names.setdefault(int(value), f"label {int(value)}")
        if not names:
            raise ValueError(f"nothing to write to {target}: the label map is empty and names no object.")
        segment_of = np.zeros(max(int(labels.max()), max(names)) + 1, dtype=np.uint8)  # label value -> segment
        segment_of[list(names)] = np.arange(1, len(names) + 1)
        frames = np.stack([segment_of[slice_labels(s, labels, lps_affine)] for s in sources])
        seg = self._segmentation(sources, frames, list(names.values()), str(meta.get(ALGORITHM_TYPE, "SEMIAUTOMATIC")))
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name[: -len(self.output_ext)]}.partial-{os.getpid()}{self.output_ext}")
        try:
            seg.save_as(str(partial))
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        logger.info(
            f"wrote {target}: DICOM SEG of series {sources[0].SeriesInstanceUID}, {len(names)} segment(s) "
            f"({', '.join(names.values())}) in {int(seg.NumberOfFrames)} frame(s)"
        )
        meta[MetaKeys.SAVED_TO] = str(target)
        return img
