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
"""Windows resampled on demand are the reference's: :class:`RasGrid` against the whole-image path.

The reference resamples the whole image to 1.5 mm and reorders it to RAS, then cuts a window; the prepared image samples
only the window from the original voxels. On the shipped CT (RAS), the shipped MRI (LPS) and anisotropic non-RAS
images, the grid's shape and affine and every window (inside, at the borders, at the corners, beyond the grid) must
be the whole-image path's, and so must the network input (z-normalised). A click on a 512x512x300 image must sample
about one window, not the image.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import BUNDLE, DATA
from monai.data import MetaTensor
from test_inference import OracleNetwork

from scripts import load_network
from scripts.geometry import extract_window, reorient_to_ras, resample_to_spacing, spacing_from_affine, z_normalize
from scripts.geometry.ras_grid import RasGrid
from scripts.inference import InteractiveSession, PreparedImage
from scripts.inference.image_input import axcodes_affine

ROI = (128, 128, 128)


def _load(path) -> MetaTensor:
    image = nib.load(str(path))
    return MetaTensor(torch.from_numpy(np.asarray(image.dataobj))[None], affine=torch.as_tensor(image.affine))


def _anisotropic(codes: str, spacing: tuple, origin: tuple, scale: float | None = None) -> MetaTensor:
    """The shipped MRI's voxels on another grid: axes along ``codes`` with ``spacing`` (a float copy if ``scale``)."""
    data = torch.from_numpy(np.asarray(nib.load(str(DATA / "totalsegmentator" / "example_mr_sm.nii.gz")).dataobj))
    affine = axcodes_affine(spacing, codes)
    affine[:3, 3] = origin
    if scale is not None:
        data = data.float() * scale
    return MetaTensor(data[None], affine=torch.as_tensor(affine))


IMAGES = {
    "ct_ras": lambda: _load(BUNDLE / "sample_data" / "example_ct.nii.gz"),
    "mri_lps": lambda: _load(DATA / "totalsegmentator" / "example_mr_sm.nii.gz"),
    "aniso_spl": lambda: _anisotropic("SPL", (0.8, 2.5, 1.3), (10.3, -20.7, 5.1)),
    "aniso_lai_float": lambda: _anisotropic("LAI", (0.7031, 0.7031, 2.0), (-3.3, 7.7, 100.2), scale=1.37),
}


