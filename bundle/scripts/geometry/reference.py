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
"""The reference's per-target preprocessing chained: resample, RAS, window on the label's box, z-normalisation."""

from __future__ import annotations

from collections.abc import Sequence

from monai.data import MetaTensor

from .resample import TARGET_SPACING, reorient_to_ras, resample_to_spacing
from .window import ROI_SIZE, extract_window, label_bbox_center, window_start, z_normalize

__all__ = ["reference_preprocess"]


def reference_preprocess(
    image: MetaTensor, label: MetaTensor, spacing: Sequence[float] = TARGET_SPACING, size: Sequence[int] = ROI_SIZE
) -> tuple[MetaTensor, MetaTensor]:
    """The reference's per-target preprocessing: resample, RAS, window on the label's box, z-normalisation.

    Args:
        image: channel-first image with its affine.
        label: channel-first binary label on the same grid (the reference binarises ``label == class`` first).
        spacing: resampling voxel size in mm.
        size: window size.

    Returns:
        ``(roi_image, roi_label)``: the float32 network input and the ROI label, both with the ROI affine.
    """
    canonical_image = reorient_to_ras(resample_to_spacing(image, spacing, mode="bilinear"))
    canonical_label = reorient_to_ras(resample_to_spacing(label, spacing, mode="nearest"))
    start = window_start(label_bbox_center(canonical_label), size)
    roi_image = z_normalize(extract_window(canonical_image, start, size))
    roi_label = extract_window(canonical_label, start, size)
    return roi_image, roi_label
