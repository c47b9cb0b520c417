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
"""Box prompts on the one path: request keys, the session (undo), the command line, both ways a box reaches the
network (embedded corners, or a click at its centre with the mask clipped), window placement and tracking."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from test_inference import CT, DEMO, OracleNetwork, deepest_voxel, dice, load, marked
from test_one_path import LIVER, command_line, save

from scripts import ClickWindowInferer, InteractiveSession, parse_request_prompts
from scripts.geometry import window_start
from scripts.inference.track import box_on_grid

NEAREST = ClickWindowInferer(interpolation="nearest")


class BoxOracle(OracleNetwork):
    """A network with box embeddings: "segments" the marked voxels inside the box it is given, and records every box.

    The corners are the corner voxels' centres; the object reaches half an original voxel beyond them, so the oracle
    keeps a slack of 2 voxels of the 1.5 mm grid (the demo CT has 3 mm voxels).
    """

    box_embeddings = True

    def __init__(self) -> None:
        super().__init__()
        self.boxes: list[np.ndarray] = []

    def decode(self, embedding, points, point_labels, mask_prompt=None, boxes=None):
        logits, _ = super().decode(embedding, points, point_labels, mask_prompt)
        assert boxes is not None and boxes.shape == (1, 6)
        self.boxes.append(boxes[0].numpy().copy())
        lo = np.maximum(np.floor(boxes[0, :3].numpy()).astype(int) - 2, 0)
        hi = np.ceil(boxes[0, 3:].numpy()).astype(int) + 2
        inside = torch.zeros_like(logits, dtype=torch.bool)
        inside[..., lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1] = True
        return torch.where(inside, logits, torch.full_like(logits, -1.0)), None


def bbox(mask: np.ndarray) -> tuple[list[int], list[int]]:
    hits = np.argwhere(mask)
    return hits.min(axis=0).tolist(), hits.max(axis=0).tolist()


@pytest.fixture(scope="module")
def liver():
    """The demo CT with its liver marked; the liver is longer than one 128-voxel (19.2 cm) window."""
    image, label = load(DEMO[0]), load(DEMO[1])[0].numpy()
    return marked(image, label == LIVER), label == LIVER


@pytest.mark.parametrize("network_kind", ["embedded", "centre_click"])
def test_a_box_larger_than_a_window_is_covered_by_tracking(liver, network_kind):
    image, target = liver
    network = BoxOracle() if network_kind == "embedded" else OracleNetwork()
    session = InteractiveSession(network, image, inferer=NEAREST)
    lo, hi = bbox(target)
    mask = session.box(lo, hi)
    assert len(session.track.windows) > 1, "a box over several windows must be covered by tracking windows"
    assert dice(mask, target) >= 0.999, f"Dice {dice(mask, target):.4f} with {len(session.track.windows)} windows"
    # the first window is centred on the box
    box = box_on_grid(session.prepared, lo, hi)
    assert session.track.windows[0].start == window_start(box.centre, session.prepared.roi_size)
    if network_kind == "embedded":  # every decode got the box as its window sees it, inside the window
        first = network.boxes[0]
        expected = np.concatenate([box.lo, box.hi]) - np.tile(session.track.windows[0].start, 2)
        np.testing.assert_allclose(first, np.clip(expected, 0, 127), atol=1e-5)
        assert all((b >= 0).all() and (b <= 127).all() for b in network.boxes)
    assert session.num_clicks == 1 and session.undo() is None and session.num_clicks == 0


def test_without_box_embeddings_the_mask_is_clipped_to_the_grown_box(liver):
    """The turbo way: a click at the box's centre; only the box grown by box_margin_mm may hold the mask."""
    image, target = liver
    lo, hi = bbox(target)
    half = [lo[0], lo[1], lo[2]], [(lo[0] + hi[0]) // 2, hi[1], hi[2]]  # the box covers half the liver along i
    spacing = np.linalg.norm(image.affine.numpy()[:3, :3], axis=0)
    for margin in (0.0, 10.0):
        inferer = ClickWindowInferer(interpolation="nearest", box_margin_mm=margin)
        session = InteractiveSession(OracleNetwork(), image, inferer=inferer)
        mask = session.box(*half)
        reach = np.ceil(margin / spacing[0]).astype(int) + 1  # a RAS voxel's centre may lie up to 1 voxel out
        beyond = np.zeros_like(mask)
        beyond[half[1][0] + reach + 1 :] = True
        assert mask.any() and not (mask & beyond).any(), f"margin {margin}: the mask leaves the grown box"
        assert (mask[half[1][0] + 1 :] & target[half[1][0] + 1 :]).any() == (margin > 0)
    unclipped = InteractiveSession(OracleNetwork(), image, inferer=NEAREST)
    unclipped.click(((np.asarray(half[0]) + np.asarray(half[1])) / 2).tolist())
    assert (unclipped.mask & beyond).any(), "without the box the same click reaches beyond it (the clip did work)"


def test_the_log_says_which_way_the_box_went(liver, caplog):
    image, target = liver
    lo, hi = bbox(target)
    with caplog.at_level(logging.INFO, logger="scripts.inference.track"):
        InteractiveSession(BoxOracle(), image, inferer=NEAREST, max_windows=1).box(lo, hi)
        InteractiveSession(OracleNetwork(), image, inferer=NEAREST, max_windows=1).box(lo, hi)
    messages = [r.getMessage() for r in caplog.records]
    assert any("embedded as its two corners" in m for m in messages)
    assert any("positive click at its centre" in m and "10 mm" in m for m in messages)


def test_clicks_follow_the_box_and_undo_steps_back(liver):
    image, target = liver
    lo, hi = bbox(target)
    session = InteractiveSession(OracleNetwork(), image, inferer=NEAREST)
    with_box = session.box(lo, hi).copy()
    with pytest.raises(ValueError, match="a box starts an object"):
        session.box(lo, hi)
    outside = [int(v) for v in np.argwhere(~target)[len(np.argwhere(~target)) // 2]]
    session.click(outside, positive=False)
    assert session.num_clicks == 2
    np.testing.assert_array_equal(session.undo(), with_box)
    assert session.undo() is None and not session.mask.any()


def test_command_line_box_equals_the_session(tmp_path):
    """inference.json with a 'box' (and a click after it) gives the session's mask, voxel for voxel."""
    image, label = load(CT[0]), load(CT[1])[0].numpy()
    kidney = label == 2
    path = tmp_path / "ct_marked.nii.gz"
    save(marked(image, kidney), path)
    lo, hi = bbox(kidney)
    objects = {"kidney": {"box": [lo, hi], "points": [deepest_voxel(kidney)], "point_labels": [1], "label": 2}}
    cli = command_line(tmp_path / "out", path, objects, OracleNetwork())
    session = InteractiveSession(OracleNetwork(), str(path))
    session.box(lo, hi)
    ours = session.click(deepest_voxel(kidney))
    np.testing.assert_array_equal(cli == 2, ours)
    assert dice(ours, kidney) > 0.9


def test_world_box_is_the_voxel_box():
    image = load(CT[0])
    affine = image.affine.numpy()
    lo, hi = [10, 20, 5], [40, 50, 20]
    world = [(affine @ [*lo, 1])[:3].tolist(), (affine @ [*hi, 1])[:3].tolist()]
    (voxel,) = parse_request_prompts({"box": [lo, hi]}, image.shape[1:], affine)
    (mm,) = parse_request_prompts({"box_world": world}, image.shape[1:], affine)
    np.testing.assert_allclose(mm.box, voxel.box, atol=1e-6)
    assert voxel.points.shape == (0, 3)


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"box": [[10, 10, 10], [20, 20, 200]]}, r"box corner \[20.0, 20.0, 200.0\] \(voxel indices\) lies outside"),
        ({"box": [[20, 10, 10], [10, 20, 20]]}, r"first corner must be the lowest voxel"),
        ({"box": [10, 10, 10, 20, 20, 20]}, r"must be two opposite corners"),
        ({"box": [[10, 10], [20, 20]]}, r"must be two opposite corners"),
        ({"box": "big"}, r"must be two opposite corners"),
        ({"box": [[1, 1, 1], [2, 2, 2]], "box_world": [[1, 1, 1], [2, 2, 2]]}, "either as 'box'"),
        ({"box_world": [[0, 0, 0], [0, 0, 5000]]}, r"\(RAS mm\) lies outside"),
    ],
)
def test_bad_boxes_are_refused_with_one_line(request_, message):
    image = load(CT[0])
    with pytest.raises(ValueError, match=message) as raised:
        parse_request_prompts(request_, image.shape[1:], image.affine)
    assert "\n" not in str(raised.value)
