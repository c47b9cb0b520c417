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
"""The pre/post-processing geometry against the reference vectors (PREPROC_PARITY.md) and on real anatomy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DATA, REFERENCE
from monai.data import MetaTensor
from monai.transforms import LoadImage

from scripts.evaluation import sample_first_click
from scripts.geometry import (
    ROI_SIZE,
    corner_aligned_grid,
    crop_or_pad_params,
    extract_window,
    index_transform,
    label_bbox_center,
    map_points,
    nearest_voxel,
    original_to_roi,
    paste_back,
    reference_preprocess,
    reorient_to_ras,
    resample_to_spacing,
    roi_to_original,
    window_start,
    z_normalize,
)

TAGS = ["case_perm_cls1", "case_perm_cls2", "case_flip_cls1", "case_flip_cls2"]
TOTALSEG = DATA / "totalsegmentator"
# (image, label, {class: organ}) of organs that fit in 128^3 voxels of 1.5 mm
VOLUMES = {
    "ct": ("example_ct_sm.nii.gz", "example_seg.nii.gz", {1: "spleen", 2: "kidney_right", 3: "kidney_left"}),
    "mr": ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz", {1: "spleen", 2: "kidney_right", 5: "liver"}),
}
ORGANS = [(volume, cls) for volume, (_, _, organs) in VOLUMES.items() for cls in organs]
# ROI -> original voxels whose source lies within 1e-6 voxel of half-way and whose two candidates differ: the
# file's float32 spacing (0.800000011920929 mm) puts them ~1e-7 voxel below the half, and ITK rounds them down.
PASTEBACK_NEAR_TIES = {"case_perm_cls1": 0, "case_perm_cls2": 0, "case_flip_cls1": 462, "case_flip_cls2": 44}
# Reproduced voxels may differ from the reference only at such near ties; measured: none do.
MAX_HALFWAY_MISMATCHES = 0


def as_nifti_affine(affine: np.ndarray) -> np.ndarray:
    """The affine as the reference read it back from NIfTI: float32 header values (as LoadImage gives them)."""
    return affine.astype(np.float32).astype(np.float64)


def meta_tensor(array: np.ndarray, affine: np.ndarray) -> MetaTensor:
    return MetaTensor(torch.from_numpy(np.ascontiguousarray(array))[None], affine=torch.from_numpy(affine))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def near_tie_voxels(shape, index_map: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Voxels of a nearest-neighbour resampling whose result flips if half-way positions round down, not up."""
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).reshape(-1, 3)
    pos = map_points(grid, index_map)
    half_way = np.abs(pos - np.floor(pos) - 0.5) < 1e-6

    def sample(index):
        inside = np.all((index >= 0) & (index < np.asarray(source.shape)), axis=1)
        out = np.zeros(len(index), source.dtype)
        out[inside] = source[tuple(index[inside].T)]
        return out

    nearest = np.floor(pos + 0.5)
    up = np.where(half_way, np.floor(pos) + 1, nearest).astype(np.int64)
    down = np.where(half_way, np.floor(pos), nearest).astype(np.int64)
    return (sample(up) != sample(down)).reshape(shape)


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    with np.load(REFERENCE / "preproc_vectors.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def reproduced(vectors) -> dict[str, dict]:
    """Every step of the pipeline for every tag, computed once."""
    out = {}
    for tag in TAGS:
        case, cls = tag.rsplit("_cls", 1)
        affine = as_nifti_affine(vectors[f"{case}_input_affine"])
        image = meta_tensor(vectors[f"{case}_input_image"], affine)
        label = meta_tensor((vectors[f"{case}_input_label"] == int(cls)).astype(np.uint8), affine)
        resampled = resample_to_spacing(image, mode="bilinear")
        resampled_label = resample_to_spacing(label, mode="nearest")
        canonical, canonical_label = reorient_to_ras(resampled), reorient_to_ras(resampled_label)
        start = window_start(label_bbox_center(canonical_label))
        roi_label = extract_window(canonical_label, start)
        pred = roi_label.clone()
        pred[0, :10, :10, :10] = 1
        out[tag] = {
            "affine": affine,
            "shape": tuple(image.shape[1:]),
            "resampled": resampled,
            "canonical": canonical,
            "canonical_label": canonical_label,
            "start": start,
            "roi_image": z_normalize(extract_window(canonical, start)),
            "roi_label": roi_label,
            "pred": pred,
            "pasteback": paste_back(pred, image.shape[1:], affine),
        }
    return out


@pytest.mark.parametrize("tag", TAGS)
def test_resampled_and_canonical_grids(tag, vectors, reproduced):
    r = reproduced[tag]
    assert tuple(r["resampled"].shape[1:]) == tuple(vectors[f"{tag}_resampled_shape"])
    np.testing.assert_allclose(r["resampled"].affine.numpy(), vectors[f"{tag}_resampled_affine"], atol=1e-6)
    assert tuple(r["canonical"].shape[1:]) == tuple(vectors[f"{tag}_canonical_shape"])
    np.testing.assert_allclose(r["canonical"].affine.numpy(), vectors[f"{tag}_canonical_affine"], atol=1e-6)


@pytest.mark.parametrize("tag", TAGS)
def test_window_params_and_roi_affine(tag, vectors, reproduced):
    r = reproduced[tag]
    padding, cropping = crop_or_pad_params(r["start"], r["canonical"].shape[1:])
    assert padding == tuple(vectors[f"{tag}_mask_center_padding"])
    assert cropping == tuple(vectors[f"{tag}_mask_center_cropping"])
    np.testing.assert_allclose(r["roi_image"].affine.numpy(), vectors[f"{tag}_roi_affine"], atol=1e-6)
    np.testing.assert_allclose(r["roi_label"].affine.numpy(), vectors[f"{tag}_roi_affine"], atol=1e-6)


@pytest.mark.parametrize("tag", TAGS)
def test_roi_image(tag, vectors, reproduced):
    roi = reproduced[tag]["roi_image"]
    assert roi.shape == (1, *ROI_SIZE) and roi.dtype == torch.float32
    np.testing.assert_allclose(roi.numpy()[0], vectors[f"{tag}_roi_image"], rtol=0, atol=1e-4)  # measured 4e-6


@pytest.mark.parametrize("tag", TAGS)
def test_roi_label(tag, vectors, reproduced):
    r = reproduced[tag]
    ref = vectors[f"{tag}_roi_label"]
    # forward nearest neighbour: voxel o of the resampled grid reads input index r*o + t, never half-way here
    shape, index_map = corner_aligned_grid(r["shape"], r["affine"])
    case, cls = tag.rsplit("_cls", 1)
    ties = near_tie_voxels(shape, index_map, (vectors[f"{case}_input_label"] == int(cls)).astype(np.uint8))
    assert ties.sum() == 0
    assert (r["roi_label"].numpy()[0] != ref).sum() <= MAX_HALFWAY_MISMATCHES
    assert int(ref.sum()) == int(r["roi_label"].sum())


@pytest.mark.parametrize("tag", TAGS)
def test_first_click(tag, vectors, reproduced):
    click = sample_first_click(reproduced[tag]["roi_label"])
    np.testing.assert_array_equal(click, vectors[f"{tag}_first_click"])
    assert reproduced[tag]["roi_label"][0][tuple(click)] == vectors[f"{tag}_first_click_label"][0]


@pytest.mark.parametrize("tag", TAGS)
def test_pasteback(tag, vectors, reproduced):
    r = reproduced[tag]
    ref = vectors[f"{tag}_pasteback_zyx"].transpose(2, 1, 0)  # SimpleITK (Z, Y, X) -> file order (I, J, K)
    out = r["pasteback"]
    assert tuple(out.shape) == (1, *r["shape"]) and out.dtype == torch.uint8
    np.testing.assert_array_equal(out.affine.numpy(), r["affine"])
    ties = near_tie_voxels(r["shape"], index_transform(r["affine"], r["pred"].affine), r["pred"].numpy()[0])
    assert ties.sum() == PASTEBACK_NEAR_TIES[tag]
    mismatch = out.numpy()[0] != ref
    assert not (mismatch & ~ties).any(), "a voxel away from a half-way source differs from the reference"
    assert mismatch.sum() <= MAX_HALFWAY_MISMATCHES


def test_z_normalize_uses_the_unbiased_std_of_positive_voxels():
    x = torch.tensor([-5.0, 0.0, 1.0, 2.0, 6.0]).reshape(1, 5, 1, 1)
    out = z_normalize(MetaTensor(x, affine=torch.eye(4, dtype=torch.float64)))
    mean, std = 3.0, float(np.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2))  # over 1, 2, 6 only; N - 1
    np.testing.assert_allclose(out.numpy().ravel(), (x.numpy().ravel() - mean) / std, rtol=1e-6)
    assert out.dtype == torch.float32


