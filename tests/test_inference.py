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
"""Interactive inference end to end on real anatomy: exact geometry with an oracle network, and bad requests."""

from __future__ import annotations

import warnings

import itk
import numpy as np
import pytest
import torch
from conftest import BUNDLE, DATA
from monai.data import MetaTensor
from monai.transforms import LoadImage
from scipy.ndimage import distance_transform_edt

from scripts import ClickWindowInferer, parse_request_prompts

CT = (DATA / "totalsegmentator" / "example_ct_sm.nii.gz", DATA / "totalsegmentator" / "example_seg.nii.gz")
MR = (DATA / "totalsegmentator" / "example_mr_sm.nii.gz", DATA / "totalsegmentator" / "example_seg_mr.nii.gz")
DEMO = (BUNDLE / "sample_data" / "example_ct.nii.gz", BUNDLE / "sample_data" / "example_seg_fast_force_split.nii.gz")
MARKER = 20000.0  # added to the target's voxels, so that the oracle can find them after z-normalisation
# The image is resampled with nearest neighbour here, so that the window holds the target's own preprocessed label
# (the reference resamples labels that way); every other geometric step is the product's.
ORACLE_INFERER = ClickWindowInferer(interpolation="nearest")


class OracleNetwork(torch.nn.Module):
    """Stands in for SAM-Med3D: "segments" the marked voxels of the window it was given, at full resolution.

    The marked voxels are the upper cluster of intensities; the midpoint of the window's range separates them, since
    z-normalisation is an increasing affine map.
    """

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.encoded = 0

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        self.encoded += 1
        return image

    def decode(self, embedding, points, point_labels, mask_prompt=None):
        threshold = (embedding.amax() + embedding.amin()) / 2
        return embedding - threshold, None

    def upsample(self, logits: torch.Tensor) -> torch.Tensor:
        return logits


def load(path) -> MetaTensor:
    return LoadImage(image_only=True, ensure_channel_first=True, dtype=None)(str(path))


def deepest_voxel(mask: np.ndarray) -> list[int]:
    return [int(v) for v in np.unravel_index(distance_transform_edt(mask).argmax(), mask.shape)]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def run_oracle(image: MetaTensor, label: np.ndarray, classes: list[int]) -> tuple[MetaTensor, OracleNetwork]:
    marked = image.clone().float()
    marked[0][torch.as_tensor(np.isin(label, classes))] += MARKER
    objects = {str(c): {"points": [deepest_voxel(label == c)], "point_labels": [1], "label": c} for c in classes}
    prompts = parse_request_prompts({"objects": objects}, image.shape[1:], image.affine)
    oracle = OracleNetwork()
    # One object per call: the marker of a neighbouring organ in the same window would be segmented too.
    out = torch.zeros(image.shape, dtype=torch.uint8)
    for prompt in prompts:
        single = marked.clone()
        single[0][torch.as_tensor(np.isin(label, classes) & (label != prompt.label))] -= MARKER
        pred = ORACLE_INFERER(single, oracle, [prompt])
        assert pred.shape == image.shape and pred.dtype == torch.uint8
        np.testing.assert_array_equal(pred.affine.numpy(), image.affine.numpy())
        out[pred > 0] = pred[pred > 0]
    return MetaTensor(out, affine=image.affine), oracle


@pytest.mark.parametrize(
    "case, classes",
    [(CT, [1, 2, 3]), (MR, [1, 2, 3]), (DEMO, [2, 3, 21])],
    ids=["ct_ras_spleen_kidneys", "mri_lps_spleen_kidneys", "demo_ct_kidneys_bladder"],
)
def test_oracle_masks_land_on_the_original_grid(case, classes):
    image, label = load(case[0]), load(case[1])[0].numpy()
    pred, _ = run_oracle(image, label, classes)
    for c in classes:
        score = dice(pred[0].numpy() == c, label == c)
        assert score >= 0.999, f"class {c}: Dice {score:.4f}"  # the geometry is exact on these 3 mm grids


