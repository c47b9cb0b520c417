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
"""The interactive path's masks on the shipped images are those of version 0.5.0, voxel for voxel.

Version 0.6.0 samples each window from the original voxels instead of resampling the whole image, pastes back the
object's box instead of its windows, and seeds window tracking from integer distances: none of it may change a mask.
``tests/data/regression/README.md`` says how the stored masks were made.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import BUNDLE, DATA

from scripts import InteractiveSession, load_network

STORED = DATA / "regression" / "masks_v0.5.0.npz"


def masks(network) -> dict[str, np.ndarray]:
    """The clicks of the stored masks, on the shipped CT and MRI (the liver is followed into several windows)."""
    out = {}
    ct = InteractiveSession(network, str(BUNDLE / "sample_data" / "example_ct.nii.gz"))
    out["kidney"] = ct.click([86, 43, 74])
    out["kidney_neg"] = ct.click([88, 47, 74], positive=False)
    ct.reset()
    out["bladder"] = ct.click([59, 53, 18])
    ct.reset()
    out["liver"] = ct.click([86, 47, 100])
    out["liver_2"] = ct.click([60, 47, 100])
    out["liver_windows"] = np.array(len(ct.track.windows))
    ct.reset(mask=out["kidney"])
    out["from_mask_neg"] = ct.click([86, 43, 74], positive=False)
    ct.reset()
    out["box"] = ct.box([70, 29, 66], [93, 54, 101])
    mri = InteractiveSession(network, str(DATA / "totalsegmentator" / "example_mr_sm.nii.gz"))
    out["mri"] = mri.click([90, 61, 16])
    out["mri_neg"] = mri.click([92, 60, 16], positive=False)
    return out


@pytest.fixture(scope="module")
def current():
    torch.set_num_threads(2)
    return masks(load_network(BUNDLE / "models"))


@pytest.mark.parametrize(
    "name", ["kidney", "kidney_neg", "bladder", "liver", "liver_2", "from_mask_neg", "box", "mri", "mri_neg"]
)
def test_masks_are_version_0_5_0s(current, name):
    with np.load(STORED) as stored:
        shape = json.loads(str(stored["shapes"]))[name]
        expected = np.unpackbits(stored[name], count=int(np.prod(shape))).reshape(shape).astype(bool)
    assert current[name].any()
    np.testing.assert_array_equal(current[name], expected)


def test_the_liver_still_spans_several_windows(current):
    with np.load(STORED) as stored:
        assert int(current["liver_windows"]) == int(stored["liver_windows"]) > 1
