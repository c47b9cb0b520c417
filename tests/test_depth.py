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
"""Window tracking's seed: the deepest voxel is the full distance transform's first maximum, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt, gaussian_filter

from scripts.geometry.depth import deepest_voxel


def _reference(mask: np.ndarray) -> tuple[int, ...] | None:
    if not mask.any():
        return None
    depth = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1, 1:-1]
    return tuple(int(v) for v in np.unravel_index(int(depth.argmax()), mask.shape))


@pytest.mark.parametrize("seed", range(40))
def test_the_deepest_voxel_is_the_distance_transforms_first_maximum(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 60, 3)) if seed % 4 else (64, 128, 128)
    noise = gaussian_filter(rng.standard_normal(shape), sigma=rng.uniform(0.5, 6))
    mask = noise > np.quantile(noise, rng.uniform(0.2, 0.95))
    if seed % 10 == 3:
        mask[:] = True  # every voxel of a row ties: the first one wins
    assert deepest_voxel(mask) == _reference(mask)


def test_an_empty_mask_has_no_deepest_voxel():
    assert deepest_voxel(np.zeros((4, 5, 6), dtype=bool)) is None
    one = np.zeros((4, 5, 6), dtype=bool)
    one[3, 0, 5] = True
    assert deepest_voxel(one) == (3, 0, 5)