def test_oracle_on_permuted_and_flipped_axes():
    """The same CT with its voxel axes permuted and one flipped (affine adjusted) gives the same masks."""
    image, label = load(CT[0]), load(CT[1])[0].numpy()
    perm = image.permute(0, 3, 1, 2).flip(2)
    affine = image.affine.clone().double()
    affine = affine[:, [2, 0, 1, 3]]
    affine[:, 3] += affine[:, 1] * (perm.shape[2] - 1)
    affine[:, 1] *= -1
    moved = MetaTensor(perm.as_tensor().contiguous(), affine=affine)
    moved_label = np.flip(np.transpose(label, (2, 0, 1)), axis=1).copy()
    pred, _ = run_oracle(moved, moved_label, [2, 3])
    for c in (2, 3):
        assert dice(pred[0].numpy() == c, moved_label == c) >= 0.999


def marked(image: MetaTensor, target: np.ndarray) -> MetaTensor:
    out = image.clone().float()
    out[0][torch.as_tensor(target)] += MARKER
    return out


def test_one_encoder_pass_per_window():
    image, label = load(CT[0]), load(CT[1])[0].numpy()
    click = deepest_voxel(label == 2)
    objects = {"a": {"points": [click], "point_labels": [1]}, "b": {"points": [click, click], "point_labels": [1, 0]}}
    oracle = OracleNetwork()
    prompts = parse_request_prompts({"objects": objects}, image.shape[1:], image.affine)
    ORACLE_INFERER(marked(image, label == 2), oracle, prompts)
    assert oracle.encoded == 1


def test_a_request_warns_about_nothing():
    """Painting two objects into the label map raises no warning (the main job's output stays clean)."""
    image, label = load(DEMO[0]), load(DEMO[1])[0].numpy()
    objects = {str(c): {"points": [deepest_voxel(label == c)], "point_labels": [1], "label": c} for c in (2, 21)}
    prompts = parse_request_prompts({"objects": objects}, image.shape[1:], image.affine)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred = ORACLE_INFERER(marked(image, np.isin(label, (2, 21))), OracleNetwork(), prompts)
    assert set(np.unique(pred.numpy())) == {0, 2, 21}


def test_objects_larger_than_a_window_are_followed():
    """The liver of the demo CT (204 mm, 136 voxels at 1.5 mm) is cut by one window and whole with tracking."""
    image, label = load(DEMO[0]), load(DEMO[1])[0].numpy()
    liver = label == 5
    request = {"points": [deepest_voxel(liver)], "point_labels": [1]}
    prompts = parse_request_prompts(request, image.shape[1:], image.affine)
    single = ClickWindowInferer(interpolation="nearest", max_windows=1)(marked(image, liver), OracleNetwork(), prompts)
    oracle = OracleNetwork()
    followed = ClickWindowInferer(interpolation="nearest", max_windows=8)(marked(image, liver), oracle, prompts)
    single_dice, followed_dice = dice(single[0].numpy() > 0, liver), dice(followed[0].numpy() > 0, liver)
    assert single_dice < 0.97, f"one window should cut the liver (Dice {single_dice:.4f})"
    assert followed_dice >= 0.999, f"Dice {followed_dice:.4f} with {oracle.encoded} windows"
    assert 1 < oracle.encoded <= 8


@pytest.mark.parametrize(
    "request_, message",
    [
        ({}, "the request has no clicks"),
        ({"points": [[10, 10, 10]], "point_labels": [1, 0]}, "1 points but 2 point_labels"),
        ({"points": [[10, 10, 10]], "point_labels": [2]}, r"point_labels must be 1 \(positive\) or 0"),
        ({"points": [[10, 10, 10]], "point_labels": [0]}, "has only negative clicks"),
        (
            {"points": [[10, 10, 200]], "point_labels": [1]},
            r"click \[10.0, 10.0, 200.0\] \(voxel indices\) lies outside",
        ),
        ({"points": [[10, 10]], "point_labels": [1]}, r"points must be a non-empty list of \[i, j, k\] triples"),
        ({"points_world": [[0, 0, 5000]], "point_labels": [1]}, r"\(RAS mm\) lies outside"),
        ({"objects": {"a": {"points": [[1, 1, 1]], "point_labels": [1], "label": 0}}}, "distinct integers in 1..255"),
    ],
)
def test_bad_prompts_are_refused_with_a_clear_message(request_, message):
    with pytest.raises(ValueError, match=message):
        parse_request_prompts(request_, (122, 101, 30), np.diag([3.0, 3.0, 3.0, 1.0]))


