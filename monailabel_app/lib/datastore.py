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
"""A DICOMweb studies source whose series the app reads as the folders they download to."""

from __future__ import annotations

from typing import Any

from monailabel.datastore.dicom import DICOMWebDatastore
from monailabel.datastore.local import DataModel, ImageLabelModel

__all__ = ["SeriesFolderDatastore"]


class SeriesFolderDatastore(DICOMWebDatastore):
    """MONAI Label's DICOMweb datastore without its NIfTI conversion: a series is read as its downloaded folder.

    The conversion costs seconds per image on the first click and leaves a gzip NIfTI in the system's temp folder.
    Without it, MONAI Label 0.8.5 has no local record of the image, and ``save_label`` fails after it has stored the
    DICOM SEG; the record (the series folder, no extension) is made here before a label is saved.
    """

    def save_label(
        self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any], label_id: str = ""
    ) -> str:
        """Store the label as a DICOM SEG in the source (final labels) and record it locally.

        Args:
            image_id: the SeriesInstanceUID.
            label_filename: the label file the viewer sent.
            label_tag: ``final`` (stored as DICOM SEG) or another tag (kept locally).
            label_info: the viewer's label information (``label_info``: segment names, colours).
            label_id: unused (MONAI Label's signature).
        """
        if image_id not in self._datastore.objects:
            self.get_image_uri(image_id)  # downloaded, as for a click
            self._datastore.objects[image_id] = ImageLabelModel(
                image=DataModel(info=self._dicom_info(image_id), ext="")
            )
        return super().save_label(image_id, label_filename, label_tag, label_info, label_id)