def _starts(shape: tuple[int, ...], rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Windows inside, at every corner of the grid (half out), wholly before and beyond it, and random ones."""
    n = np.asarray(shape)
    corners = [tuple(np.where(np.array(bits), n - 64, -64)) for bits in np.ndindex(2, 2, 2)]
    fixed = [(0, 0, 0), tuple(n - 128), tuple(n // 2 - 64), (-200, -200, -200), tuple(n + 3)]
    return fixed + corners + [tuple(rng.integers(-100, n + 20)) for _ in range(4)]


@pytest.mark.parametrize("name", list(IMAGES))
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_windows_sampled_on_demand_are_the_whole_image_paths(name, mode):
    image = IMAGES[name]()
    whole = reorient_to_ras(resample_to_spacing(image, mode=mode))
    grid = RasGrid(image.shape[1:], image.affine)
    assert grid.shape == tuple(whole.shape[1:])
    np.testing.assert_array_equal(grid.affine, whole.affine.numpy())  # the same matrix, bit for bit
    for start in _starts(grid.shape, np.random.default_rng(7)):
        ours = grid.sample(image.as_tensor(), start, ROI, mode)
        theirs = extract_window(whole, start, ROI).as_tensor()
        assert ours.dtype == theirs.dtype and ours.is_contiguous()
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, msg=f"{name} {mode} window at {start}")
        if mode == "bilinear" and (theirs > 0).sum() > 1 and theirs[theirs > 0].unique().numel() > 1:
            # the network input: the bound is 1e-6; equal inputs give equal z-normalisation
            net_ours, net_theirs = z_normalize(ours).as_tensor(), z_normalize(theirs).as_tensor()
            assert float((net_ours - net_theirs).abs().max()) <= 1e-6


@pytest.mark.parametrize("name", list(IMAGES))
def test_a_prepared_window_is_the_whole_image_paths_network_input(name):
    image = IMAGES[name]()
    prepared = PreparedImage(image, OracleNetwork())
    captured = []
    prepared.network.encode = lambda x: captured.append(x) or torch.zeros(1, 1, 8, 8, 8)
    whole = reorient_to_ras(resample_to_spacing(image))
    start = tuple(int(s) for s in np.asarray(prepared.grid_shape) // 2 - 64)
    prepared.window(start)
    expected = z_normalize(extract_window(whole, start, ROI)).as_tensor()
    assert float((captured[0][0] - expected).abs().max()) <= 1e-6


LARGE = (512, 512, 300)


def _large_ct() -> MetaTensor:
    """A 512x512x300 CT: the shipped CT's voxels repeated to that size over the same extent (int16)."""
    ct = nib.load(str(BUNDLE / "sample_data" / "example_ct.nii.gz"))
    data = np.asarray(ct.dataobj).astype(np.int16)
    index = [np.minimum((np.arange(n) * m) // n, m - 1) for n, m in zip(LARGE, data.shape)]
    spacing = [3.0 * m / n for n, m in zip(LARGE, data.shape)]
    return MetaTensor(torch.from_numpy(data[np.ix_(*index)])[None], affine=torch.as_tensor(axcodes_affine(spacing)))


def test_one_click_on_a_large_image_samples_about_a_window_not_the_image():
    """A first click samples its window from the original voxels and pastes the mask back over the object's box: at
    most two windows' worth of voxels resampled for a 512x512x300 image (the pasted original voxels counted by their
    volume in 1.5 mm voxels), where the whole-image path resampled the whole grid (1.1 x 10^7 voxels here) and pasted
    back the window."""
    image = _large_ct()
    session = InteractiveSession(load_network(BUNDLE / "models"), image, max_windows=1)  # the demo model: a kidney
    grid = session.prepared.grid
    assert np.prod(grid.shape) > 5 * np.prod(ROI)
    window_voxels = int(np.prod(ROI))
    kidney = [round(v * n / m) for v, n, m in zip((86, 43, 74), LARGE, (122, 101, 112))]  # README's click
    mask = session.click(kidney)
    assert mask.shape == LARGE and 1000 < mask.sum() < 0.01 * mask.size
    assert grid.sampled_voxels == window_voxels  # the window's input; nothing else on the grid
    pasted = session.prepared.pasted_voxels * float(np.prod(spacing_from_affine(image.affine))) / 1.5**3
    box, block = session.mask_region
    assert block.size == session.prepared.pasted_voxels and np.array_equal(mask[box], block)
    assert mask.sum() == block.sum()  # nothing outside the box
    assert 0 < pasted and grid.sampled_voxels + pasted <= 2 * window_voxels, (grid.sampled_voxels, pasted)
    # a further click in the window: no sampling, a paste of the object's box again
    session.click([kidney[0] - 4, kidney[1], kidney[2]])
    assert grid.sampled_voxels == window_voxels


def test_nearest_resampling_by_repeats_equals_the_gather():
    """Nearest-neighbour resampling copies each voxel it reads as often as it is read (forwards or, on a flipped axis,
    backwards): the same values as gathering them one by one."""
    from scripts.geometry.resample import _repeat, _take

    rng = np.random.default_rng(0)
    for _ in range(100):
        data = torch.from_numpy(rng.integers(0, 3, (2, 7, 9, 5)).astype(np.uint8)).permute(0, 2, 1, 3)  # strided
        dim = int(rng.integers(1, 4))
        index = np.sort(rng.integers(0, data.shape[dim], int(rng.integers(1, 30))))
        index = torch.from_numpy(index[::-1].copy() if rng.random() < 0.5 else index)
        assert torch.equal(_repeat(data, dim, index), _take(data, dim, index))
