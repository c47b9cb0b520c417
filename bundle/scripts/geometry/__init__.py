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
"""The geometry of SAM-Med3D around the network, as in the reference ``medim_val_single.py`` (tensors and affines only).

The reference (torchio 0.20.1 on SimpleITK) does, per target: resample to 1.5 mm on a corner-aligned grid
(:func:`resample_to_spacing`), reorder the voxel axes to RAS (:func:`reorient_to_ras`), cut a 128^3 window
centred on the label's bounding box (:func:`label_bbox_center`, :func:`window_start`, :func:`extract_window`),
z-normalise it (:func:`z_normalize`);
:func:`reference_preprocess` chains these steps; :func:`paste_back` is the way back.

Conventions:
    * Images are channel-first MONAI ``MetaTensor`` s ``(C, I, J, K)`` whose ``affine`` maps voxel indices to
      RAS millimetres (what ``LoadImage(image_only=True, ensure_channel_first=True)`` gives).
    * Voxel coordinates are voxel-centre based: voxel ``(i, j, k)`` covers ``[i - 0.5, i + 0.5)`` etc.
    * An *index map* is a float64 4x4 matrix taking voxel indices of an output grid to continuous voxel indices
      of an input grid (``out_affine = in_affine @ index_map``). Every grid of the pipeline is the original grid
      scaled, permuted, flipped or shifted, so the maps are axis-aligned and all data movement is separable.
    * Nearest neighbour rounds half-way positions up (ITK's ``RoundHalfIntegerUp``); a position within
      :data:`TIE_TOLERANCE` below a half-integer counts as half-way, so float64 noise of affine products
      (~1e-13 voxel) cannot flip a tie, while the offsets that the file's float32 spacings create (~1e-7 voxel,
      e.g. 0.8 mm stored as 0.800000011920929) still decide, as they do in the reference.
"""

from .grid import (
    TIE_TOLERANCE,
    as_affine,
    index_transform,
    map_points,
    nearest_voxel,
    original_to_roi,
    roi_to_original,
    spacing_from_affine,
)
from .pasteback import paste_back
from .reference import reference_preprocess
from .resample import TARGET_SPACING, corner_aligned_grid, reorient_to_ras, resample_axis_aligned, resample_to_spacing
from .window import ROI_SIZE, crop_or_pad_params, extract_window, label_bbox_center, window_start, z_normalize