def test_spacing_is_read_from_the_float32_header(vectors):
    """90 x 0.8 / 1.5 is 48, but the file's 0.800000011920929 mm gives the reference's 49 voxels."""
    affine = vectors["case_flip_input_affine"]
    assert corner_aligned_grid((90, 70, 30), affine)[0] == (48, 38, 60)
    assert corner_aligned_grid((90, 70, 30), as_nifti_affine(affine))[0] == (49, 38, 60)


def test_reference_preprocess_chains_the_steps(vectors, reproduced):
    tag = "case_perm_cls1"
    r = reproduced[tag]
    image = meta_tensor(vectors["case_perm_input_image"], r["affine"])
    label = meta_tensor((vectors["case_perm_input_label"] == 1).astype(np.uint8), r["affine"])
    roi_image, roi_label = reference_preprocess(image, label)
    assert torch.equal(roi_image.as_tensor(), r["roi_image"].as_tensor())
    assert torch.equal(roi_label.as_tensor(), r["roi_label"].as_tensor())
    np.testing.assert_array_equal(roi_image.affine.numpy(), r["roi_image"].affine.numpy())


# ---------------------------------------------------------------------------------------------------- real anatomy


@pytest.fixture(scope="module")
def volumes() -> dict[str, dict]:
    """Image and multi-label segmentation (file dtypes), and the segmentation at 1.5 mm in RAS, per volume."""
    load = LoadImage(image_only=True, ensure_channel_first=True, dtype=None)
    out = {}
    for name, (image_file, label_file, _) in VOLUMES.items():
        seg = load(TOTALSEG / label_file)
        out[name] = {
            "image": load(TOTALSEG / image_file),
            "seg": seg,
            # nearest neighbour commutes with binarisation: resample the multi-label map once
            "canonical_seg": reorient_to_ras(resample_to_spacing(seg, mode="nearest")),
        }
    return out


