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
"""highdicom 0.22's ``Segmentation`` on NumPy 2 (imported only when a DICOM SEG is written).

highdicom stays at 0.22 because MONAI Label 0.8.5 needs pydicom 2 beside the bundle, and its later versions need
pydicom 3. Its ``Segmentation._get_segment_pixel_array`` names ``np.float_``, which NumPy 2 removed, so every frame
fails with an ``AttributeError``; this subclass replaces that one step for what the bundle writes (binary
segments from a label-map array) and leaves the rest of highdicom as it is.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np

__all__ = ["LabelMapSegmentation"]


class LabelMapSegmentation(hd.seg.Segmentation):
    """``highdicom.seg.Segmentation`` for a BINARY segmentation given as a label-map array ``(frames, rows, columns)``
    of segment numbers (what highdicom 0.22 calls a label map style array)."""

    @staticmethod
    def _get_segment_pixel_array(
        pixel_array: np.ndarray,
        segment_number: int,
        number_of_segments: int,
        segmentation_type: hd.seg.SegmentationTypeValues,
        max_fractional_value: int,
    ) -> np.ndarray:
        """One frame of one segment, 0 or 1 (highdicom 0.22's own rule for a label-map frame).

        Args:
            pixel_array: one plane ``(rows, columns)`` of segment numbers.
            segment_number: the segment.
            number_of_segments: how many segments there are (one: the plane is already the segment's mask).
            segmentation_type: must be BINARY.
            max_fractional_value: unused (FRACTIONAL segmentations are not written here).
        """
        if hd.seg.SegmentationTypeValues(segmentation_type) != hd.seg.SegmentationTypeValues.BINARY:
            raise ValueError("LabelMapSegmentation writes BINARY segmentations only.")
        if pixel_array.ndim != 2 or pixel_array.dtype.kind not in "bu":
            raise ValueError(f"expected a label-map plane (rows, columns) of segment numbers, got {pixel_array.dtype}")
        if number_of_segments == 1:
            return pixel_array.astype(np.uint8, copy=False)
        return (pixel_array == segment_number).astype(np.uint8)