def test_requests_are_normalised_before_loading():
    from scripts import normalise_request

    clicks = {"points": [[1, 2, 3]], "point_labels": [1]}
    one = normalise_request({"image": "ct.nii.gz", **clicks, "label": 4})
    assert one == {"image": "ct.nii.gz", "objects": {"object": {**clicks, "label": 4}}}
    simulation = {"image": "ct.nii.gz", "label": "seg.nii.gz", "classes": [2]}
    assert normalise_request(simulation) == simulation
    assert normalise_request({"image": "ct.nii.gz", **clicks}) == {"image": "ct.nii.gz", **clicks}
    with pytest.raises(ValueError, match="either top-level 'points' for one object or 'objects'"):
        normalise_request({"image": "ct.nii.gz", **clicks, "label": 4, "objects": {"a": clicks}})
    with pytest.raises(ValueError, match="both a ground-truth 'label' image"):
        normalise_request({"image": "ct.nii.gz", "label": "seg.nii.gz", "label_prompt": [2]})
    with pytest.raises(ValueError, match="'label' is True"):
        normalise_request({"image": "ct.nii.gz", **clicks, "label": True})


def test_world_coordinates_map_to_the_same_voxel():
    image = load(MR[0])
    voxel = np.array([40.0, 30.0, 10.0])
    world = (image.affine.numpy() @ np.append(voxel, 1.0))[:3]
    by_world = parse_request_prompts(
        {"points_world": [world.tolist()], "point_labels": [1]}, image.shape[1:], image.affine
    )
    np.testing.assert_allclose(by_world[0].points[0], voxel, atol=1e-9)


@pytest.mark.parametrize("ext", ["nrrd", "mha"])
def test_other_formats_give_the_same_masks(tmp_path, ext):
    """NRRD and MHA (through MONAI's ITK reader) give the same grid and masks as the NIfTI they were written from."""
    converted = tmp_path / f"mr.{ext}"
    itk.imwrite(itk.imread(str(MR[0])), str(converted))
    reference, other = load(MR[0]), load(converted)
    np.testing.assert_array_equal(other.affine.numpy(), reference.affine.numpy())
    label = load(MR[1])[0].numpy()
    prompts = parse_request_prompts(
        {"points": [deepest_voxel(label == 1)], "point_labels": [1]}, reference.shape[1:], reference.affine
    )
    expected = ORACLE_INFERER(marked(reference, label == 1), OracleNetwork(), prompts)
    actual = ORACLE_INFERER(marked(other, label == 1), OracleNetwork(), prompts)
    np.testing.assert_array_equal(actual.numpy(), expected.numpy())
    assert dice(actual[0].numpy() > 0, label == 1) >= 0.999


def test_stray_parts_at_a_window_edge_are_not_followed():
    """The bladder fits one window; the femurs, also "segmented" but not connected to it, leave the window.

    Tracking follows the clicked object only: no further window is opened for the femurs, and the result is the
    single window's (which keeps everything the network returned there, as the reference does).
    """
    image, label = load(DEMO[0]), load(DEMO[1])[0].numpy()
    bladder, femurs = label == 21, np.isin(label, (75, 76))
    request = {"points": [deepest_voxel(bladder)], "point_labels": [1]}
    prompts = parse_request_prompts(request, image.shape[1:], image.affine)
    marked_image = marked(image, bladder | femurs)
    single = ClickWindowInferer(interpolation="nearest", max_windows=1)(marked_image, OracleNetwork(), prompts)
    assert (single[0].numpy() > 0)[femurs].any(), "the femurs are in the bladder's window"
    oracle = OracleNetwork()
    followed = ClickWindowInferer(interpolation="nearest", max_windows=8)(marked_image, oracle, prompts)
    assert oracle.encoded == 1, f"{oracle.encoded} windows for an object that fits one"
    np.testing.assert_array_equal(followed.numpy(), single.numpy())
    assert dice(followed[0].numpy() > 0, bladder) < 1.0 and (followed[0].numpy() > 0)[bladder].all()