def organ_roi(volume: dict, cls: int) -> tuple[np.ndarray, MetaTensor, MetaTensor]:
    """The binary organ label, its canonical 1.5 mm version and its label-centred 128^3 ROI."""
    canonical = volume["canonical_seg"]
    canonical = MetaTensor((canonical.as_tensor() == cls).to(torch.uint8), affine=canonical.affine)
    roi = extract_window(canonical, window_start(label_bbox_center(canonical)))
    return (volume["seg"].numpy()[0] == cls), canonical, roi


@pytest.mark.parametrize("volume, cls", ORGANS)
def test_organ_survives_preprocess_and_paste_back(volume, cls, volumes):
    v = volumes[volume]
    organ, _, roi = organ_roi(v, cls)
    back = paste_back(roi, v["seg"].shape[1:], v["seg"].affine)
    assert tuple(back.shape) == tuple(v["seg"].shape)
    np.testing.assert_array_equal(back.affine.numpy(), v["seg"].affine.numpy())
    assert dice(back.numpy()[0] > 0, organ) >= 0.98  # 1.0 at 3 mm: every original voxel comes back


@pytest.mark.parametrize("volume, cls", ORGANS)
def test_clicks_map_to_the_organ_and_back(volume, cls, volumes):
    v = volumes[volume]
    organ, canonical, roi = organ_roi(v, cls)
    original_affine = v["seg"].affine
    clicks = np.argwhere(organ)  # every voxel of the organ, in file voxel order (i, j, k)
    # label-centred window (the reference's): every organ voxel lands on an organ voxel of the ROI and comes back
    in_roi = nearest_voxel(original_to_roi(clicks, original_affine, roi.affine))
    assert np.all((in_roi >= 0) & (in_roi < 128))
    assert np.all(roi.numpy()[0][tuple(in_roi.T)] == 1)
    np.testing.assert_array_equal(nearest_voxel(roi_to_original(in_roi, original_affine, roi.affine)), clicks)
    # click-centred window (the inference's): the click becomes ROI voxel (64, 64, 64)
    click = clicks[len(clicks) // 2]
    center = map_points(click, index_transform(original_affine, canonical.affine))
    window = extract_window(canonical, window_start(center))
    at = nearest_voxel(original_to_roi(click, original_affine, window.affine))
    np.testing.assert_array_equal(at, [64, 64, 64])
    assert window[0, 64, 64, 64] == 1
    np.testing.assert_array_equal(nearest_voxel(roi_to_original(at, original_affine, window.affine)), click)


def permute_flip(img: MetaTensor, axes: tuple[int, int, int], flip: int) -> MetaTensor:
    """The same image in another voxel order: spatial axes permuted, then one axis reversed; same world grid."""
    affine = img.affine.numpy().copy()
    affine[:, :3] = affine[:, list(axes)]
    data = img.as_tensor().permute(0, *(1 + a for a in axes))
    n = data.shape[1 + flip]
    affine[:3, 3] += affine[:3, flip] * (n - 1)
    affine[:3, flip] *= -1
    return MetaTensor(data.flip(1 + flip).contiguous(), affine=torch.from_numpy(affine))


def test_orientation_independence(volumes):
    """Transposed and flipped voxel order of the same CT gives the same ROI (3 mm -> 1.5 mm grids coincide)."""
    v = volumes["ct"]
    image, label = v["image"], MetaTensor((v["seg"].as_tensor() == 1).to(torch.uint8), affine=v["seg"].affine)
    axes, flip = (2, 0, 1), 1
    image_p, label_p = permute_flip(image, axes, flip), permute_flip(label, axes, flip)
    assert not np.allclose(image_p.affine.numpy(), image.affine.numpy())
    world = image.affine.numpy() @ [10, 20, 5, 1]
    moved = np.linalg.solve(image_p.affine.numpy(), world)[:3]
    assert image_p[0][tuple(np.round(moved).astype(int))] == image[0, 10, 20, 5]

    roi_image, roi_label = reference_preprocess(image, label)
    roi_image_p, roi_label_p = reference_preprocess(image_p, label_p)
    np.testing.assert_allclose(roi_image_p.affine.numpy(), roi_image.affine.numpy(), atol=1e-9)
    assert torch.equal(roi_label_p.as_tensor(), roi_label.as_tensor())
    np.testing.assert_allclose(roi_image_p.numpy(), roi_image.numpy(), atol=1e-5)

    back = paste_back(roi_label, label.shape[1:], label.affine)
    back_p = paste_back(roi_label_p, label_p.shape[1:], label_p.affine)
    assert torch.equal(back_p.as_tensor(), permute_flip(back, axes, flip).as_tensor())
    assert torch.equal(back.as_tensor(), label.as_tensor())


def test_oblique_image_round_trip(volumes):
    """An oblique affine (rotated 25 degrees about two axes) keeps every step on the image's own voxel axes."""
    v = volumes["mr"]
    a, b = np.deg2rad(25), np.deg2rad(25)
    rotation = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rotation = rotation @ np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = v["seg"].affine.numpy().copy()
    affine[:3] = rotation @ affine[:3]
    label = MetaTensor((v["seg"].as_tensor() == 5).to(torch.uint8), affine=torch.from_numpy(affine))
    roi_image, roi_label = reference_preprocess(MetaTensor(v["image"].as_tensor(), affine=label.affine), label)
    assert roi_image.shape == roi_label.shape == (1, *ROI_SIZE)
    back = paste_back(roi_label, label.shape[1:], label.affine)
    assert torch.equal(back.as_tensor(), label.as_tensor())
    clicks = np.argwhere(label.numpy()[0] == 1)
    at = nearest_voxel(original_to_roi(clicks, affine, roi_label.affine))
    assert np.all(roi_label.numpy()[0][tuple(at.T)] == 1)


@pytest.mark.parametrize("volume, cls, max_diff", [("ct", 1, 1e-4), ("mr", 5, 0.01)])
def test_torchio_oracle_on_real_volume(volume, cls, max_diff, volumes):
    """The reference pipeline run with torchio 0.20.1 itself (a test-only oracle) on a real CT (RAS) and MRI (LPS).

    Integer images are resampled in their dtype: ITK truncates the interpolated value, so an exactly integral
    interpolation lands on either side with floating-point noise; on the MRI a few hundred voxels of 1.7 M differ
    by one raw unit (< 0.01 after normalisation), on the CT none.
    """
    import torchio as tio  # requirements-dev.txt: an oracle that must be there, never skipped

    image_file, label_file, _ = VOLUMES[volume]
    subject = tio.Subject(image=tio.ScalarImage(TOTALSEG / image_file), label=tio.LabelMap(TOTALSEG / label_file))
    subject.label.set_data((subject.label.data == cls).to(subject.label.data.dtype))
    subject = tio.ToCanonical()(tio.Resample(target=(1.5, 1.5, 1.5))(subject))
    subject = tio.CropOrPad(mask_name="label", target_shape=ROI_SIZE)(subject)
    expected_image = tio.ZNormalization(masking_method=lambda x: x > 0)(subject.image.data.clone().float())

    v = volumes[volume]
    label = MetaTensor((v["seg"].as_tensor() == cls).to(torch.uint8), affine=v["seg"].affine)
    roi_image, roi_label = reference_preprocess(v["image"], label)
    np.testing.assert_allclose(roi_image.affine.numpy(), subject.image.affine, atol=1e-6)
    assert torch.equal(roi_label.as_tensor(), subject.label.data)
    diff = (roi_image.as_tensor() - expected_image).abs()
    assert diff.max() <= max_diff and (diff > 1e-4).float().mean() < 1e-3

    grid = tio.ScalarImage(tensor=torch.zeros(v["seg"].shape), affine=v["seg"].affine.numpy())
    floating = tio.LabelMap(tensor=roi_label.as_tensor().float(), affine=subject.label.affine)
    expected_back = tio.Resample(target=grid, image_interpolation="nearest")(floating).data
    back = paste_back(roi_label, v["seg"].shape[1:], v["seg"].affine)
    assert torch.equal(back.as_tensor().float(), expected_back)


@pytest.mark.parametrize("size", [(8, 7, 12), (5, 6, 9)])
def test_window_placement_matches_torchio_crop_or_pad(size):
    """Random masks, even and odd window sizes, windows inside and across the image border."""
    import torchio as tio  # requirements-dev.txt: an oracle that must be there, never skipped

    rng = np.random.RandomState(0)
    for _ in range(25):
        mask = np.zeros((11, 9, 6), np.uint8)
        lo = rng.randint(0, [11, 9, 6])
        hi = lo + rng.randint(1, 6, size=3)
        mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
        subject = tio.Subject(label=tio.LabelMap(tensor=torch.from_numpy(mask)[None]))
        padding, cropping = tio.CropOrPad(size, mask_name="label")._compute_mask_center_crop_or_pad(subject)
        expected = (tuple(padding or (0,) * 6), tuple(cropping or (0,) * 6))
        assert crop_or_pad_params(window_start(label_bbox_center(mask), size), mask.shape, size) == expected
